//! `sessions.list|describe|create|patch|reset|delete` and `chat.history`.
//!
//! Params are validated against OpenClaw's schemas first; the handlers then read the fields Homarus
//! acts on. Every change is broadcast as `sessions.changed` to clients holding `operator.read`.
use std::sync::Arc;

use serde_json::{json, Map, Value};

use homarus_protocol::{ErrorShape, Scope};
use homarus_store::read_transcript;

use super::params_schema::validate;
use super::store_error;
use crate::lifecycle;
use crate::sessions::{entry_json, SessionService};
use crate::state::{now_ms, GatewayState};

const DEFAULT_LIST_LIMIT: u64 = 200;
const MAX_LIST_LIMIT: u64 = 1000;
const DEFAULT_HISTORY_LIMIT: usize = 200;
const MAX_HISTORY_LIMIT: usize = 1000;

fn obj(method: &str, params: Option<&Value>) -> Result<Map<String, Value>, ErrorShape> {
    let v = params.cloned().filter(|p| !p.is_null()).unwrap_or_else(|| json!({}));
    validate(method, &v)?;
    Ok(v.as_object().cloned().unwrap_or_default())
}

fn s<'a>(p: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

fn service(state: &GatewayState) -> SessionService<'_> {
    SessionService::new(&state.store, &state.opts.state_dir)
}

/// Broadcast `sessions.changed` (and drop the cached summary).
pub(crate) fn changed(state: &GatewayState, reason: &str, key: &str, agent_id: &str, session: Option<Value>) {
    *state.sessions_summary.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let mut payload = json!({"sessionKey": key, "agentId": agent_id, "reason": reason, "ts": now_ms()});
    if let Some(s) = session {
        payload["session"] = s;
    }
    state.broadcast("sessions.changed", &payload, &[Scope::READ, Scope::WRITE]);
}

/// New sessions cannot start once the close sequence began: the drain could not end them.
fn refuse_while_closing(state: &GatewayState) -> Result<(), ErrorShape> {
    if state.closing.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ErrorShape::unavailable("gateway is shutting down; retry after it restarts").with_retry_after(1500));
    }
    Ok(())
}

/// Filters of `sessions.list` applied in memory (everything but the agent and paging).
struct ListFilters<'a> {
    label: Option<&'a str>,
    active_since: Option<i64>,
    require_interaction: bool,
    exclude_subagents: bool,
    exclude_cron: bool,
    exclude_system: bool,
    include_global: bool,
    pinned: Option<bool>,
    archived: Option<bool>,
    spawned_by: Option<&'a str>,
    search: Option<String>,
}

impl<'a> ListFilters<'a> {
    fn from(p: &'a Map<String, Value>) -> Self {
        let flag = |k: &str| p.get(k).and_then(Value::as_bool);
        let active_minutes = p.get("activeMinutes").and_then(Value::as_u64);
        Self {
            label: s(p, "label"),
            active_since: active_minutes
                .or(flag("activeOnly").filter(|b| *b).map(|_| 60))
                .map(|m| now_ms() - (m as i64) * 60_000),
            require_interaction: flag("requireLastInteraction") == Some(true),
            exclude_subagents: flag("excludeSubagents") == Some(true),
            exclude_cron: flag("excludeCron") == Some(true),
            exclude_system: flag("excludeSystem") == Some(true),
            include_global: flag("includeGlobal") != Some(false),
            pinned: flag("pinned"),
            archived: flag("archived"),
            spawned_by: s(p, "spawnedBy"),
            search: s(p, "search").map(str::to_lowercase).filter(|q| !q.is_empty()),
        }
    }

    /// Whether anything beyond the agent filter is asked for (then paging happens after filtering).
    fn any(&self) -> bool {
        self.label.is_some()
            || self.active_since.is_some()
            || self.require_interaction
            || self.exclude_subagents
            || self.exclude_cron
            || self.exclude_system
            || !self.include_global
            || self.pinned.is_some()
            || self.archived.is_some()
            || self.spawned_by.is_some()
            || self.search.is_some()
    }

    fn keep(&self, r: &homarus_store::SessionRow) -> bool {
        let pref_bool = |k: &str| r.prefs.get(k).and_then(Value::as_bool).unwrap_or(false);
        let kind = |marker: &str| r.key.contains(marker);
        self.label.is_none_or(|l| r.label.as_deref() == Some(l))
            && self.active_since.is_none_or(|t| r.updated_at_ms >= t)
            && (!self.require_interaction || r.last_interaction_at_ms.is_some())
            && !(self.exclude_subagents && kind(":subagent:"))
            && !(self.exclude_cron && kind(":cron:"))
            && !(self.exclude_system && (kind(":boot:") || kind(":hook:") || kind(":heartbeat")))
            && (self.include_global || r.key != "global")
            && self.pinned.is_none_or(|p| pref_bool("pinned") == p)
            && self.archived.is_none_or(|a| pref_bool("archived") == a)
            && self.spawned_by.is_none_or(|s| r.prefs.get("spawnedBy").and_then(Value::as_str) == Some(s))
            && self.search.as_ref().is_none_or(|q| {
                r.key.contains(q.as_str())
                    || r.label.as_deref().is_some_and(|l| l.to_lowercase().contains(q.as_str()))
                    || r.display_name.as_deref().is_some_and(|d| d.to_lowercase().contains(q.as_str()))
            })
    }
}

/// The first user message (for a derived title) and the last message (for a preview) of a transcript.
fn transcript_glance(file: &str) -> (Option<String>, Option<String>) {
    let Ok(t) = read_transcript(std::path::Path::new(file)) else { return (None, None) };
    let text = |m: &Value| match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(b) => b.iter().filter_map(|x| x["text"].as_str()).collect(),
        _ => String::new(),
    };
    let messages: Vec<&Value> = t.entries.iter().filter(|e| e["type"] == "message").map(|e| &e["message"]).collect();
    let first_user = messages.iter().find(|m| m["role"] == "user").map(|m| text(m)).filter(|t| !t.trim().is_empty());
    let last =
        messages.iter().rev().find(|m| m["role"] != "toolResult").map(|m| text(m)).filter(|t| !t.trim().is_empty());
    let cut =
        |s: String, n: usize| s.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(n).collect::<String>();
    (first_user.map(|t| cut(t, 60)), last.map(|t| cut(t, 160)))
}

/// `sessions.list`: newest first (or by `sortBy`), paged (`limit`, `offset`), filtered by `agentId`,
/// `label`, `activeMinutes`/`activeOnly`, `requireLastInteraction`, `excludeSubagents`, `excludeCron`,
/// `excludeSystem`, `includeGlobal`, `pinned`, `archived`, `spawnedBy`, `search`; with
/// `includeDerivedTitles` and `includeLastMessage` each row gets `derivedTitle` / `lastMessagePreview`.
pub fn list(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("sessions.list", params)?;
    let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(DEFAULT_LIST_LIMIT).min(MAX_LIST_LIMIT);
    let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0);
    let agent = s(&p, "agentId");
    let filters = ListFilters::from(&p);
    let sort = s(&p, "sortBy").filter(|s| *s != "updatedAt");
    let in_memory = filters.any() || sort.is_some();
    // Filters other than the agent are applied after reading; page over everything then.
    let (rows, total) = if in_memory {
        state.store.sessions_page(agent, u32::MAX, 0).map_err(store_error)?
    } else {
        state.store.sessions_page(agent, limit as u32, offset as u32).map_err(store_error)?
    };
    let mut rows: Vec<_> = rows.into_iter().filter(|r| filters.keep(r)).collect();
    if sort.is_some() {
        // `lastInteractionAt` and `activity`: most recent interaction first, never-used sessions last.
        rows.sort_by_key(|r| std::cmp::Reverse(r.last_interaction_at_ms.unwrap_or(i64::MIN)));
    }
    let total = if in_memory { rows.len() as u64 } else { total };
    if in_memory {
        rows = rows.into_iter().skip(offset as usize).take(limit as usize).collect();
    }
    let titles = p.get("includeDerivedTitles").and_then(Value::as_bool) == Some(true);
    let previews = p.get("includeLastMessage").and_then(Value::as_bool) == Some(true);
    let sessions: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = entry_json(r);
            if titles || previews {
                let (title, last) = transcript_glance(&r.session_file);
                if titles {
                    v["derivedTitle"] = json!(title);
                }
                if previews {
                    v["lastMessagePreview"] = json!(last);
                }
            }
            v
        })
        .collect();
    let next = offset + rows.len() as u64;
    let has_more = next < total;
    Ok(json!({
        "ts": now_ms(),
        "path": state.opts.database_path().display().to_string(),
        "count": rows.len(),
        "totalCount": total,
        "limitApplied": limit,
        "nextOffset": if has_more { json!(next) } else { Value::Null },
        "hasMore": has_more,
        "sessions": sessions,
    }))
}

/// `sessions.describe`.
pub fn describe(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("sessions.describe", params)?;
    let row = service(state).get(s(&p, "key").unwrap_or_default())?;
    Ok(json!({"session": entry_json(&row)}))
}

/// `sessions.create`: a new session (or the existing one with that key).
pub fn create(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("sessions.create", params)?;
    refuse_while_closing(state)?;
    let (row, created) = service(state).create(
        s(&p, "key"),
        s(&p, "agentId"),
        s(&p, "label"),
        s(&p, "displayName"),
        "operator",
        now_ms(),
    )?;
    let entry = entry_json(&row);
    if created {
        tracing::info!(key = %row.key, session = %row.session_id, "session created");
        lifecycle::started(state, &row, None);
        changed(state, "create", &row.key, &row.agent_id, Some(entry.clone()));
    }
    Ok(json!({"ok": true, "key": row.key, "sessionId": row.session_id, "entry": entry, "created": created}))
}

/// `sessions.patch`.
pub fn patch(state: &Arc<GatewayState>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("sessions.patch", params)?;
    let row = service(state).patch(&p, now_ms())?;
    let entry = entry_json(&row);
    changed(state, "patch", &row.key, &row.agent_id, Some(entry.clone()));
    let ctx = json!({"sessionEntry": entry, "patch": Value::Object(p.clone())});
    crate::automation::emit_detached(state, crate::automation::event("session", "patch", &row.key, ctx));
    Ok(json!({"ok": true, "path": state.opts.database_path().display().to_string(), "key": row.key, "entry": entry}))
}

/// `sessions.reset`: a fresh session id under the same key; the old transcript is archived. The
/// `command:new`/`command:reset` internal hooks run first (their messages are not chat replies here).
pub async fn reset(state: &Arc<GatewayState>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("sessions.reset", params)?;
    let key = s(&p, "key").unwrap_or_default();
    let command = if s(&p, "reason") == Some("new") { "new" } else { "reset" };
    let (row, retired) =
        lifecycle::reset_session(state, key, s(&p, "expectedSessionId"), command, "rpc:sessions.reset").await?;
    Ok(json!({
        "ok": true,
        "key": row.key,
        "sessionId": row.session_id,
        "previousSessionId": retired.previous.session_id,
        "archived": retired.archived.map(|a| vec![a.display().to_string()]).unwrap_or_default(),
        "entry": entry_json(&row),
    }))
}

/// `sessions.delete`: removes the entry; the transcript is archived unless `deleteTranscript` is true.
pub fn delete(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("sessions.delete", params)?;
    let key = s(&p, "key").unwrap_or_default();
    let svc = service(state);
    svc.get_expected(key, s(&p, "expectedSessionId"))?;
    let delete_transcript = p.get("deleteTranscript").and_then(Value::as_bool).unwrap_or(false);
    let retired = lifecycle::delete_session(state, key, !delete_transcript)?;
    tracing::info!(key, session = %retired.previous.session_id, "session deleted");
    Ok(json!({
        "ok": true,
        "key": key,
        "deleted": true,
        "archived": retired.archived.map(|a| vec![a.display().to_string()]).unwrap_or_default(),
    }))
}

/// `chat.history`: the last `limit` messages of the session's current transcript, oldest first,
/// each text trimmed to `maxChars`.
pub fn history(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("chat.history", params)?;
    let key = s(&p, "sessionKey").unwrap_or_default();
    let row = service(state).get(key)?;
    let limit = p
        .get("limit")
        .and_then(Value::as_u64)
        .map(|l| l as usize)
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .min(MAX_HISTORY_LIMIT);
    let max_chars = p.get("maxChars").and_then(Value::as_u64).map(|m| m as usize);
    let transcript = read_transcript(std::path::Path::new(&row.session_file)).map_err(store_error)?;
    for w in &transcript.warnings {
        tracing::warn!(key, "{w}");
    }
    let mut messages: Vec<Value> = transcript
        .entries
        .iter()
        .filter(|e| e["type"] == "message")
        .enumerate()
        .map(|(i, e)| {
            let mut m = e.get("message").cloned().unwrap_or(Value::Null);
            if let (Some(max), Some(text)) = (max_chars, m.get("content").and_then(Value::as_str)) {
                let cut: String = text.chars().take(max).collect();
                m["content"] = json!(cut);
            }
            if let Some(obj) = m.as_object_mut() {
                obj.insert(
                    "__openclaw".into(),
                    json!({"id": e.get("id").cloned().unwrap_or(Value::Null), "seq": i + 1}),
                );
            }
            m
        })
        .collect();
    if messages.len() > limit {
        messages.drain(..messages.len() - limit);
    }
    Ok(json!({"sessionKey": row.key, "sessionId": row.session_id, "messages": messages}))
}
