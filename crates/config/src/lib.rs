//! Homarus configuration: the types (which double as the JSON Schema source), loading a JSON5 file
//! with `${VAR}` substitution and strict validation, and atomic edits.
//!
//! Key names and shapes follow OpenClaw's (`gateway.port`, `gateway.auth.mode`, …) so an OpenClaw
//! config file loads unchanged. Sections OpenClaw has that Homarus does not implement yet are accepted
//! and reported as warnings, never silently dropped; keys OpenClaw does not have are errors.
mod agents;
mod channels;
mod edit;
mod error;
mod hooks;
mod load;
mod locate;
mod model;
mod schema;
mod session;

pub use agents::*;
pub use channels::*;
pub use edit::{merge_patch, redact, restore_redacted, set_path, unset_path, write_atomic, REDACTED};
pub use error::ConfigError;
pub use hooks::{render_template, HookMapping, HookMappingMatch};
pub use load::{content_hash, load_file, parse_json5, parse_str, LoadedConfig};
pub use model::*;
pub use schema::{json_schema, reference_markdown};
pub use session::*;
