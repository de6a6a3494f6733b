//! `health`, `status` and `system-presence`: truthful snapshots of what this gateway is doing.
use std::time::Instant;

use serde_json::{json, Value};

use crate::state::{now_ms, GatewayState};

/// How many recent sessions `health` and `status` show.
const RECENT_SESSIONS: u32 = 5;

/// `{path, count, recent: [{key, updatedAt, age}]}`: read from the store once, then served from the
/// cache until a session changes (`age` is recomputed on every call).
fn sessions_summary(state: &GatewayState) -> Value {
    let now = now_ms();
    let mut cache = state.sessions_summary.lock().unwrap_or_else(|p| p.into_inner());
    let summary = cache.get_or_insert_with(|| {
        let (recent, count) = state.store.sessions_page(None, RECENT_SESSIONS, 0).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read sessions for health");
            (Vec::new(), 0)
        });
        let recent: Vec<Value> = recent.iter().map(|r| json!({"key": r.key, "updatedAt": r.updated_at_ms})).collect();
        json!({"path": state.opts.database_path().display().to_string(), "count": count, "recent": recent})
    });
    let mut out = summary.clone();
    if let Some(recent) = out["recent"].as_array_mut() {
        for r in recent {
            let age = (now - r["updatedAt"].as_i64().unwrap_or(now)).max(0);
            r["age"] = json!(age);
        }
    }
    out
}

/// `health.plugins`: running plugin ids, and the ones that are failing with why.
fn plugins_summary(state: &GatewayState) -> (Value, Value) {
    let guard = state.plugins.lock().unwrap_or_else(|p| p.into_inner());
    let Some(host) = guard.as_ref() else { return (json!({"loaded": [], "errors": []}), json!([])) };
    let statuses = host.statuses();
    let loaded: Vec<&str> = statuses.iter().filter(|s| s.state == "running").map(|s| s.id.as_str()).collect();
    let mut errors: Vec<Value> = statuses
        .iter()
        .filter(|s| s.state != "running" && s.last_error.is_some())
        .map(|s| {
            json!({"id": s.id, "origin": "external", "activated": false, "failurePhase": s.state,
                   "error": s.last_error.clone().unwrap_or_default()})
        })
        .collect();
    errors.extend(
        host.problems().iter().map(|p| json!({"id": "", "origin": "discovery", "activated": false, "error": p})),
    );
    let detail: Vec<Value> = statuses
        .iter()
        .map(|s| {
            json!({"id": s.id, "name": s.name, "dir": s.dir.display().to_string(), "hooks": s.hooks, "state": s.state,
                   "restarts": s.restarts, "lastError": s.last_error, "pid": s.pid})
        })
        .collect();
    (json!({"loaded": loaded, "errors": errors}), Value::Array(detail))
}

/// The `health` payload (also embedded in `hello-ok.snapshot.health`).
pub fn health_payload(state: &GatewayState, duration_ms: u64) -> Value {
    let reload = *state.reload_status.lock().unwrap_or_else(|p| p.into_inner());
    json!({
        "ok": true,
        "ts": now_ms(),
        "durationMs": duration_ms,
        "plugins": plugins_summary(state).0,
        "configReload": {"hotReloadStatus": reload},
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "defaultAgentId": "main",
        "agents": [],
        "sessions": sessions_summary(state),
    })
}

/// `health`.
pub fn health(state: &GatewayState) -> Value {
    let started = Instant::now();
    let mut v = health_payload(state, 0);
    v["durationMs"] = json!(started.elapsed().as_millis() as u64);
    v
}

/// `status`: runtime summary.
pub fn status(state: &GatewayState) -> Value {
    let cfg = state.config();
    let clients = state.clients.lock().unwrap_or_else(|p| p.into_inner()).len();
    let summary = sessions_summary(state);
    json!({
        "runtimeVersion": state.opts.version,
        "runtime": "homarus",
        "gateway": {
            "pid": std::process::id(),
            "bootId": state.boot_id,
            "uptimeMs": state.uptime_ms(),
            "listen": state.listen_addr.to_string(),
            "authMode": state.auth().mode_name(),
            "connections": clients,
            "configPath": state.opts.config_path.display().to_string(),
            "configExists": cfg.exists,
            "configHash": cfg.hash,
            "configWarnings": cfg.warnings,
            "hotReloadStatus": *state.reload_status.lock().unwrap_or_else(|p| p.into_inner()),
            "lastReloadError": *state.last_reload_error.lock().unwrap_or_else(|p| p.into_inner()),
        },
        "plugins": plugins_summary(state).1,
        "heartbeat": {"defaultAgentId": "main", "agents": []},
        "channelSummary": [],
        "queuedSystemEvents": state.system_events.snapshot(),
        "sessions": {
            "paths": [state.opts.database_path().display().to_string()],
            "count": summary["count"],
            "defaults": {"model": null, "contextTokens": null},
            "recent": summary["recent"],
            "maintenance": *state.last_maintenance.lock().unwrap_or_else(|p| p.into_inner()),
        },
    })
}

/// `system-presence`: this gateway, then every authenticated client.
pub fn presence_list(state: &GatewayState) -> Vec<Value> {
    let host = hostname();
    let me = json!({
        "host": host,
        "ip": state.listen_addr.ip().to_string(),
        "version": state.opts.version,
        "platform": std::env::consts::OS,
        "mode": "gateway",
        "reason": "self",
        "instanceId": state.boot_id,
        "text": format!("Gateway: {host} ({}) · homarus {} · mode gateway · reason self", state.listen_addr.ip(), state.opts.version),
        "ts": now_ms(),
    });
    let clients = state.clients.lock().unwrap_or_else(|p| p.into_inner());
    std::iter::once(me).chain(clients.values().map(|c| c.presence.clone())).collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
