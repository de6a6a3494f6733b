//! Editing configuration documents: JSON merge patch, dotted-path set/unset, secret redaction and
//! atomic writes.
use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};

use crate::ConfigError;

/// What secrets are replaced with in `config.get` (the same sentinel OpenClaw uses, so a client that
/// round-trips a redacted document through `config.apply` keeps the stored secret).
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "token"
        || k == "password"
        || k == "apikey"
        || k == "secret"
        || k.ends_with("token") && k != "maxtokens"
        || k.ends_with("secret")
        || k.ends_with("password")
}

/// Replace every secret-looking value (tokens, passwords, API keys) with [`REDACTED`].
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && v.is_string() { Value::String(REDACTED.into()) } else { redact(v) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// Put back the original value wherever `new` still holds [`REDACTED`].
pub fn restore_redacted(new: &mut Value, old: &Value) {
    match new {
        Value::String(s) if s == REDACTED => *new = old.clone(),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                restore_redacted(v, old.get(k).unwrap_or(&Value::Null));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                restore_redacted(v, old.get(i).unwrap_or(&Value::Null));
            }
        }
        _ => {}
    }
}

/// RFC 7396 JSON merge patch: objects merge, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch_map {
            if v.is_null() {
                map.remove(k);
            } else {
                merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('.').filter(|p| !p.is_empty()).collect()
}

/// Set `a.b.c` to `value`, creating objects on the way. Fails when a step is not an object.
pub fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let parts = split_path(path);
    let Some((last, parents)) = parts.split_last() else { return Err("empty key path".into()) };
    let mut cur = doc;
    for (i, p) in parents.iter().enumerate() {
        if !cur.is_object() {
            return Err(format!("{}: is not an object", parts[..i].join(".")));
        }
        cur = cur
            .as_object_mut()
            .into_iter()
            .next()
            .map(|m| m.entry(*p).or_insert(Value::Object(Map::new())))
            .ok_or("unreachable")?;
    }
    match cur.as_object_mut() {
        Some(map) => {
            map.insert((*last).to_string(), value);
            Ok(())
        }
        None => Err(format!("{}: is not an object", parents.join("."))),
    }
}

/// Remove `a.b.c`. Returns whether something was removed.
pub fn unset_path(doc: &mut Value, path: &str) -> bool {
    let parts = split_path(path);
    let Some((last, parents)) = parts.split_last() else { return false };
    let mut cur = doc;
    for p in parents {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    cur.as_object_mut().is_some_and(|m| m.remove(*last).is_some())
}

/// Write `contents` to `path` atomically (temp file in the same folder, fsync, rename) with mode 0600:
/// a config file may hold secrets, and a reader never sees half a file.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), ConfigError> {
    let io = |source| ConfigError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_and_deletes() {
        let mut doc = json!({"gateway":{"port":1,"auth":{"mode":"token"}},"x":1});
        merge_patch(&mut doc, &json!({"gateway":{"port":2,"auth":null},"x":null,"y":[1]}));
        assert_eq!(doc, json!({"gateway":{"port":2},"y":[1]}));
    }

    #[test]
    fn set_and_unset_paths() {
        let mut doc = json!({});
        set_path(&mut doc, "gateway.auth.mode", json!("password")).unwrap();
        assert_eq!(doc, json!({"gateway":{"auth":{"mode":"password"}}}));
        assert!(set_path(&mut doc, "gateway.auth.mode.x", json!(1)).is_err());
        assert!(unset_path(&mut doc, "gateway.auth.mode"));
        assert!(!unset_path(&mut doc, "gateway.nope.x"));
        assert_eq!(doc, json!({"gateway":{"auth":{}}}));
    }

    #[test]
    fn redaction_round_trips() {
        let doc =
            json!({"gateway":{"auth":{"token":"abc","mode":"token"}},"models":{"p":{"apiKey":"k","maxTokens":5}}});
        let mut red = redact(&doc);
        assert_eq!(red["gateway"]["auth"]["token"], REDACTED);
        assert_eq!(red["models"]["p"]["apiKey"], REDACTED);
        assert_eq!(red["models"]["p"]["maxTokens"], 5);
        restore_redacted(&mut red, &doc);
        assert_eq!(red, doc);
    }

    #[test]
    fn atomic_write_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/h.json");
        write_atomic(&p, "{}").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
