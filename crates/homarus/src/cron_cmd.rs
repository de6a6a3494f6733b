//! `homarus cron add|list|show|edit|enable|disable|run|runs|remove`, with OpenClaw's flags.
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::cli::ClientArgs;
use crate::client::{call, call_and_print};

/// Schedule, target and payload flags shared by `add` and `edit`.
#[derive(Args, Debug, Default)]
pub struct JobFlags {
    /// Job name.
    #[arg(long)]
    pub name: Option<String>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Run once: an ISO time (`2026-12-01T09:00:00Z`; no zone = UTC) or relative (`20m`, `2h`).
    #[arg(long, conflicts_with_all = ["every", "cron"])]
    pub at: Option<String>,
    /// Run every interval (`10m`, `1h`, `30s`).
    #[arg(long, conflicts_with_all = ["at", "cron"])]
    pub every: Option<String>,
    /// Run on a cron expression (`0 9 * * 1-5`; six fields add seconds).
    #[arg(long, conflicts_with_all = ["at", "every"])]
    pub cron: Option<String>,
    /// Time zone of `--cron` (IANA, e.g. `Europe/Paris`).
    #[arg(long)]
    pub tz: Option<String>,
    /// Spread runs over this window (`5m`); `0` for exact times.
    #[arg(long)]
    pub stagger: Option<String>,
    /// `main` (a system event in the main session) or `isolated` (a turn in `cron:<jobId>`), or `session:<key>`.
    #[arg(long)]
    pub session: Option<String>,
    /// The agent turn's message (isolated and session jobs).
    #[arg(long, short = 'm', conflicts_with = "system_event")]
    pub message: Option<String>,
    /// The system event text (main-session jobs).
    #[arg(long)]
    pub system_event: Option<String>,
    /// `now` (wake the session at once) or `next-heartbeat`.
    #[arg(long)]
    pub wake: Option<String>,
    /// Announce the result (to `--channel`/`--to`, else the main session's conversation).
    #[arg(long)]
    pub announce: bool,
    /// POST the result to this URL.
    #[arg(long, conflicts_with = "announce")]
    pub webhook: Option<String>,
    /// Announce channel (`telegram`, `matrix`, `irc`, `qa-channel`, or `last`).
    #[arg(long)]
    pub channel: Option<String>,
    /// Announce target in the channel's grammar (`123456789`, `!room:server`, `#chan`, `dm:user`).
    #[arg(long)]
    pub to: Option<String>,
    /// Announce account.
    #[arg(long)]
    pub account: Option<String>,
    /// Agent id.
    #[arg(long)]
    pub agent: Option<String>,
    /// Model for the turn (`provider/model`).
    #[arg(long)]
    pub model: Option<String>,
    /// Keep an `--at` job after it ran.
    #[arg(long)]
    pub keep_after_run: bool,
}

/// `homarus cron …`.
#[derive(Subcommand, Debug)]
pub enum CronCmd {
    /// Create a job.
    Add {
        #[command(flatten)]
        job: JobFlags,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Jobs, next run first.
    List {
        /// Include disabled jobs.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One job, as JSON.
    Show {
        /// Job id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a job (only the flags given).
    Edit {
        /// Job id.
        id: String,
        #[command(flatten)]
        job: JobFlags,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Enable a job (clears an auto-disable and the failure streak).
    Enable {
        /// Job id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Disable a job without deleting it.
    Disable {
        /// Job id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a job now (`--due`: only if it is due).
    Run {
        /// Job id.
        id: String,
        /// Only when due.
        #[arg(long)]
        due: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run history (of one job, or all), newest first.
    Runs {
        /// Job id.
        id: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a job.
    Remove {
        /// Job id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl CronCmd {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        match self {
            CronCmd::Add { client, .. }
            | CronCmd::List { client, .. }
            | CronCmd::Show { client, .. }
            | CronCmd::Edit { client, .. }
            | CronCmd::Enable { client, .. }
            | CronCmd::Disable { client, .. }
            | CronCmd::Run { client, .. }
            | CronCmd::Runs { client, .. }
            | CronCmd::Remove { client, .. } => client.json,
        }
    }
}

fn ms(flag: &str, s: &str) -> Result<u64> {
    match homarus_cron::parse_relative_ms(s) {
        Some(ms) => Ok(ms as u64),
        None if s.trim() == "0" => Ok(0),
        None => bail!("--{flag} {s:?}: expected a duration like 30s, 10m, 2h"),
    }
}

/// The job fields the flags set (for `add`, everything needed; for `edit`, only what was given).
fn fields(f: &JobFlags, adding: bool) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    if let Some(n) = &f.name {
        m.insert("name".into(), json!(n));
    }
    if let Some(d) = &f.description {
        m.insert("description".into(), json!(d));
    }
    let schedule = match (&f.at, &f.every, &f.cron) {
        (Some(at), _, _) => Some(json!({"kind": "at", "at": at})),
        (_, Some(every), _) => Some(json!({"kind": "every", "everyMs": ms("every", every)?})),
        (_, _, Some(expr)) => {
            let mut s = json!({"kind": "cron", "expr": expr});
            if let Some(tz) = &f.tz {
                s["tz"] = json!(tz);
            }
            if let Some(st) = &f.stagger {
                s["staggerMs"] = json!(ms("stagger", st)?);
            }
            Some(s)
        }
        _ => None,
    };
    if let Some(s) = schedule {
        m.insert("schedule".into(), s);
    } else if adding {
        bail!("a schedule is required: --at, --every or --cron");
    }
    let payload = match (&f.message, &f.system_event) {
        (Some(msg), _) => {
            let mut p = json!({"kind": "agentTurn", "message": msg});
            if let Some(model) = &f.model {
                p["model"] = json!(model);
            }
            Some(p)
        }
        (_, Some(text)) => Some(json!({"kind": "systemEvent", "text": text})),
        _ => None,
    };
    let is_event = payload.as_ref().is_some_and(|p| p["kind"] == "systemEvent");
    if let Some(p) = payload {
        m.insert("payload".into(), p);
    } else if adding {
        bail!("a payload is required: --message (an agent turn) or --system-event (a main-session event)");
    }
    match &f.session {
        Some(s) => {
            m.insert("sessionTarget".into(), json!(s));
        }
        None if adding => {
            m.insert("sessionTarget".into(), json!(if is_event { "main" } else { "isolated" }));
        }
        None => {}
    }
    match &f.wake {
        Some(w) => {
            m.insert("wakeMode".into(), json!(w));
        }
        None if adding => {
            m.insert("wakeMode".into(), json!("now"));
        }
        None => {}
    }
    if f.announce || f.webhook.is_some() {
        let mut d = json!({"mode": if f.announce { "announce" } else { "webhook" }});
        if let Some(ch) = &f.channel {
            d["channel"] = json!(ch);
        }
        if let Some(to) = f.webhook.as_ref().or(f.to.as_ref()) {
            d["to"] = json!(to);
        }
        if let Some(a) = &f.account {
            d["accountId"] = json!(a);
        }
        m.insert("delivery".into(), d);
    }
    if let Some(a) = &f.agent {
        m.insert("agentId".into(), json!(a));
    }
    if f.keep_after_run {
        m.insert("deleteAfterRun".into(), json!(false));
    }
    Ok(m)
}

fn when(ms: &Value) -> String {
    ms.as_i64().map(homarus_cron::iso).unwrap_or_else(|| "-".into())
}

/// Run a `cron` command.
pub async fn run(cmd: CronCmd) -> Result<ExitCode> {
    match cmd {
        CronCmd::Add { job, disabled, client } => {
            let mut m = fields(&job, true)?;
            if disabled {
                m.insert("enabled".into(), json!(false));
            }
            if client.json {
                return call_and_print(&client, "cron.add", Some(Value::Object(m))).await;
            }
            let j = call(&client, "cron.add", Some(Value::Object(m))).await?;
            println!(
                "Added {} ({}); next run {}",
                j["id"].as_str().unwrap_or(""),
                j["name"].as_str().unwrap_or(""),
                when(&j["state"]["nextRunAtMs"])
            );
            Ok(ExitCode::SUCCESS)
        }
        CronCmd::List { all, client } => {
            let params = json!({"includeDisabled": all, "limit": 200});
            if client.json {
                return call_and_print(&client, "cron.list", Some(params)).await;
            }
            let v = call(&client, "cron.list", Some(params)).await?;
            let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
            println!("{} jobs", jobs.len());
            for j in jobs {
                println!(
                    "{:<36} {:<8} {:<9} {:<24} {:<6} {}",
                    j["id"].as_str().unwrap_or(""),
                    if j["enabled"] == true { "enabled" } else { "disabled" },
                    j["sessionTarget"].as_str().unwrap_or(""),
                    when(&j["state"]["nextRunAtMs"]),
                    j["state"]["lastRunStatus"].as_str().unwrap_or("-"),
                    j["name"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CronCmd::Show { id, client } => call_and_print(&client, "cron.get", Some(json!({"id": id}))).await,
        CronCmd::Edit { id, job, client } => {
            let patch = fields(&job, false)?;
            if patch.is_empty() {
                bail!("nothing to change: give at least one flag (--name, --every, --cron, --message, …)");
            }
            call_and_print(&client, "cron.update", Some(json!({"id": id, "patch": patch}))).await
        }
        CronCmd::Enable { id, client } => {
            call_and_print(&client, "cron.update", Some(json!({"id": id, "patch": {"enabled": true}}))).await
        }
        CronCmd::Disable { id, client } => {
            call_and_print(&client, "cron.update", Some(json!({"id": id, "patch": {"enabled": false}}))).await
        }
        CronCmd::Run { id, due, client } => {
            call_and_print(&client, "cron.run", Some(json!({"id": id, "mode": if due { "due" } else { "force" }})))
                .await
        }
        CronCmd::Runs { id, limit, client } => {
            let params = json!({"id": id, "limit": limit});
            if client.json {
                return call_and_print(&client, "cron.runs", Some(params)).await;
            }
            let v = call(&client, "cron.runs", Some(params)).await?;
            let entries = v["entries"].as_array().cloned().unwrap_or_default();
            println!("{} of {} runs", entries.len(), v["total"]);
            for r in entries {
                println!(
                    "{:<24} {:<8} {:<14} {:>7} ms  {}",
                    when(&r["ts"]),
                    r["status"].as_str().unwrap_or(""),
                    r["deliveryStatus"].as_str().unwrap_or(""),
                    r["durationMs"],
                    r["error"].as_str().or(r["summary"].as_str()).unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CronCmd::Remove { id, client } => call_and_print(&client, "cron.remove", Some(json!({"id": id}))).await,
    }
}
