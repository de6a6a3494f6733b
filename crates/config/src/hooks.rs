//! `hooks.mappings`: custom webhook paths (`POST <hooks.path>/<name>`) turned into wake or agent
//! actions by templates.
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One mapping. The first whose `match` fits the request owns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookMapping {
    /// Name in logs (default `mapping-<index>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What the mapping answers (every custom path when unset).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<HookMappingMatch>,
    /// `agent` (default: run an agent turn) or `wake` (queue a system event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For `wake`: `now` (default) or `next-heartbeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_mode: Option<String>,
    /// Label of the run (templated; default `Hook`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Target agent (must be in `hooks.allowedAgentIds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Session key (a fixed key; a templated one needs `hooks.allowRequestSessionKey` and a prefix in
    /// `hooks.allowedSessionKeyPrefixes`). Default: a fresh session per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// The agent's message, e.g. `"New issue {{payload.issue.title}} by {{payload.sender.login}}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template: Option<String>,
    /// The wake text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_template: Option<String>,
    /// Tell the main session what the run answered (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<bool>,
    /// Turn timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Other OpenClaw mapping keys (`transform`, `forEach`, `channel`, `to`, `model`, …). Accepted; not used.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `hooks.mappings[].match`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookMappingMatch {
    /// The subpath after `hooks.path` (`github` answers `/hooks/github`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Exact value of the payload's `source` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Render `{{payload.a.b}}`, `{{a.b[0].c}}`, `{{headers.x-name}}`, `{{query.k}}`, `{{path}}` and
/// `{{now}}`: missing values are empty, objects are JSON.
pub fn render_template(template: &str, ctx: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start + 2..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = rest[start + 2..start + 2 + end].trim();
        out.push_str(&lookup(ctx, expr));
        rest = &rest[start + 2 + end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(ctx: &Value, expr: &str) -> String {
    let (root, path) = match expr.split_once('.') {
        Some((r @ ("payload" | "headers" | "query"), p)) => (&ctx[r], p),
        _ if matches!(expr, "path" | "now") => return ctx[expr].as_str().unwrap_or("").to_string(),
        _ => (&ctx["payload"], expr),
    };
    let mut v = root;
    for seg in path.split('.') {
        let (name, indexes) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !name.is_empty() {
            v = &v[name];
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            v = &v[idx.trim_end_matches(']').parse::<usize>().unwrap_or(usize::MAX)];
        }
    }
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates() {
        let ctx = json!({"payload": {"issue": {"title": "Crash", "labels": [{"name": "bug"}]}, "n": 3},
                         "headers": {"x-event": "issues"}, "path": "github", "now": "T"});
        assert_eq!(
            render_template(
                "{{headers.x-event}}: {{payload.issue.title}} [{{issue.labels[0].name}}] #{{n}} {{missing}}at {{path}}",
                &ctx
            ),
            "issues: Crash [bug] #3 at github"
        );
        assert_eq!(render_template("{{payload.issue.labels}}", &ctx), r#"[{"name":"bug"}]"#);
        assert_eq!(render_template("open {{ never", &ctx), "open {{ never");
    }
}
