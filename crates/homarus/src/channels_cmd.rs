//! `homarus channels status` and `homarus pairing list|approve|reject` (DM pairing of chat channels).
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::cli::ClientArgs;
use crate::client::{call, call_and_print};

/// `homarus channels …`.
#[derive(Subcommand, Debug)]
pub enum ChannelsCmd {
    /// Every configured channel account: running, connected, last error, policies.
    Status {
        /// Accepted for OpenClaw compatibility (the status is always live).
        #[arg(long)]
        probe: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `homarus pairing …`.
#[derive(Subcommand, Debug)]
pub enum PairingCmd {
    /// Pending DM pairing requests (of one channel, or all).
    List {
        /// Channel id (telegram, matrix, irc, qa-channel).
        channel: Option<String>,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Approve a code: the sender may DM the agent from now on.
    Approve {
        /// Channel id.
        channel: String,
        /// The 8-character code the sender received.
        code: String,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Tell the sender on the same channel.
        #[arg(long)]
        notify: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Dismiss a request without approving it (the sender may ask again later).
    Reject {
        /// Channel id.
        channel: String,
        /// The code.
        code: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl ChannelsCmd {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        match self {
            ChannelsCmd::Status { client, .. } => client.json,
        }
    }
}

impl PairingCmd {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        match self {
            PairingCmd::List { client, .. }
            | PairingCmd::Approve { client, .. }
            | PairingCmd::Reject { client, .. } => client.json,
        }
    }
}

fn yes(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "yes"
    } else {
        "no"
    }
}

/// Run a `channels` command.
pub async fn channels(cmd: ChannelsCmd) -> Result<ExitCode> {
    let ChannelsCmd::Status { client, .. } = cmd;
    if client.json {
        return call_and_print(&client, "channels.status", Some(json!({}))).await;
    }
    let st = call(&client, "channels.status", Some(json!({}))).await?;
    let Some(map) = st["channelAccounts"].as_object().filter(|m| !m.is_empty()) else {
        println!("No channels configured (add one under channels.<id> in the config).");
        return Ok(ExitCode::SUCCESS);
    };
    println!("CHANNEL      ACCOUNT    RUNNING  CONNECTED DM        GROUPS     BOT        LAST ERROR");
    for (channel, accounts) in map {
        for a in accounts.as_array().into_iter().flatten() {
            println!(
                "{:<12} {:<10} {:<8} {:<9} {:<9} {:<10} {:<10} {}",
                channel,
                a["accountId"].as_str().unwrap_or(""),
                yes(&a["running"]),
                yes(&a["connected"]),
                a["dmPolicy"].as_str().unwrap_or(""),
                a["groupPolicy"].as_str().unwrap_or(""),
                a["bot"].as_str().unwrap_or("-"),
                a["lastError"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run a `pairing` command.
pub async fn pairing(cmd: PairingCmd) -> Result<ExitCode> {
    match cmd {
        PairingCmd::List { channel, account, client } => {
            let params = json!({"channel": channel, "accountId": account});
            if client.json {
                return call_and_print(&client, "channels.pairing.list", Some(params)).await;
            }
            let list = call(&client, "channels.pairing.list", Some(params)).await?;
            let reqs = list["requests"].as_array().cloned().unwrap_or_default();
            println!("{} pending", reqs.len());
            for r in reqs {
                println!(
                    "{:<12} {:<10} {:<9} {:<30} {}",
                    r["channel"].as_str().unwrap_or(""),
                    r["accountId"].as_str().unwrap_or(""),
                    r["code"].as_str().unwrap_or(""),
                    r["id"].as_str().unwrap_or(""),
                    r["meta"]["name"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PairingCmd::Approve { channel, code, account, notify, client } => {
            let params = json!({"channel": channel, "code": code, "accountId": account, "notify": notify});
            if client.json {
                return call_and_print(&client, "channels.pairing.approve", Some(params)).await;
            }
            let v = call(&client, "channels.pairing.approve", Some(params)).await?;
            let owner = if v["owner"] == true { " (command owner: the first approved sender)" } else { "" };
            println!(
                "Approved {} sender {}{owner}",
                v["channel"].as_str().unwrap_or(""),
                v["id"].as_str().unwrap_or("")
            );
            Ok(ExitCode::SUCCESS)
        }
        PairingCmd::Reject { channel, code, client } => {
            call_and_print(&client, "channels.pairing.dismiss", Some(json!({"channel": channel, "code": code}))).await
        }
    }
}
