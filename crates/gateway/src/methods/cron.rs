//! `cron.list|get|status|add|update|remove|run|runs`, `last-heartbeat`, `set-heartbeats`.
use std::sync::Arc;

use serde_json::{json, Map, Value};

use homarus_cron::CronJob;
use homarus_protocol::ErrorShape;

use crate::state::{now_ms, GatewayState};

fn obj(params: Option<&Value>) -> Map<String, Value> {
    params.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn job_id(p: &Map<String, Value>) -> Result<String, ErrorShape> {
    p.get("id")
        .or_else(|| p.get("jobId"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| ErrorShape::invalid("invalid params: at /id: required (or jobId)"))
}

fn not_found(id: &str) -> ErrorShape {
    ErrorShape::invalid(format!("no cron job {id}")).with_details(json!({"code": "CRON_JOB_NOT_FOUND", "jobId": id}))
}

fn wire(state: &GatewayState, job: &CronJob) -> Value {
    let mut v = serde_json::to_value(job).unwrap_or(Value::Null);
    v["state"]["running"] = json!(state.cron.is_running(&job.id));
    v
}

/// `cron.list`.
pub fn list(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj(params);
    let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(50).clamp(1, 200) as usize;
    let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let include_disabled = p.get("includeDisabled").and_then(Value::as_bool).unwrap_or(false);
    let enabled = p.get("enabled").and_then(Value::as_str).unwrap_or(if include_disabled { "all" } else { "enabled" });
    let query = p.get("query").and_then(Value::as_str).map(str::to_lowercase);
    let agent = p.get("agentId").and_then(Value::as_str);
    let kind = p.get("scheduleKind").and_then(Value::as_str).filter(|k| *k != "all");
    let mut jobs: Vec<CronJob> = state
        .cron
        .all()
        .into_iter()
        .filter(|j| match enabled {
            "enabled" => j.enabled,
            "disabled" => !j.enabled,
            _ => true,
        })
        .filter(|j| query.as_ref().is_none_or(|q| j.name.to_lowercase().contains(q) || j.id.contains(q.as_str())))
        .filter(|j| agent.is_none_or(|a| j.agent_id.as_deref().unwrap_or("main") == a))
        .filter(|j| kind.is_none_or(|k| j.schedule.kind() == k))
        .collect();
    let desc = p.get("sortDir").and_then(Value::as_str) == Some("desc");
    match p.get("sortBy").and_then(Value::as_str).unwrap_or("nextRunAtMs") {
        "name" => jobs.sort_by(|a, b| a.name.cmp(&b.name)),
        "updatedAtMs" => jobs.sort_by_key(|j| j.updated_at_ms),
        _ => jobs.sort_by_key(|j| j.state.next_run_at_ms.unwrap_or(i64::MAX)),
    }
    if desc {
        jobs.reverse();
    }
    let total = jobs.len();
    let page: Vec<Value> = jobs.iter().skip(offset).take(limit).map(|j| wire(state, j)).collect();
    let has_more = offset + page.len() < total;
    Ok(json!({"jobs": page, "total": total, "offset": offset, "limit": limit, "hasMore": has_more,
              "nextOffset": if has_more { json!(offset + page.len()) } else { Value::Null }}))
}

/// `cron.get {id}`.
pub fn get(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let id = job_id(&obj(params))?;
    state.cron.get(&id).map(|j| wire(state, &j)).ok_or_else(|| not_found(&id))
}

/// `cron.status`.
pub fn status(state: &GatewayState) -> Value {
    let jobs = state.cron.all();
    json!({"enabled": state.config().config.cron.enabled != Some(false), "jobs": jobs.len(),
           "enabledJobs": jobs.iter().filter(|j| j.enabled).count(),
           "running": jobs.iter().filter(|j| state.cron.is_running(&j.id)).count(),
           "nextWakeAtMs": state.cron.next_wake(),
           "lastTickUs": state.cron.last_tick_us.load(std::sync::atomic::Ordering::Relaxed),
           "maxTickUs": state.cron.max_tick_us.load(std::sync::atomic::Ordering::Relaxed),
           "ticks": state.cron.ticks.load(std::sync::atomic::Ordering::Relaxed),
           "totalTickUs": state.cron.total_tick_us.load(std::sync::atomic::Ordering::Relaxed),
           "storePath": state.opts.database_path().display().to_string()})
}

/// `cron.add`: the created job.
pub fn add(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let now = now_ms();
    let mut job = CronJob::from_add(params.unwrap_or(&Value::Null), now).map_err(ErrorShape::invalid)?;
    crate::cron::schedule_from_now(&mut job, now);
    crate::cron::put(state, job.clone());
    crate::cron::announce(state, "added", Some(&job), &job.id, json!({}));
    Ok(wire(state, &job))
}

/// `cron.update {id|jobId, patch}`.
pub fn update(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj(params);
    let id = job_id(&p)?;
    let job = state.cron.get(&id).ok_or_else(|| not_found(&id))?;
    let patch = p.get("patch").ok_or_else(|| ErrorShape::invalid("invalid params: at /patch: required"))?;
    let now = now_ms();
    let mut next = job.patched(patch, now).map_err(ErrorShape::invalid)?;
    if !next.enabled {
        next.state.next_run_at_ms = None;
    }
    crate::cron::schedule_from_now(&mut next, now);
    crate::cron::put(state, next.clone());
    crate::cron::announce(state, "updated", Some(&next), &id, json!({}));
    Ok(wire(state, &next))
}

/// `cron.remove {id|jobId}`.
pub fn remove(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let id = job_id(&obj(params))?;
    let job = crate::cron::remove(state, &id).ok_or_else(|| not_found(&id))?;
    crate::cron::announce(state, "removed", Some(&job), &id, json!({}));
    Ok(json!({"ok": true, "removed": true, "jobId": id}))
}

/// `cron.run {id|jobId, mode?: force|due|if-enabled}`: start a run now (`due`: only if it is due).
pub fn run(state: &Arc<GatewayState>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj(params);
    let id = job_id(&p)?;
    let job = state.cron.get(&id).ok_or_else(|| not_found(&id))?;
    let now = now_ms();
    let mode = p.get("mode").and_then(Value::as_str).unwrap_or("force");
    let (run, reason) = match mode {
        "force" => (true, None),
        "if-enabled" => (job.enabled, (!job.enabled).then_some("disabled")),
        "due" => {
            let due = job.enabled && job.state.next_run_at_ms.is_some_and(|t| t <= now);
            (due, (!due).then_some("not-due"))
        }
        m => {
            return Err(ErrorShape::invalid(format!("invalid params: at /mode: {m:?} is not force, due or if-enabled")))
        }
    };
    if !run {
        return Ok(json!({"ok": true, "ran": false, "reason": reason, "jobId": id}));
    }
    match crate::cron::fire(state, &id, now, now, true) {
        Ok(run_id) => Ok(json!({"ok": true, "ran": true, "enqueued": true, "runId": run_id, "jobId": id})),
        Err(e) if state.cron.is_running(&id) => {
            Ok(json!({"ok": true, "ran": false, "reason": "already-running", "error": e}))
        }
        Err(e) => Err(ErrorShape::invalid(e)),
    }
}

fn strings(p: &Map<String, Value>, list: &str, one: &str) -> Vec<String> {
    let mut out: Vec<String> = p
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if let Some(s) = p.get(one).and_then(Value::as_str).filter(|s| *s != "all") {
        out.push(s.to_string());
    }
    out
}

/// `cron.runs {id|jobId?, scope?, limit?, offset?, statuses?, deliveryStatuses?, sortDir?}`.
pub fn runs(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj(params);
    let id = p.get("id").or_else(|| p.get("jobId")).and_then(Value::as_str).map(str::to_string);
    if p.get("scope").and_then(Value::as_str) == Some("job") && id.is_none() {
        return Err(ErrorShape::invalid("invalid params: at /id: required with scope \"job\""));
    }
    let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(50).clamp(1, 200);
    let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0);
    let asc = p.get("sortDir").and_then(Value::as_str) == Some("asc");
    let page = state
        .store
        .cron_runs(
            id.as_deref(),
            &strings(&p, "statuses", "status"),
            &strings(&p, "deliveryStatuses", "deliveryStatus"),
            limit,
            offset,
            asc,
        )
        .map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    let has_more = offset + (page.entries.len() as u64) < page.total;
    Ok(json!({"entries": page.entries, "total": page.total, "offset": offset, "limit": limit, "hasMore": has_more}))
}

/// `last-heartbeat`.
pub fn last_heartbeat(state: &GatewayState) -> Value {
    state.heartbeats.last()
}

/// `set-heartbeats {enabled}`.
pub fn set_heartbeats(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let on = obj(params)
        .get("enabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| ErrorShape::invalid("invalid params: at /enabled: required (true or false)"))?;
    state.heartbeats.set_enabled(on);
    Ok(json!({"ok": true, "enabled": on}))
}
