//! Task records: created when background work starts, moved through `queued → running → terminal`,
//! kept for a retention period, and shown on the wire in OpenClaw's `TaskSummary` shape.
use homarus_store::{Store, StoreError, TaskRecord, TaskStatus};
use serde_json::{json, Value};

/// How long an ended task is kept (7 days).
pub const RETENTION_MS: i64 = 7 * 86_400_000;
/// How long a lost task is kept (24 h).
pub const LOST_RETENTION_MS: i64 = 86_400_000;

/// What a new task is.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    /// The run doing the work.
    pub run_id: String,
    /// `subagent`, `cli`, `cron`.
    pub runtime: String,
    /// `subagent`, `agent`, `image_generate`, …
    pub kind: String,
    /// Short label.
    pub label: String,
    /// The prompt.
    pub task: String,
    /// Owning agent.
    pub agent_id: String,
    /// Who asked.
    pub requester_session_key: Option<String>,
    /// The session doing it.
    pub child_session_key: Option<String>,
    /// `done_only`, `state_changes`, `silent`.
    pub notify_policy: String,
    /// Creator id.
    pub source_id: Option<String>,
    /// Start as running (no queue).
    pub running: bool,
}

/// The ledger over a store.
pub struct Ledger<'a> {
    store: &'a Store,
}

impl<'a> Ledger<'a> {
    /// A ledger over `store`.
    pub fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Record new work.
    pub fn create(&self, t: NewTask, now: i64) -> Result<TaskRecord, StoreError> {
        let status = if t.running { TaskStatus::Running } else { TaskStatus::Queued };
        let delivery = if t.notify_policy == "silent" { "not_applicable" } else { "pending" };
        let rec = TaskRecord {
            task_id: uuid::Uuid::new_v4().to_string(),
            run_id: t.run_id,
            runtime: t.runtime,
            kind: t.kind,
            label: t.label,
            task: t.task,
            status,
            notify_policy: t.notify_policy,
            delivery_status: delivery.into(),
            agent_id: t.agent_id,
            requester_session_key: t.requester_session_key,
            child_session_key: t.child_session_key,
            requester_origin: None,
            source_id: t.source_id,
            created_at: now,
            updated_at: now,
            started_at: t.running.then_some(now),
            ended_at: None,
            progress_summary: None,
            terminal_summary: None,
            error: None,
            result: None,
            cleanup_after: None,
        };
        self.store.insert_task(&rec)?;
        Ok(rec)
    }

    /// `queued → running`. `None` when the task is unknown or already ended.
    pub fn start(&self, task_id: &str, now: i64) -> Result<Option<TaskRecord>, StoreError> {
        let Some(mut t) = self.store.task(task_id)? else { return Ok(None) };
        if t.status.is_terminal() {
            return Ok(None);
        }
        t.status = TaskStatus::Running;
        t.started_at = t.started_at.or(Some(now));
        t.updated_at = now;
        Ok(self.store.update_task(&t)?.then_some(t))
    }

    /// End a task. `None` when it had already ended (terminal states are sticky).
    pub fn finish(
        &self,
        task_id: &str,
        status: TaskStatus,
        result: Option<String>,
        error: Option<String>,
        now: i64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let Some(mut t) = self.store.task(task_id)? else { return Ok(None) };
        if t.status.is_terminal() || !status.is_terminal() {
            return Ok(None);
        }
        t.status = status;
        t.updated_at = now;
        t.ended_at = Some(now);
        t.result = result;
        t.error = error;
        t.terminal_summary = Some(match status {
            TaskStatus::Succeeded => "completed".into(),
            TaskStatus::Lost => "lost: the gateway stopped while it ran".into(),
            other => other.as_str().replace('_', " "),
        });
        t.cleanup_after = Some(now + if status == TaskStatus::Lost { LOST_RETENTION_MS } else { RETENTION_MS });
        Ok(self.store.update_task(&t)?.then_some(t))
    }

    /// Record how the outcome reached the requester.
    pub fn delivered(&self, t: &TaskRecord, delivery_status: &str) -> Result<(), StoreError> {
        let mut t = t.clone();
        t.delivery_status = delivery_status.into();
        self.store.update_task_delivery(&t)
    }

    /// Mark every open task whose run is not `active` as lost (after a restart nothing is running).
    pub fn reconcile(&self, active: &dyn Fn(&TaskRecord) -> bool, now: i64) -> Result<Vec<TaskRecord>, StoreError> {
        let mut lost = Vec::new();
        for t in self.store.open_tasks()? {
            if !active(&t) {
                if let Some(t) =
                    self.finish(&t.task_id, TaskStatus::Lost, None, Some("lost: its run is gone".into()), now)?
                {
                    lost.push(t);
                }
            }
        }
        Ok(lost)
    }
}

/// A task in OpenClaw's `TaskSummary` shape (`succeeded` is `completed` there; `lost` is `failed`
/// with the error saying so).
pub fn wire_task(t: &TaskRecord) -> Value {
    let status = match t.status {
        TaskStatus::Succeeded => "completed",
        TaskStatus::Lost => "failed",
        other => other.as_str(),
    };
    let state = match t.status {
        TaskStatus::Queued => "queued",
        TaskStatus::Running => "running",
        _ => "finished",
    };
    let mut v = json!({
        "id": t.task_id, "taskId": t.task_id, "kind": t.kind, "runtime": t.runtime, "status": status,
        "title": t.label, "agentId": t.agent_id, "runId": t.run_id, "createdAt": t.created_at,
        "updatedAt": t.updated_at, "deliveryStatus": t.delivery_status, "prompt": t.task,
        "execution": {"state": state}, "hasTranscript": t.child_session_key.is_some(),
    });
    let opt = |v: &mut Value, k: &str, x: Option<Value>| {
        if let Some(x) = x {
            v[k] = x;
        }
    };
    opt(&mut v, "sessionKey", t.requester_session_key.clone().map(Value::String));
    opt(&mut v, "ownerKey", t.requester_session_key.clone().map(Value::String));
    opt(&mut v, "childSessionKey", t.child_session_key.clone().map(Value::String));
    opt(&mut v, "sourceId", t.source_id.clone().map(Value::String));
    opt(&mut v, "startedAt", t.started_at.map(Value::from));
    opt(&mut v, "endedAt", t.ended_at.map(Value::from));
    opt(&mut v, "progressSummary", t.progress_summary.clone().map(Value::String));
    opt(&mut v, "terminalSummary", t.terminal_summary.clone().map(Value::String));
    opt(&mut v, "error", t.error.clone().map(Value::String));
    opt(&mut v, "result", t.result.clone().map(Value::String));
    if t.status == TaskStatus::Succeeded {
        v["terminalOutcome"] = json!("succeeded");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_stickiness_retention_and_reconcile() {
        let store = Store::open_in_memory().unwrap();
        let l = Ledger::new(&store);
        let t = l
            .create(
                NewTask {
                    run_id: "r1".into(),
                    runtime: "subagent".into(),
                    kind: "subagent".into(),
                    notify_policy: "done_only".into(),
                    agent_id: "main".into(),
                    ..Default::default()
                },
                100,
            )
            .unwrap();
        assert_eq!(t.status, TaskStatus::Queued);
        assert_eq!(l.start(&t.task_id, 110).unwrap().unwrap().status, TaskStatus::Running);
        let done = l.finish(&t.task_id, TaskStatus::Succeeded, Some("42".into()), None, 120).unwrap().unwrap();
        assert_eq!(done.cleanup_after, Some(120 + RETENTION_MS));
        assert!(l.finish(&t.task_id, TaskStatus::Failed, None, None, 130).unwrap().is_none(), "sticky");
        assert!(l.start(&t.task_id, 130).unwrap().is_none());
        let w = wire_task(&store.task(&t.task_id).unwrap().unwrap());
        assert_eq!(
            (w["status"].as_str(), w["result"].as_str(), w["terminalOutcome"].as_str()),
            (Some("completed"), Some("42"), Some("succeeded"))
        );

        let a = l.create(NewTask { run_id: "alive".into(), running: true, ..Default::default() }, 1).unwrap();
        let b = l.create(NewTask { run_id: "gone".into(), running: true, ..Default::default() }, 1).unwrap();
        let lost = l.reconcile(&|t| t.run_id == "alive", 500).unwrap();
        assert_eq!(lost.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(), [b.task_id.as_str()]);
        assert_eq!(lost[0].cleanup_after, Some(500 + LOST_RETENTION_MS));
        assert_eq!(store.task(&a.task_id).unwrap().unwrap().status, TaskStatus::Running);
        assert_eq!(wire_task(&lost[0])["status"], "failed");
    }
}
