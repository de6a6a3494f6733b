//! `homarus plugins ...`: what is on disk and what the config enables. A running gateway picks up
//! enable/disable on its next restart (SIGUSR1).
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use homarus_config::load_file;
use homarus_gateway::{plugin_roots, GatewayOptions};
use homarus_plugins::{discover, Discovered};

use crate::cli::PluginsCmd;
use crate::run::{config_path, state_dir};

fn found() -> Result<(Vec<Discovered>, Vec<String>, homarus_config::LoadedConfig)> {
    let loaded = load_file(&config_path()).map_err(|e| anyhow!("invalid config: {e}"))?;
    let opts = GatewayOptions::new(state_dir(), config_path());
    let (plugins, problems) = discover(&plugin_roots(&opts, &loaded));
    Ok((plugins, problems, loaded))
}

fn describe(d: &Discovered, cfg: &homarus_config::PluginsConfig) -> Value {
    let m = &d.manifest;
    json!({
        "id": m.id,
        "name": m.name,
        "version": m.version,
        "description": m.description,
        "dir": d.dir.display().to_string(),
        "command": m.command,
        "hooks": m.hooks.iter().map(|h| h.name()).collect::<Vec<_>>(),
        "enabled": homarus_plugins::is_enabled(cfg, &m.id),
    })
}

/// Run a plugins command.
pub fn run(cmd: PluginsCmd) -> Result<ExitCode> {
    match cmd {
        PluginsCmd::List { json } => {
            let (plugins, problems, loaded) = found()?;
            let list: Vec<Value> = plugins.iter().map(|d| describe(d, &loaded.config.plugins)).collect();
            if json {
                println!("{}", json!({"plugins": list, "problems": problems}));
            } else {
                if list.is_empty() {
                    println!("no plugins found (looked in <stateDir>/plugins/ and plugins.load.paths)");
                }
                for p in &list {
                    let state = if p["enabled"] == true { "enabled " } else { "disabled" };
                    println!(
                        "{:<24} {state} {:<40} {}",
                        p["id"].as_str().unwrap_or(""),
                        p["dir"].as_str().unwrap_or(""),
                        p["hooks"]
                    );
                }
                for p in &problems {
                    eprintln!("problem: {p}");
                }
            }
        }
        PluginsCmd::Inspect { id } => {
            let (plugins, _, loaded) = found()?;
            let d = plugins.iter().find(|d| d.manifest.id == id).ok_or_else(|| anyhow!("no plugin with id `{id}`"))?;
            let mut v = describe(d, &loaded.config.plugins);
            v["configSchema"] = d.manifest.config_schema.clone().unwrap_or(Value::Null);
            let entry = loaded.parsed.pointer(&format!("/plugins/entries/{id}")).cloned().unwrap_or(Value::Null);
            v["entry"] = homarus_config::redact(&entry);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        PluginsCmd::Enable { id } | PluginsCmd::Disable { id } if id.contains('.') => {
            bail!("plugin ids cannot contain `.`: {id}")
        }
        PluginsCmd::Enable { id } => set_enabled(&id, true)?,
        PluginsCmd::Disable { id } => set_enabled(&id, false)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn set_enabled(id: &str, enabled: bool) -> Result<()> {
    let (plugins, _, _) = found()?;
    if !plugins.iter().any(|d| d.manifest.id == id) {
        eprintln!("warning: no plugin with id `{id}` is installed yet; the setting is kept for when it is");
    }
    let path = config_path();
    crate::config_cmd::edit(&path, |doc| {
        homarus_config::set_path(doc, &format!("plugins.entries.{id}.enabled"), json!(enabled)).map_err(|e| anyhow!(e))
    })?;
    println!(
        "{} {id} in {} (restart the gateway to apply: SIGUSR1)",
        if enabled { "enabled" } else { "disabled" },
        path.display()
    );
    Ok(())
}
