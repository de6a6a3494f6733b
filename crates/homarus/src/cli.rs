//! Command-line definitions and dispatch.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use homarus_config::{AuthMode, BindMode};

/// Homarus: a small, fast personal AI agent gateway that speaks the OpenClaw protocol.
#[derive(Parser, Debug)]
#[command(name = "homarus", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (default), or call it.
    Gateway(GatewayCmd),
    /// Gateway health (the `health` RPC).
    Health(ClientArgs),
    /// Gateway status (the `status` RPC).
    Status(ClientArgs),
    /// Read, edit, validate the configuration file, or print its schema.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Device pairing: list, approve, reject, remove.
    #[command(subcommand)]
    Devices(DevicesCmd),
    /// Sessions: list, show, reset, delete.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// External plugins: list, inspect, enable, disable.
    #[command(subcommand)]
    Plugins(PluginsCmd),
    /// Internal automation hooks: list, info, enable, disable, check.
    #[command(subcommand)]
    Hooks(HooksCmd),
    /// Background tasks: list, show, cancel.
    #[command(subcommand)]
    Tasks(TasksCmd),
    /// Chat channels: status of every account.
    #[command(subcommand)]
    Channels(crate::channels_cmd::ChannelsCmd),
    /// DM pairing of chat channels: list, approve, reject.
    #[command(subcommand)]
    Pairing(crate::channels_cmd::PairingCmd),
    /// Scheduled jobs: add, list, show, edit, enable, disable, run, runs, remove.
    #[command(subcommand)]
    Cron(Box<crate::cron_cmd::CronCmd>),
    /// Run one agent turn through the gateway and print the reply.
    Agent {
        /// The message.
        #[arg(long, short = 'm')]
        message: String,
        /// Session key (default: the agent's main session).
        #[arg(long)]
        session_key: Option<String>,
        /// Agent id (default: main).
        #[arg(long)]
        agent: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Chat with the agent in the terminal, replies streamed.
    Chat {
        /// Session key.
        #[arg(long, default_value = "agent:main:main")]
        session_key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum HooksCmd {
    /// Hooks found (bundled, hooks.internal.load.extraDirs, <stateDir>/hooks/), selected and eligible.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One hook's details.
    Info {
        /// Hook name.
        name: String,
    },
    /// Select a hook (hooks.internal.entries.<name>.enabled = true).
    Enable {
        /// Hook name.
        name: String,
    },
    /// Disable a hook (hooks.internal.entries.<name>.enabled = false).
    Disable {
        /// Hook name.
        name: String,
    },
    /// Exit non-zero if a selected hook cannot run here or a hook folder is broken.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum PluginsCmd {
    /// Plugins found in <stateDir>/plugins/ and plugins.load.paths, and whether they are enabled.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One plugin's manifest and configuration.
    Inspect {
        /// Plugin id.
        id: String,
    },
    /// Enable a plugin (plugins.entries.<id>.enabled = true; takes effect on restart).
    Enable {
        /// Plugin id.
        id: String,
    },
    /// Disable a plugin (plugins.entries.<id>.enabled = false; takes effect on restart).
    Disable {
        /// Plugin id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TasksCmd {
    /// Tasks, most recently updated first.
    List {
        /// Only these statuses (queued, running, completed, failed, cancelled, timed_out).
        #[arg(long)]
        status: Vec<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One task.
    Show {
        /// Task id.
        task_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a queued or running task.
    Cancel {
        /// Task id.
        task_id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum SessionsCmd {
    /// Sessions, most recently updated first.
    List {
        /// Only this agent's sessions.
        #[arg(long)]
        agent: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One session's entry.
    Show {
        /// Session key, e.g. agent:main:main.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a fresh session under the key (the old transcript is archived).
    Reset {
        /// Session key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a session (its transcript is archived unless --delete-transcript).
    Delete {
        /// Session key.
        key: String,
        /// Remove the transcript instead of archiving it.
        #[arg(long)]
        delete_transcript: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayCmd {
    #[command(subcommand)]
    pub action: Option<GatewayAction>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum GatewayAction {
    /// Run the gateway in the foreground.
    Run(RunArgs),
    /// Call one gateway method and print its result.
    Call {
        /// Method name, e.g. `health`.
        method: String,
        /// Params as a JSON object.
        #[arg(long)]
        params: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Port for WebSocket and HTTP (default: gateway.port, else 18789; 0 picks a free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Listen on loopback (default), lan (all interfaces) or custom (--host).
    #[arg(long, value_enum)]
    pub bind: Option<BindArg>,
    /// IP address for --bind custom.
    #[arg(long)]
    pub host: Option<String>,
    /// Authentication mode.
    #[arg(long, value_enum)]
    pub auth: Option<AuthArg>,
    /// Shared token (default: gateway.auth.token, else a generated one).
    #[arg(long, env = "HOMARUS_GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Shared password (with --auth password).
    #[arg(long, env = "HOMARUS_GATEWAY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Accepted for OpenClaw compatibility; Homarus always starts on its embedded defaults.
    #[arg(long, hide = true)]
    pub allow_unconfigured: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum BindArg {
    Loopback,
    Lan,
    Custom,
}

impl From<BindArg> for BindMode {
    fn from(b: BindArg) -> Self {
        match b {
            BindArg::Loopback => BindMode::Loopback,
            BindArg::Lan => BindMode::Lan,
            BindArg::Custom => BindMode::Custom,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum AuthArg {
    None,
    Token,
    Password,
}

impl From<AuthArg> for AuthMode {
    fn from(a: AuthArg) -> Self {
        match a {
            AuthArg::None => AuthMode::None,
            AuthArg::Token => AuthMode::Token,
            AuthArg::Password => AuthMode::Password,
        }
    }
}

/// How a client command reaches the gateway.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientArgs {
    /// Gateway WebSocket URL (default: ws://127.0.0.1:<gateway.port>).
    #[arg(long, env = "HOMARUS_GATEWAY_URL")]
    pub url: Option<String>,
    /// Gateway token (default: HOMARUS_GATEWAY_TOKEN, gateway.auth.token, or the generated token file).
    #[arg(long)]
    pub token: Option<String>,
    /// Gateway password.
    #[arg(long)]
    pub password: Option<String>,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout: u64,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the config (or one dotted key) from the file, secrets redacted.
    Get {
        /// Dotted key, e.g. gateway.port.
        key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a dotted key (value parsed as JSON5, else taken as a string); validated before writing.
    Set {
        /// Dotted key.
        key: String,
        /// Value.
        value: String,
    },
    /// Remove a dotted key.
    Unset {
        /// Dotted key.
        key: String,
    },
    /// Validate the config file.
    Validate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the config file path.
    File,
    /// Print the JSON Schema; --check fails if the checked-in schema or docs drifted, --write regenerates them.
    Schema {
        /// Compare schema/homarus.schema.json and docs/configuration.md with the code.
        #[arg(long, conflicts_with = "write")]
        check: bool,
        /// Regenerate schema/homarus.schema.json and docs/configuration.md.
        #[arg(long)]
        write: bool,
        /// Repository root holding schema/ and docs/ (default: current folder).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum DevicesCmd {
    /// Pending requests and paired devices.
    List(ClientArgs),
    /// Approve a pending request.
    Approve {
        /// The request id from `devices list`.
        request_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Reject a pending request.
    Reject {
        /// The request id from `devices list`.
        request_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a paired device.
    Remove {
        /// The device id.
        device_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl Cli {
    /// Whether errors should be printed as JSON.
    pub fn wants_json(&self) -> bool {
        match &self.command {
            Command::Health(c) | Command::Status(c) => c.json,
            Command::Gateway(GatewayCmd { action: Some(GatewayAction::Call { client, .. }), .. }) => client.json,
            Command::Devices(
                DevicesCmd::List(client)
                | DevicesCmd::Approve { client, .. }
                | DevicesCmd::Reject { client, .. }
                | DevicesCmd::Remove { client, .. },
            ) => client.json,
            Command::Config(ConfigCmd::Get { json, .. } | ConfigCmd::Validate { json }) => *json,
            Command::Plugins(PluginsCmd::List { json }) => *json,
            Command::Hooks(HooksCmd::List { json }) => *json,
            Command::Agent { client, .. } => client.json,
            Command::Channels(c) => c.json(),
            Command::Pairing(c) => c.json(),
            Command::Cron(c) => c.json(),
            Command::Tasks(
                TasksCmd::List { client, .. } | TasksCmd::Show { client, .. } | TasksCmd::Cancel { client, .. },
            ) => client.json,
            Command::Sessions(
                SessionsCmd::List { client, .. }
                | SessionsCmd::Show { client, .. }
                | SessionsCmd::Reset { client, .. }
                | SessionsCmd::Delete { client, .. },
            ) => client.json,
            _ => false,
        }
    }
}

/// Run the parsed command.
pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    use crate::client::call_and_print;
    match cli.command {
        Command::Gateway(GatewayCmd { action: None, run })
        | Command::Gateway(GatewayCmd { action: Some(GatewayAction::Run(run)), .. }) => {
            crate::run::run_gateway(run).await
        }
        Command::Gateway(GatewayCmd { action: Some(GatewayAction::Call { method, params, client }), .. }) => {
            let params = match params {
                Some(p) => {
                    Some(serde_json::from_str(&p).map_err(|e| anyhow::anyhow!("--params is not valid JSON: {e}"))?)
                }
                None => None,
            };
            call_and_print(&client, &method, params).await
        }
        Command::Health(c) => call_and_print(&c, "health", None).await,
        Command::Status(c) => call_and_print(&c, "status", None).await,
        Command::Devices(d) => {
            let (client, method, params) = match d {
                DevicesCmd::List(c) => (c, "device.pair.list", None),
                DevicesCmd::Approve { request_id, client } => {
                    (client, "device.pair.approve", Some(serde_json::json!({"requestId": request_id})))
                }
                DevicesCmd::Reject { request_id, client } => {
                    (client, "device.pair.reject", Some(serde_json::json!({"requestId": request_id})))
                }
                DevicesCmd::Remove { device_id, client } => {
                    (client, "device.pair.remove", Some(serde_json::json!({"deviceId": device_id})))
                }
            };
            call_and_print(&client, method, params).await
        }
        Command::Config(c) => crate::config_cmd::run(c),
        Command::Plugins(p) => crate::plugins_cmd::run(p),
        Command::Hooks(h) => crate::hooks_cmd::run(h),
        Command::Channels(cmd) => crate::channels_cmd::channels(cmd).await,
        Command::Pairing(cmd) => crate::channels_cmd::pairing(cmd).await,
        Command::Cron(cmd) => crate::cron_cmd::run(*cmd).await,
        Command::Agent { message, session_key, agent, client } => {
            crate::agent_cmd::agent(message, session_key, agent, &client).await
        }
        Command::Chat { session_key, client } => crate::agent_cmd::chat(session_key, &client).await,
        Command::Tasks(TasksCmd::List { status, limit, client }) => {
            let mut params = serde_json::json!({"limit": limit});
            if !status.is_empty() {
                params["status"] = serde_json::json!(status);
            }
            if client.json {
                return call_and_print(&client, "tasks.list", Some(params)).await;
            }
            let list = crate::client::call(&client, "tasks.list", Some(params)).await?;
            let rows = list["tasks"].as_array().cloned().unwrap_or_default();
            println!("{} tasks", rows.len());
            for t in rows {
                println!(
                    "{:<36} {:<10} {:<9} {:<20} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["kind"].as_str().unwrap_or(""),
                    t["status"].as_str().unwrap_or(""),
                    format_utc(t["updatedAt"].as_i64().unwrap_or(0)),
                    t["title"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tasks(TasksCmd::Show { task_id, client }) => {
            call_and_print(&client, "tasks.get", Some(serde_json::json!({"taskId": task_id}))).await
        }
        Command::Tasks(TasksCmd::Cancel { task_id, reason, client }) => {
            let mut params = serde_json::json!({"taskId": task_id});
            if let Some(r) = reason {
                params["reason"] = serde_json::json!(r);
            }
            call_and_print(&client, "tasks.cancel", Some(params)).await
        }
        Command::Sessions(SessionsCmd::List { agent, limit, client }) => {
            let mut params = serde_json::json!({"limit": limit});
            if let Some(a) = agent {
                params["agentId"] = serde_json::json!(a);
            }
            if client.json {
                return call_and_print(&client, "sessions.list", Some(params)).await;
            }
            let list = crate::client::call(&client, "sessions.list", Some(params)).await?;
            print_sessions(&list);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sessions(SessionsCmd::Show { key, client }) => {
            call_and_print(&client, "sessions.describe", Some(serde_json::json!({"key": key}))).await
        }
        Command::Sessions(SessionsCmd::Reset { key, client }) => {
            call_and_print(&client, "sessions.reset", Some(serde_json::json!({"key": key, "reason": "reset"}))).await
        }
        Command::Sessions(SessionsCmd::Delete { key, delete_transcript, client }) => {
            let params = serde_json::json!({"key": key, "deleteTranscript": delete_transcript});
            call_and_print(&client, "sessions.delete", Some(params)).await
        }
    }
}

/// A table: key, session id, last update (UTC), messages.
fn print_sessions(list: &serde_json::Value) {
    let rows = list["sessions"].as_array().cloned().unwrap_or_default();
    println!("{} of {} sessions", rows.len(), list["totalCount"]);
    for r in rows {
        let updated = r["updatedAt"].as_i64().unwrap_or(0);
        println!(
            "{:<48} {:<36} {:>24} {:>6}",
            r["key"].as_str().unwrap_or(""),
            r["sessionId"].as_str().unwrap_or(""),
            format_utc(updated),
            r["messageCount"]
        );
    }
}

fn format_utc(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}
