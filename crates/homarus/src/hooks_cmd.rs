//! `homarus hooks ...`: internal automation hooks on this host and their selection. Edits apply on
//! the gateway's next restart.
use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use homarus_config::load_file;
use homarus_gateway::{bundled_hooks, hook_roots, GatewayOptions};
use homarus_hooks::internal::{discover_internal_hooks, select_internal_hooks, InternalHook};

use crate::cli::HooksCmd;
use crate::run::{config_path, state_dir};

struct Inventory {
    hooks: Vec<InternalHook>,
    problems: Vec<String>,
    selected: Vec<String>,
    cfg: homarus_config::InternalHooksConfig,
}

fn inventory() -> Result<Inventory> {
    let loaded = load_file(&config_path()).map_err(|e| anyhow!("invalid config: {e}"))?;
    let opts = GatewayOptions::new(state_dir(), config_path());
    let (hooks, problems) = discover_internal_hooks(bundled_hooks(&opts.state_dir), &hook_roots(&opts, &loaded));
    let cfg = loaded.config.hooks.internal.clone();
    let selected = select_internal_hooks(&hooks, &cfg).into_iter().map(|h| h.name).collect();
    Ok(Inventory { hooks, problems, selected, cfg })
}

fn describe(h: &InternalHook, inv: &Inventory) -> Value {
    let env: BTreeMap<String, String> = inv.cfg.entries.get(&h.name).and_then(|e| e.env.clone()).unwrap_or_default();
    let missing = h.missing_requirements(&env);
    json!({
        "name": h.name,
        "description": h.description,
        "source": h.source.as_str(),
        "dir": h.dir.as_ref().map(|d| d.display().to_string()),
        "events": h.events,
        "selected": inv.selected.contains(&h.name),
        "eligible": missing.is_none(),
        "missing": missing,
    })
}

/// Run a hooks command.
pub fn run(cmd: HooksCmd) -> Result<ExitCode> {
    match cmd {
        HooksCmd::List { json } => {
            let inv = inventory()?;
            let list: Vec<Value> = inv.hooks.iter().map(|h| describe(h, &inv)).collect();
            if json {
                println!("{}", json!({"hooks": list, "problems": inv.problems}));
            } else {
                for h in &list {
                    let state = match (h["selected"] == true, h["eligible"] == true) {
                        (true, true) => "loads",
                        (true, false) => "selected, not eligible",
                        (false, _) => "not selected",
                    };
                    println!(
                        "{:<24} {:<8} {:<24} {}",
                        h["name"].as_str().unwrap_or(""),
                        h["source"].as_str().unwrap_or(""),
                        state,
                        h["events"]
                    );
                }
                for p in &inv.problems {
                    eprintln!("problem: {p}");
                }
            }
        }
        HooksCmd::Info { name } => {
            let inv = inventory()?;
            let h = inv.hooks.iter().find(|h| h.name == name).ok_or_else(|| anyhow!("no hook named `{name}`"))?;
            println!("{}", serde_json::to_string_pretty(&describe(h, &inv)).unwrap_or_default());
        }
        HooksCmd::Enable { name } => set(&name, true)?,
        HooksCmd::Disable { name } => set(&name, false)?,
        HooksCmd::Check => {
            let inv = inventory()?;
            let mut bad: Vec<String> = inv.problems.clone();
            for h in inv.hooks.iter().filter(|h| inv.selected.contains(&h.name)) {
                if let Some(why) = describe(h, &inv)["missing"].as_str() {
                    bad.push(format!("hook {}: {why}", h.name));
                }
            }
            if !bad.is_empty() {
                bail!("{}", bad.join("; "));
            }
            println!("{} hooks selected, all eligible", inv.selected.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn set(name: &str, enabled: bool) -> Result<()> {
    if name.contains('.') {
        bail!("hook names cannot contain `.`: {name}");
    }
    let inv = inventory()?;
    if !inv.hooks.iter().any(|h| h.name == name) {
        bail!("no hook named `{name}` (see `homarus hooks list`)");
    }
    let path = config_path();
    crate::config_cmd::edit(&path, |doc| {
        homarus_config::set_path(doc, &format!("hooks.internal.entries.{name}.enabled"), json!(enabled))
            .map_err(|e| anyhow!(e))
    })?;
    println!(
        "{} {name} in {} (restart the gateway to apply: SIGUSR1)",
        if enabled { "enabled" } else { "disabled" },
        path.display()
    );
    Ok(())
}
