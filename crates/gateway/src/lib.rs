//! The Homarus gateway: one TCP port serving the OpenClaw WebSocket protocol (v4) and HTTP.
//!
//! [`Gateway::start`] loads the configuration, opens the state database, binds the port and spawns
//! the tasks it owns (the server, the tick timer, the config watcher). [`RunningGateway::close`] runs
//! the [`ShutdownSequence`]: named, individually time-bounded steps that end with every client closed
//! (1012) and every owned task finished.
mod auth;
mod automation;
mod background;
mod channels;
mod commands;
mod connection;
mod cron;
mod dedupe;
mod handshake;
mod heartbeat;
mod http;
mod lifecycle;
mod logs;
mod maintenance;
mod media;
mod methods;
mod openai_http;
mod openai_responses;
mod options;
mod outbound;
mod reload;
mod run_events;
mod run_exec;
mod runs;
mod server;
mod session_tools;
mod sessions;
mod shutdown;
mod state;
mod subagents;
mod tools_http;
mod turn_hooks;
mod webhooks;

pub use automation::{bundled_hooks, hook_roots};
pub use options::{GatewayError, GatewayOptions, ResolvedAuth};
pub use server::{plugin_roots, Gateway, RunningGateway};
pub use shutdown::{ShutdownReport, ShutdownSequence};
pub use state::IMPLEMENTED_METHODS;
