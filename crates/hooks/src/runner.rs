//! Registering hook handlers and running them within their budgets.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::names::{hook_spec, HookKind};

/// What a handler returns: its decision (decision hooks), `None` for no decision, or an error.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<Value>, String>> + Send>>;

/// A hook handler: a native closure, or a proxy to an external plugin process.
pub trait HookHandler: Send + Sync {
    /// Handle `hook` with its `event` and `ctx` (both JSON, as plugins see them).
    fn call(&self, hook: &str, event: Value, ctx: Value) -> HandlerFuture;
}

impl<F> HookHandler for F
where
    F: Fn(&str, Value, Value) -> HandlerFuture + Send + Sync,
{
    fn call(&self, hook: &str, event: Value, ctx: Value) -> HandlerFuture {
        self(hook, event, ctx)
    }
}

/// One handler registered for one hook.
#[derive(Clone)]
pub struct Registration {
    /// The plugin it belongs to (for logs, health and unregistering).
    pub plugin_id: String,
    /// The hook name; must be one of [`crate::HOOKS`].
    pub hook: String,
    /// Higher runs first for decision hooks.
    pub priority: i32,
    /// Budget for one call; `None` uses the hook's default.
    pub timeout: Option<Duration>,
    /// The handler.
    pub handler: Arc<dyn HookHandler>,
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Entry {
    seq: u64,
    reg: Registration,
}

/// The outcome of a decision hook.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionOutcome {
    /// Each handler's non-null decision, in the order they ran.
    pub decisions: Vec<(String, Value)>,
    /// The plugin and reason that blocked (or cancelled), which stopped the chain.
    pub blocked: Option<(String, String)>,
    /// Handlers that failed or timed out, described.
    pub errors: Vec<String>,
}

/// The registry and runner of plugin hooks.
#[derive(Default)]
pub struct HookRunner {
    entries: RwLock<Vec<Entry>>,
    next_seq: AtomicU64,
}

impl HookRunner {
    /// An empty runner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a handler. Unknown hook names are refused with a message naming them.
    pub fn register(&self, reg: Registration) -> Result<(), String> {
        if hook_spec(&reg.hook).is_none() {
            return Err(format!("plugin {}: unknown hook `{}`", reg.plugin_id, reg.hook));
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.entries.write().unwrap_or_else(|p| p.into_inner()).push(Entry { seq, reg });
        Ok(())
    }

    /// Remove every handler of a plugin.
    pub fn unregister_plugin(&self, plugin_id: &str) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).retain(|e| e.reg.plugin_id != plugin_id);
    }

    /// Whether anything listens to `hook`.
    pub fn has_handlers(&self, hook: &str) -> bool {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).iter().any(|e| e.reg.hook == hook)
    }

    /// Handlers of `hook`: descending priority, ties in registration order.
    fn handlers(&self, hook: &str) -> Vec<Registration> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<&Entry> = entries.iter().filter(|e| e.reg.hook == hook).collect();
        found.sort_by(|a, b| b.reg.priority.cmp(&a.reg.priority).then(a.seq.cmp(&b.seq)));
        found.into_iter().map(|e| e.reg.clone()).collect()
    }

    /// Call one handler in its own task, bounded by its budget. A panic, error or timeout becomes
    /// `Err`; on timeout the call is abandoned (its task aborted).
    async fn call_one(reg: &Registration, hook: &str, event: Value, ctx: Value) -> Result<Option<Value>, String> {
        let budget =
            reg.timeout.or_else(|| hook_spec(hook).map(|s| s.default_timeout)).unwrap_or(Duration::from_secs(10));
        let fut = reg.handler.call(hook, event, ctx);
        // The task is aborted when this call is dropped (e.g. a drain whose total budget ran out), so
        // an abandoned handler never outlives the caller's interest in it.
        let mut task = AbortOnDrop(tokio::spawn(fut));
        match tokio::time::timeout(budget, &mut task.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(format!("handler crashed: {join}")),
            Err(_) => Err(format!("timed out after {}ms", budget.as_millis())),
        }
    }

    /// Run every handler of an observation hook concurrently; returns per-plugin errors.
    pub async fn run_observation(&self, hook: &str, event: &Value, ctx: &Value) -> Vec<String> {
        let handlers = self.handlers(hook);
        let calls = handlers.iter().map(|reg| async move {
            Self::call_one(reg, hook, event.clone(), ctx.clone())
                .await
                .err()
                .map(|e| format!("{} {hook}: {e}", reg.plugin_id))
        });
        let errors: Vec<String> = futures_util::future::join_all(calls).await.into_iter().flatten().collect();
        for e in &errors {
            tracing::warn!("plugin hook failed: {e}");
        }
        errors
    }

    /// Run a decision hook's handlers one at a time. A decision with `block: true` or `cancel: true`
    /// stops the chain. For fail-closed hooks a failing or slow handler blocks.
    pub async fn run_decision(&self, hook: &str, event: &Value, ctx: &Value) -> DecisionOutcome {
        let fail_closed = matches!(hook_spec(hook).map(|s| s.kind), Some(HookKind::Decision { fail_closed: true }));
        let mut out = DecisionOutcome::default();
        for reg in self.handlers(hook) {
            match Self::call_one(&reg, hook, event.clone(), ctx.clone()).await {
                Ok(Some(decision)) if !decision.is_null() => {
                    let blocks = decision.get("block") == Some(&Value::Bool(true))
                        || decision.get("cancel") == Some(&Value::Bool(true));
                    let reason = ["blockReason", "reason"]
                        .iter()
                        .find_map(|k| decision.get(*k).and_then(Value::as_str))
                        .unwrap_or("blocked by plugin")
                        .to_string();
                    out.decisions.push((reg.plugin_id.clone(), decision));
                    if blocks {
                        out.blocked = Some((reg.plugin_id.clone(), reason));
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let msg = format!("{} {hook}: {e}", reg.plugin_id);
                    tracing::warn!("plugin hook failed: {msg}");
                    out.errors.push(msg.clone());
                    if fail_closed {
                        out.blocked = Some((reg.plugin_id.clone(), format!("policy hook failed closed: {msg}")));
                        break;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    fn reg(
        plugin: &str,
        hook: &str,
        priority: i32,
        timeout_ms: Option<u64>,
        h: impl HookHandler + 'static,
    ) -> Registration {
        Registration {
            plugin_id: plugin.into(),
            hook: hook.into(),
            priority,
            timeout: timeout_ms.map(Duration::from_millis),
            handler: Arc::new(h),
        }
    }

    fn recorder(log: Arc<Mutex<Vec<String>>>, name: &'static str, decision: Value) -> impl HookHandler {
        move |_: &str, _: Value, _: Value| -> HandlerFuture {
            let log = log.clone();
            let decision = decision.clone();
            Box::pin(async move {
                log.lock().unwrap().push(name.to_string());
                Ok(Some(decision))
            })
        }
    }

    #[tokio::test]
    async fn decisions_run_by_priority_then_registration_and_stop_at_a_block() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let r = HookRunner::new();
        r.register(reg("low", "message_sending", 1, None, recorder(log.clone(), "low", json!({})))).unwrap();
        r.register(reg("high", "message_sending", 10, None, recorder(log.clone(), "high", json!({"content": "x"}))))
            .unwrap();
        r.register(reg("tie-a", "message_sending", 5, None, recorder(log.clone(), "tie-a", json!(null)))).unwrap();
        r.register(reg(
            "tie-b",
            "message_sending",
            5,
            None,
            recorder(log.clone(), "tie-b", json!({"cancel": true, "reason": "no"})),
        ))
        .unwrap();
        let out = r.run_decision("message_sending", &json!({}), &json!({})).await;
        assert_eq!(*log.lock().unwrap(), vec!["high", "tie-a", "tie-b"], "low never runs after the cancel");
        assert_eq!(out.blocked, Some(("tie-b".into(), "no".into())));
        assert_eq!(out.decisions.len(), 2);
        assert!(r
            .register(reg("x", "no_such_hook", 0, None, recorder(log, "x", json!(null))))
            .unwrap_err()
            .contains("no_such_hook"));
    }

    #[tokio::test]
    async fn slow_or_crashing_handlers_cost_only_their_budget() {
        let r = HookRunner::new();
        let hang = |_: &str, _: Value, _: Value| -> HandlerFuture { Box::pin(std::future::pending()) };
        let crash = |_: &str, _: Value, _: Value| -> HandlerFuture { Box::pin(async { panic!("boom") }) };
        r.register(reg("slow", "before_tool_call", 0, Some(50), hang)).unwrap();
        let started = std::time::Instant::now();
        let out = r.run_decision("before_tool_call", &json!({}), &json!({})).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(out.blocked.unwrap().1.contains("failed closed"), "policy hooks fail closed");

        r.register(reg("slow", "message_sending", 0, Some(50), hang)).unwrap();
        let out = r.run_decision("message_sending", &json!({}), &json!({})).await;
        assert!(out.blocked.is_none(), "other decision hooks continue");
        assert_eq!(out.errors.len(), 1);

        r.register(reg("crash", "session_end", 0, None, crash)).unwrap();
        r.register(reg("slow", "session_end", 0, Some(50), hang)).unwrap();
        let errors = r.run_observation("session_end", &json!({}), &json!({})).await;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().any(|e| e.contains("crashed")) && errors.iter().any(|e| e.contains("timed out after 50ms"))
        );
        r.unregister_plugin("slow");
        assert!(r.has_handlers("session_end"));
        r.unregister_plugin("crash");
        assert!(!r.has_handlers("session_end"));
    }
}
