//! Plugin hooks: which hooks exist, how handlers are registered and run, and the session lifecycle
//! pieces built on them (the active-session tracker and the bounded shutdown drain).
//!
//! Decision hooks run one handler at a time in descending priority (ties in registration order) and
//! may modify or block; observation hooks run all handlers concurrently. Every handler call has a
//! budget: a hanging or failing handler costs at most that budget and never blocks the gateway.
mod drain;
pub mod internal;
mod names;
mod runner;
mod tracker;

pub use drain::{drain_active_sessions, DrainOutcome, SessionEndReason};
pub use names::{hook_spec, HookKind, HookSpec, CONVERSATION_HOOKS, HOOKS, PROMPT_INJECTION_HOOKS};
pub use runner::{DecisionOutcome, HandlerFuture, HookHandler, HookRunner, Registration};
pub use tracker::{ActiveSession, ActiveSessionTracker};
