//! `homarus`: the gateway daemon and its command-line client.
mod agent_cmd;
mod channels_cmd;
mod cli;
mod client;
mod config_cmd;
mod cron_cmd;
mod hooks_cmd;
mod plugins_cmd;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("homarus: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.wants_json();
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            if json {
                let err = serde_json::json!({"ok": false, "error": {"type": "cli_error", "message": format!("{e:#}")}});
                println!("{err}");
            } else {
                eprintln!("homarus: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
