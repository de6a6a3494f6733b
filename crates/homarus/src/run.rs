//! `homarus gateway`: run the daemon, with signal handling and in-process restart.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

use homarus_gateway::{Gateway, GatewayOptions};
use homarus_protocol::RESTART_EXPECTED_MS;

use crate::cli::RunArgs;

/// The state folder: `HOMARUS_STATE_DIR`, else `~/.homarus`.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HOMARUS_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".homarus")
}

/// The config file: `HOMARUS_CONFIG_PATH`, else `<stateDir>/homarus.json`.
pub fn config_path() -> PathBuf {
    match std::env::var_os("HOMARUS_CONFIG_PATH").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => state_dir().join("homarus.json"),
    }
}

fn options(args: &RunArgs) -> GatewayOptions {
    let mut opts = GatewayOptions::new(state_dir(), config_path());
    opts.port = args.port;
    opts.bind = args.bind.map(Into::into);
    opts.custom_host = args.host.clone();
    opts.auth_mode = args.auth.map(Into::into);
    opts.token = args.token.clone();
    opts.password = args.password.clone();
    opts
}

fn init_logging(level: Option<&str>, file: &std::path::Path) -> Result<()> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create log folder {}", dir.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("cannot open log file {}", file.display()))?;
    let filter = EnvFilter::try_from_env("HOMARUS_LOG").unwrap_or_else(|_| EnvFilter::new(level.unwrap_or("info")));
    let console = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false);
    let json = tracing_subscriber::fmt::layer().json().with_writer(std::sync::Mutex::new(log)).with_current_span(false);
    // A second init (after an in-process restart) is a no-op: the first subscriber stays.
    let _ = tracing_subscriber::registry().with(filter).with(console).with(json).try_init();
    Ok(())
}

enum Stop {
    Terminate(&'static str),
    Restart,
}

/// Run until SIGTERM/SIGINT; SIGUSR1 (or a config change in `restart` mode) restarts in process.
pub async fn run_gateway(args: RunArgs) -> Result<ExitCode> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("cannot install SIGUSR1 handler")?;
    let opts = options(&args);
    let mut logging_ready = false;
    loop {
        let loaded =
            homarus_config::load_file(&opts.config_path).map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
        if !logging_ready {
            init_logging(loaded.config.logging.level.as_deref(), &Gateway::log_file(&opts, &loaded))?;
            logging_ready = true;
        }
        let mut running = Gateway::start(opts.clone(), loaded).await?;
        let url = format!("ws://{}", running.addr);
        if let Some(token) = &running.generated_token {
            // Printed once, on generation; never logged.
            println!("Generated a gateway token, stored in {} (mode 0600):", opts.token_file().display());
            println!("  token: {token}");
            println!("  connect: homarus health --url {url} --token {token}");
        }
        println!("homarus gateway listening on {url}");
        let stop = tokio::select! {
            _ = sigterm.recv() => Stop::Terminate("gateway stopping"),
            _ = sigint.recv() => Stop::Terminate("gateway stopping"),
            _ = sigusr1.recv() => Stop::Restart,
            _ = running.restart_requested() => Stop::Restart,
        };
        match stop {
            Stop::Terminate(reason) => {
                let report = running.close(reason, None).await;
                println!("homarus gateway stopped in {}ms{}", report.duration_ms, warnings_suffix(&report.warnings));
                return Ok(ExitCode::SUCCESS);
            }
            Stop::Restart => {
                let report = running.close("gateway restarting", Some(RESTART_EXPECTED_MS)).await;
                println!("homarus gateway restarting ({}ms{})", report.duration_ms, warnings_suffix(&report.warnings));
            }
        }
    }
}

fn warnings_suffix(w: &[String]) -> String {
    if w.is_empty() {
        String::new()
    } else {
        format!(", warnings: {}", w.join(", "))
    }
}
