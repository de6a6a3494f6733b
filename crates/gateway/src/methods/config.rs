//! `config.get`, `config.schema`, `config.set`/`config.apply` and `config.patch`.
//!
//! Every write is validated exactly like a file load, guarded by `baseHash` (the hash `config.get`
//! returned) so two editors cannot overwrite each other, written atomically, then applied in
//! process. Secrets are redacted on the way out and restored when a redacted value comes back.
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use homarus_config::{json_schema, merge_patch, parse_str, redact, restore_redacted, write_atomic, REDACTED};
use homarus_protocol::ErrorShape;

use crate::state::GatewayState;

/// Raw text with every secret value replaced by the redaction marker, keeping the file's layout.
fn redact_raw(raw: &str, parsed: &Value) -> String {
    let mut secrets = Vec::new();
    collect_secrets(parsed, &redact(parsed), &mut secrets);
    secrets.sort_by_key(|s: &String| std::cmp::Reverse(s.len()));
    let mut out = raw.to_string();
    for s in secrets {
        out = out.replace(&s, REDACTED);
    }
    out
}

fn collect_secrets(orig: &Value, red: &Value, out: &mut Vec<String>) {
    match (orig, red) {
        (Value::String(o), Value::String(r)) if r == REDACTED && !o.is_empty() => out.push(o.clone()),
        (Value::Object(o), Value::Object(r)) => {
            for (k, v) in o {
                if let Some(rv) = r.get(k) {
                    collect_secrets(v, rv, out);
                }
            }
        }
        (Value::Array(o), Value::Array(r)) => o.iter().zip(r).for_each(|(a, b)| collect_secrets(a, b, out)),
        _ => {}
    }
}

/// `config.get`.
pub fn get(state: &GatewayState) -> Result<Value, ErrorShape> {
    let cfg = state.config();
    let effective = serde_json::to_value(&cfg.config).unwrap_or(Value::Null);
    Ok(json!({
        "path": cfg.path.display().to_string(),
        "exists": cfg.exists,
        "raw": redact_raw(&cfg.raw, &cfg.parsed),
        "parsed": redact(&cfg.parsed),
        "config": redact(&effective),
        "valid": true,
        "hash": cfg.hash,
        "issues": [],
        "warnings": cfg.warnings,
    }))
}

/// `config.schema`: the generated schema plus per-key UI hints (label and help).
pub fn schema() -> Value {
    let schema = json_schema();
    let mut hints = serde_json::Map::new();
    collect_hints(&schema, &schema, "", &mut hints);
    json!({
        "schema": schema,
        "uiHints": hints,
        "version": env!("CARGO_PKG_VERSION"),
        "generatedAt": "build",
    })
}

fn collect_hints(root: &Value, node: &Value, prefix: &str, out: &mut serde_json::Map<String, Value>) {
    let node = deref(root, node);
    let Some(props) = node.get("properties").and_then(Value::as_object) else { return };
    for (name, prop) in props {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        let mut hint = json!({"label": name});
        if let Some(help) = prop.get("description").or_else(|| deref(root, prop).get("description")) {
            hint["help"] = help.clone();
        }
        let lname = name.to_ascii_lowercase();
        if lname.contains("token") || lname.contains("password") {
            hint["sensitive"] = json!(true);
        }
        out.insert(key.clone(), hint);
        collect_hints(root, prop, &key, out);
    }
}

fn deref<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    node.get("$ref").and_then(Value::as_str).and_then(|r| root.get("$defs")?.get(r.rsplit('/').next()?)).unwrap_or(node)
}

/// Params of `config.set` / `config.apply`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyParams {
    raw: String,
    base_hash: Option<String>,
    #[allow(dead_code)]
    session_key: Option<String>,
    #[allow(dead_code)]
    delivery_context: Option<Value>,
    #[allow(dead_code)]
    note: Option<String>,
    #[allow(dead_code)]
    restart_delay_ms: Option<u64>,
}

/// Params of `config.patch`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchParams {
    raw: String,
    base_hash: Option<String>,
    #[allow(dead_code)]
    session_key: Option<String>,
    #[allow(dead_code)]
    delivery_context: Option<Value>,
    #[allow(dead_code)]
    note: Option<String>,
    #[allow(dead_code)]
    restart_delay_ms: Option<u64>,
    replace_paths: Option<Vec<String>>,
}

fn check_base_hash(state: &GatewayState, base_hash: Option<&str>) -> Result<(), ErrorShape> {
    let cfg = state.config();
    if !cfg.exists {
        return Ok(());
    }
    match base_hash {
        None => Err(ErrorShape::invalid("config base hash required; re-run config.get and retry")
            .with_details(json!({"code": "CONFIG_BASE_HASH_REQUIRED"}))),
        Some(h) if h != cfg.hash => {
            Err(ErrorShape::invalid("config changed since last load; re-run config.get and retry")
                .with_details(json!({"code": "CONFIG_BASE_HASH_MISMATCH", "currentHash": cfg.hash})))
        }
        Some(_) => Ok(()),
    }
}

fn parse_json5(raw: &str, what: &str) -> Result<Value, ErrorShape> {
    homarus_config::parse_json5(raw, what).map_err(|e| ErrorShape::invalid(format!("invalid params: at /raw: {e}")))
}

/// `config.set` / `config.apply`: replace the whole file.
pub async fn apply(state: &Arc<GatewayState>, p: ApplyParams) -> Result<Value, ErrorShape> {
    let _guard = state.config_write.lock().await;
    check_base_hash(state, p.base_hash.as_deref())?;
    let mut doc = parse_json5(&p.raw, "raw")?;
    restore_redacted(&mut doc, &state.config().parsed);
    commit(state, &doc).await
}

/// `config.patch`: JSON merge patch onto the current file (`null` deletes a key).
pub async fn patch(state: &Arc<GatewayState>, p: PatchParams) -> Result<Value, ErrorShape> {
    let _guard = state.config_write.lock().await;
    check_base_hash(state, p.base_hash.as_deref())?;
    let patch = parse_json5(&p.raw, "patch")?;
    if !patch.is_object() {
        return Err(ErrorShape::invalid("invalid params: at /raw: the patch must be an object"));
    }
    let current = state.config().parsed.clone();
    let mut doc = current.clone();
    for path in p.replace_paths.iter().flatten() {
        homarus_config::unset_path(&mut doc, path);
    }
    merge_patch(&mut doc, &patch);
    restore_redacted(&mut doc, &current);
    commit(state, &doc).await
}

async fn commit(state: &Arc<GatewayState>, doc: &Value) -> Result<Value, ErrorShape> {
    let text = serde_json::to_string_pretty(doc).unwrap_or_default() + "\n";
    let path = state.opts.config_path.clone();
    let env = |n: &str| std::env::var(n).ok();
    // Validate exactly as a load would; a rejected edit changes nothing. No file label: a line number
    // in the candidate text (which the caller never saw) would mislead; the key path is what matters.
    parse_str(&text, "", &env).map_err(|e| {
        let mut err = ErrorShape::invalid(format!("invalid config: {e}"));
        if let Some(key) = e.key() {
            err = err.with_details(json!({"code": "CONFIG_INVALID", "path": key}));
        }
        err
    })?;
    write_atomic(&path, &text).map_err(|e| ErrorShape::unavailable(format!("config write failed: {e}")))?;
    let loaded = homarus_config::load_file(&path).map_err(|e| ErrorShape::invalid(format!("invalid config: {e}")))?;
    let restart_required = crate::reload::apply(state, loaded);
    let cfg = state.config();
    Ok(json!({
        "ok": true,
        "path": path.display().to_string(),
        "hash": cfg.hash,
        "config": redact(&cfg.parsed),
        "restartRequired": restart_required,
        "warnings": cfg.warnings,
    }))
}
