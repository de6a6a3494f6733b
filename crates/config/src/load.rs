//! Reading a configuration file: JSON5 → `${VAR}` substitution → strict typed validation.
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::locate::{locate, Locations, Pos};
use crate::{ConfigError, HomarusConfig};

/// A configuration as loaded from disk.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file path.
    pub path: PathBuf,
    /// Whether the file exists (a missing file means the embedded defaults).
    pub exists: bool,
    /// The file text, as on disk.
    pub raw: String,
    /// The file parsed, before `${VAR}` substitution.
    pub parsed: Value,
    /// The validated configuration (after substitution).
    pub config: HomarusConfig,
    /// SHA-256 of `raw`, used as the `baseHash` of edits.
    pub hash: String,
    /// Non-fatal findings, e.g. sections accepted but not implemented.
    pub warnings: Vec<String>,
}

/// Hex SHA-256 of the file text.
pub fn content_hash(raw: &str) -> String {
    Sha256::digest(raw.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Load and validate the file at `path`; a missing file yields the defaults.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    let raw = match std::fs::read_to_string(path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LoadedConfig {
                path: path.to_path_buf(),
                exists: false,
                raw: String::new(),
                parsed: Value::Object(Default::default()),
                config: HomarusConfig::default(),
                hash: content_hash(""),
                warnings: Vec::new(),
            });
        }
        Err(source) => return Err(ConfigError::Io { path: path.to_path_buf(), source }),
    };
    let label = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (parsed, config, warnings) = parse_str(&raw, &label, &env)?;
    Ok(LoadedConfig { path: path.to_path_buf(), exists: true, hash: content_hash(&raw), raw, parsed, config, warnings })
}

/// Parse and validate configuration text. `file` labels positions in errors; `env` resolves `${VAR}`.
/// Returns the parsed document (before substitution), the validated config and warnings.
pub fn parse_str(
    src: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Value, HomarusConfig, Vec<String>), ConfigError> {
    let parsed: Value = if src.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        json5::from_str(src).map_err(|e| syntax_error(e, file))?
    };
    let locations = locate(src);
    if !parsed.is_object() {
        return Err(invalid("", "expected an object at the top level".into(), file, &locations));
    }
    let mut resolved = parsed.clone();
    substitute_env(&mut resolved, &mut String::new(), env, file, &locations)?;
    let config: HomarusConfig = serde_path_to_error::deserialize(resolved).map_err(|err| {
        let key = dotted(&err.path().to_string());
        let message = humanize(&key, &err.inner().to_string());
        invalid(&key, message, file, &locations)
    })?;
    check_plugin_budgets(&config, file, &locations)?;
    let warnings = config
        .unimplemented_sections()
        .into_iter()
        .map(|s| {
            format!("{s}: accepted for OpenClaw compatibility but not implemented by Homarus yet; it has no effect")
        })
        .collect();
    Ok((parsed, config, warnings))
}

/// Parse JSON5 text into a JSON value (no validation), e.g. a `config.patch` document.
pub fn parse_json5(src: &str, file: &str) -> Result<Value, ConfigError> {
    json5::from_str(src).map_err(|e| syntax_error(e, file))
}

/// Hook budgets are capped at 10 minutes, as in OpenClaw.
const MAX_HOOK_BUDGET_MS: u64 = 600_000;

fn check_plugin_budgets(config: &HomarusConfig, file: &str, locations: &Locations) -> Result<(), ConfigError> {
    for (id, entry) in &config.plugins.entries {
        let h = &entry.hooks;
        let all = h
            .timeout_ms
            .map(|ms| ("timeoutMs".to_string(), ms))
            .into_iter()
            .chain(h.timeouts.iter().map(|(k, v)| (format!("timeouts.{k}"), *v)));
        for (field, ms) in all {
            if ms == 0 || ms > MAX_HOOK_BUDGET_MS {
                let key = format!("plugins.entries.{id}.hooks.{field}");
                return Err(invalid(&key, format!("expected 1-{MAX_HOOK_BUDGET_MS} ms, found {ms}"), file, locations));
            }
        }
    }
    Ok(())
}

fn syntax_error(e: json5::Error, file: &str) -> ConfigError {
    let json5::Error::Message { msg, location } = e;
    let pos = location.map(|l| Pos { line: l.line, col: l.column });
    ConfigError::Syntax {
        file: file.to_string(),
        pos,
        message: format!("invalid JSON5: {}", msg.lines().next().unwrap_or("")),
    }
}

fn invalid(key: &str, message: String, file: &str, locations: &Locations) -> ConfigError {
    let pos = if message.starts_with("unknown key") { locations.key(key) } else { locations.value(key) };
    ConfigError::Invalid { key: key.to_string(), message, file: file.to_string(), pos }
}

/// serde_path_to_error prints `gateway.port`, `a[0].b` or `.` for the root.
fn dotted(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        path.to_string()
    }
}

/// Replace `${VAR}` (upper-case names) in every string; `$${VAR}` is a literal `${VAR}`.
fn substitute_env(
    v: &mut Value,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
    file: &str,
    locations: &Locations,
) -> Result<(), ConfigError> {
    match v {
        Value::String(s) if s.contains("${") => {
            *s = expand(s, env).map_err(|name| {
                invalid(
                    path,
                    format!("environment variable {name} is not set (referenced as ${{{name}}})"),
                    file,
                    locations,
                )
            })?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute_env(item, path, env, file, locations)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                substitute_env(item, path, env, file, locations)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        let Some(end) = rest[at..].find('}') else { break };
        let name = &rest[at + 2..at + end];
        let valid = !name.is_empty()
            && name.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            out.push_str(&rest[..at + end + 1]);
        } else if escaped {
            out.push_str(&rest[..at - 1]);
            out.push_str(&rest[at..at + end + 1]);
        } else {
            out.push_str(&rest[..at]);
            out.push_str(&env(name).ok_or_else(|| name.to_string())?);
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Turn serde's wording into "expected X, found Y", and add a "did you mean" to unknown keys.
fn humanize(key: &str, msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates = backticked(expected);
        let parent = key.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
        let mut out = if key.is_empty() { format!("unknown key `{name}`") } else { "unknown key".to_string() };
        if let Some(best) = nearest(name, &candidates) {
            let full = if parent.is_empty() { best.to_string() } else { format!("{parent}.{best}") };
            out.push_str(&format!("; did you mean `{full}`?"));
        }
        return out;
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (found, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates = backticked(expected);
        let list = candidates.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        let mut out = format!("expected one of {list}, found \"{found}\"");
        if let Some(best) = nearest(found, &candidates) {
            out.push_str(&format!("; did you mean \"{best}\"?"));
        }
        return out;
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                let found = found.strip_prefix("string ").unwrap_or(found);
                let found = found.strip_prefix("integer ").unwrap_or(found).trim_matches('`');
                let expected = match expected {
                    "struct HomarusConfig" | "a map" => "an object".to_string(),
                    e if e.starts_with("struct ") => "an object".to_string(),
                    e => e.to_string(),
                };
                return format!("expected {expected}, found {found}");
            }
        }
    }
    msg.to_string()
}

fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&name.to_ascii_lowercase(), &c.to_ascii_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(src: &str) -> String {
        parse_str(src, "homarus.json", &no_env).unwrap_err().to_string()
    }

    #[test]
    fn port_type_error_names_key_and_line() {
        let src = "{\n  gateway: {\n    port: \"abc\",\n  },\n}\n";
        assert_eq!(err(src), "gateway.port: expected an integer 1-65535, found \"abc\" at homarus.json:3:11");
        let src = "{ gateway: { port: 70000 } }";
        assert_eq!(err(src), "gateway.port: expected an integer 1-65535, found 70000 at homarus.json:1:20");
    }

    #[test]
    fn unknown_key_suggests_the_nearest() {
        let src = "{\n  gateway: { autth: { mode: 'token' } },\n}";
        assert_eq!(err(src), "gateway.autth: unknown key; did you mean `gateway.auth`? at homarus.json:2:14");
        let src = "{ gatway: {} }";
        assert!(err(src).contains("did you mean `gateway`?"), "{}", err(src));
    }

    #[test]
    fn bad_enum_and_syntax_errors() {
        let e = err("{ gateway: { auth: { mode: 'tokn' } } }");
        assert!(e.starts_with("gateway.auth.mode: expected one of \"none\", \"token\""), "{e}");
        assert!(e.contains("did you mean \"token\"?"), "{e}");
        let e = err("{ gateway: { port: 1 ");
        assert!(e.starts_with("homarus.json:"), "{e}");
        assert!(e.contains("invalid JSON5"), "{e}");
        assert_eq!(err("[1]"), "(root): expected an object at the top level at homarus.json:1:1");
    }

    #[test]
    fn plugin_entries_are_typed_and_budgets_bounded() {
        let (_, cfg, _) = parse_str(
            "{plugins:{load:{paths:['/p']},entries:{ledger:{enabled:true,config:{db:'x'},hooks:{timeoutMs:500,timeouts:{session_end:900}}}}}}",
            "h.json",
            &no_env,
        )
        .unwrap();
        assert_eq!(cfg.plugins.entries["ledger"].hooks.timeouts["session_end"], 900);
        assert_eq!(cfg.plugins.load.paths, vec!["/p".to_string()]);
        let e = err("{plugins:{entries:{ledger:{hooks:{timeouts:{session_end:700000}}}}}}");
        assert!(
            e.starts_with("plugins.entries.ledger.hooks.timeouts.session_end: expected 1-600000 ms, found 700000"),
            "{e}"
        );
        let e = err("{plugins:{entries:{ledger:{enabeld:true}}}}");
        assert!(e.contains("did you mean `plugins.entries.ledger.enabled`?"), "{e}");
    }

    #[test]
    fn env_substitution_and_escape() {
        let env = |n: &str| (n == "TOK").then(|| "s3cret".to_string());
        let (parsed, cfg, _) =
            parse_str("{gateway:{auth:{token:'${TOK}', password: '$${TOK}'}}}", "h.json", &env).unwrap();
        assert_eq!(cfg.gateway.auth.token.as_deref(), Some("s3cret"));
        assert_eq!(cfg.gateway.auth.password.as_deref(), Some("${TOK}"));
        assert_eq!(parsed["gateway"]["auth"]["token"], "${TOK}");
        let e = parse_str("{gateway:{auth:{token:'${MISSING}'}}}", "h.json", &env).unwrap_err().to_string();
        assert_eq!(
            e,
            "gateway.auth.token: environment variable MISSING is not set (referenced as ${MISSING}) at h.json:1:23"
        );
    }

    #[test]
    fn openclaw_sections_load_with_warnings() {
        let src = r#"{"agents":{"defaults":{"model":{"primary":"local/mock-model"}}},
          "models":{"mode":"merge","providers":{"local":{"baseUrl":"http://127.0.0.1:18900/v1","apiKey":"sk","api":"openai-completions",
          "models":[{"id":"mock-model","name":"Mock Model","reasoning":false,"input":["text"],"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0},"contextWindow":120000,"maxTokens":1024}]}}},
          "gateway":{"mode":"local","port":18789,"bind":"loopback","auth":{"mode":"token","token":"t"}}}"#;
        let (_, cfg, warnings) = parse_str(src, "openclaw.json", &no_env).unwrap();
        assert_eq!(cfg.port(), 18789);
        // Models and agents are typed now: only the keys Homarus does not act on are reported.
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("models.mode:"), "{warnings:?}");
        let local = &cfg.models.providers["local"];
        assert_eq!(local.models[0].context_window, Some(120000));
        assert_eq!(local.models[0].name.as_deref(), Some("Mock Model"));
        assert_eq!(cfg.agents.defaults.model.as_ref().unwrap().refs(), ["local/mock-model"]);
    }
}
