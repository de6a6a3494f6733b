//! The close path as a value: an ordered list of named steps, each bounded by its own timeout.
//!
//! A step that fails or overruns adds its name to `warnings` and the sequence goes on, so one stuck
//! subsystem can never keep the process from stopping. Later capabilities (hooks, the session-end
//! drain, channels) insert their steps by name with [`ShutdownSequence::insert_before`].
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde::Serialize;

type StepFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type StepFn = Box<dyn FnOnce() -> StepFuture + Send>;

struct Step {
    name: &'static str,
    timeout: Duration,
    run: StepFn,
}

/// What a close did: how long it took and which steps did not finish cleanly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownReport {
    /// Wall time of the whole sequence.
    pub duration_ms: u64,
    /// Names of steps that failed or timed out, once each, in order.
    pub warnings: Vec<String>,
}

/// An ordered, named, time-bounded close sequence.
#[derive(Default)]
pub struct ShutdownSequence {
    steps: Vec<Step>,
}

impl ShutdownSequence {
    /// An empty sequence.
    pub fn new() -> Self {
        Self::default()
    }

    fn make<F, Fut>(name: &'static str, timeout: Duration, f: F) -> Step
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Step { name, timeout, run: Box::new(move || Box::pin(f())) }
    }

    /// Append a step.
    pub fn push<F, Fut>(&mut self, name: &'static str, timeout: Duration, f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.steps.push(Self::make(name, timeout, f));
    }

    /// Insert a step before the step named `before` (or at the end when there is none).
    pub fn insert_before<F, Fut>(&mut self, before: &str, name: &'static str, timeout: Duration, f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let at = self.steps.iter().position(|s| s.name == before).unwrap_or(self.steps.len());
        self.steps.insert(at, Self::make(name, timeout, f));
    }

    /// The step names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.name).collect()
    }

    /// Run every step in order; never fails.
    pub async fn run(self) -> ShutdownReport {
        let started = Instant::now();
        let mut warnings: Vec<String> = Vec::new();
        for step in self.steps {
            let outcome = tokio::time::timeout(step.timeout, (step.run)()).await;
            let problem = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(format!("timed out after {}ms", step.timeout.as_millis())),
            };
            if let Some(problem) = problem {
                tracing::warn!(step = step.name, %problem, "shutdown step did not finish cleanly; continuing");
                if !warnings.iter().any(|w| w == step.name) {
                    warnings.push(step.name.to_string());
                }
            }
        }
        let report = ShutdownReport { duration_ms: started.elapsed().as_millis() as u64, warnings };
        if report.warnings.is_empty() {
            tracing::info!(duration_ms = report.duration_ms, "shutdown completed cleanly");
        } else {
            tracing::warn!(duration_ms = report.duration_ms, warnings = ?report.warnings, "shutdown completed with warnings");
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn runs_in_order_bounds_each_step_and_records_warnings_once() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut seq = ShutdownSequence::new();
        let l = log.clone();
        seq.push("first", Duration::from_secs(1), move || async move {
            l.lock().unwrap().push("first");
            Ok(())
        });
        seq.push("stuck", Duration::from_millis(20), std::future::pending);
        let l = log.clone();
        seq.push("last", Duration::from_secs(1), move || async move {
            l.lock().unwrap().push("last");
            Err("boom".to_string())
        });
        let l = log.clone();
        seq.insert_before("stuck", "inserted", Duration::from_secs(1), move || async move {
            l.lock().unwrap().push("inserted");
            Ok(())
        });
        assert_eq!(seq.names(), vec!["first", "inserted", "stuck", "last"]);
        let report = seq.run().await;
        assert_eq!(*log.lock().unwrap(), vec!["first", "inserted", "last"], "a stuck step does not stop later ones");
        assert_eq!(report.warnings, vec!["stuck".to_string(), "last".to_string()]);
        assert!(report.duration_ms < 1000);
    }
}
