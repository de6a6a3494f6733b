//! `homarus config ...`: file-level config commands. The running gateway picks edits up by hot reload.
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use homarus_config::{
    json_schema, load_file, parse_json5, parse_str, redact, reference_markdown, set_path, unset_path, write_atomic,
};

use crate::cli::ConfigCmd;
use crate::run::config_path;

const SCHEMA_FILE: &str = "schema/homarus.schema.json";
const DOCS_FILE: &str = "docs/configuration.md";

fn schema_text() -> String {
    serde_json::to_string_pretty(&json_schema()).unwrap_or_default() + "\n"
}

/// Run a config command.
pub fn run(cmd: ConfigCmd) -> Result<ExitCode> {
    let path = config_path();
    match cmd {
        ConfigCmd::File => println!("{}", path.display()),
        ConfigCmd::Get { key, json } => {
            let loaded = load_file(&path).map_err(|e| anyhow!("invalid config: {e}"))?;
            let doc = redact(&loaded.parsed);
            let value = match &key {
                Some(k) => lookup(&doc, k).ok_or_else(|| anyhow!("{k}: not set in {}", path.display()))?,
                None => doc,
            };
            match (&value, json) {
                (Value::String(s), false) => println!("{s}"),
                (v, true) => println!("{v}"),
                (v, false) => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
            }
        }
        ConfigCmd::Set { key, value } => {
            let v = parse_json5(&value, "value").unwrap_or(Value::String(value));
            edit(&path, |doc| set_path(doc, &key, v).map_err(|e| anyhow!(e)))?;
            println!("set {key} in {}", path.display());
        }
        ConfigCmd::Unset { key } => {
            let mut removed = false;
            edit(&path, |doc| {
                removed = unset_path(doc, &key);
                Ok(())
            })?;
            if !removed {
                bail!("{key}: not set in {}", path.display());
            }
            println!("removed {key} from {}", path.display());
        }
        ConfigCmd::Validate { json } => {
            let loaded = load_file(&path).map_err(|e| anyhow!("invalid config: {e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "path": path.display().to_string(), "exists": loaded.exists, "warnings": loaded.warnings})
                );
            } else {
                for w in &loaded.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: valid{}",
                    path.display(),
                    if loaded.exists { "" } else { " (no file: embedded defaults)" }
                );
            }
        }
        ConfigCmd::Schema { check, write, root } => return schema_cmd(check, write, &root),
    }
    Ok(ExitCode::SUCCESS)
}

fn lookup(doc: &Value, key: &str) -> Option<Value> {
    key.split('.').filter(|p| !p.is_empty()).try_fold(doc, |cur, part| cur.get(part)).cloned()
}

/// Read, change, validate (exactly as the gateway would load it), then write atomically.
pub fn edit(path: &Path, change: impl FnOnce(&mut Value) -> Result<()>) -> Result<()> {
    let loaded = load_file(path).map_err(|e| anyhow!("invalid config (fix it before editing): {e}"))?;
    let mut doc = loaded.parsed.clone();
    change(&mut doc)?;
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    let label = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let env = |n: &str| std::env::var(n).ok();
    parse_str(&text, &label, &env).map_err(|e| anyhow!("refusing to write an invalid config: {e}"))?;
    write_atomic(path, &text).map_err(|e| anyhow!("{e}"))
}

fn schema_cmd(check: bool, write: bool, root: &Path) -> Result<ExitCode> {
    let schema = schema_text();
    let docs = reference_markdown();
    if write {
        for (rel, text) in [(SCHEMA_FILE, &schema), (DOCS_FILE, &docs)] {
            let p = root.join(rel);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
            println!("wrote {}", p.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if check {
        let mut drift = Vec::new();
        for (rel, want) in [(SCHEMA_FILE, &schema), (DOCS_FILE, &docs)] {
            let have = std::fs::read_to_string(root.join(rel)).unwrap_or_default();
            if &have != want {
                drift.push(rel);
            }
        }
        if drift.is_empty() {
            println!("schema and configuration reference are current");
            return Ok(ExitCode::SUCCESS);
        }
        bail!("{} drifted from the code: run `homarus config schema --write` and commit", drift.join(" and "));
    }
    print!("{schema}");
    Ok(ExitCode::SUCCESS)
}
