//! External plugins in any language, as child processes.
//!
//! A plugin is a folder holding `homarus.plugin.json` (`id`, `name`, `command`, the `hooks` it
//! subscribes to). The gateway starts the command in that folder and speaks JSON-RPC 2.0 with it, one
//! JSON object per line, over stdin/stdout: `initialize` first, one `hook` request per event, and
//! `shutdown` at the end. stderr goes to the gateway log. A plugin that exits is restarted with
//! backoff; its pending hook calls fail at once (the runner counts them as failed).
mod host;
mod manifest;
mod process;

pub use host::{is_enabled, PluginHost, PluginStatus};
pub use manifest::{discover, Discovered, HookSubscription, PluginManifest, MANIFEST_FILE};
