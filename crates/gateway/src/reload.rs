//! Applying a new configuration in process, and watching the file for edits.
//!
//! Auth settings apply live. Listener settings (`gateway.port`, `gateway.bind`,
//! `gateway.customBindHost`), logging, plugins and channel connections need a restart: they are reported, and in `restart` mode
//! the gateway asks its owner for an in-process restart. A file that fails validation is rejected,
//! logged, and the running configuration stays in force.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use homarus_config::{LoadedConfig, ReloadMode};

use crate::state::GatewayState;
use crate::ResolvedAuth;

/// Install `loaded` as the running config. Returns the changed keys that need a restart.
pub fn apply(state: &GatewayState, loaded: LoadedConfig) -> Vec<&'static str> {
    let old = state.config();
    let (a, b) = (&old.config, &loaded.config);
    let mut restart = Vec::new();
    if a.gateway.port != b.gateway.port {
        restart.push("gateway.port");
    }
    if a.gateway.bind != b.gateway.bind {
        restart.push("gateway.bind");
    }
    if a.gateway.custom_bind_host != b.gateway.custom_bind_host {
        restart.push("gateway.customBindHost");
    }
    if a.logging != b.logging {
        restart.push("logging");
    }
    if a.plugins != b.plugins {
        restart.push("plugins");
    }
    // Access keys (dmPolicy, allowFrom, groups, …) are read per message and apply at once; account
    // connections (tokens, hosts, accounts) are opened at start.
    if a.channels != b.channels {
        restart.push("channels");
    }
    match ResolvedAuth::resolve(&state.opts, b) {
        Ok((auth, _)) => {
            let bind_is_loopback = state.listen_addr.ip().is_loopback();
            if auth == ResolvedAuth::None && !bind_is_loopback {
                tracing::error!("config reload: gateway.auth.mode \"none\" refused on a non-loopback bind; keeping the current auth");
            } else {
                *state.auth.write().unwrap_or_else(|p| p.into_inner()) = auth;
            }
        }
        Err(e) => tracing::error!(error = %e, "config reload: auth settings rejected; keeping the current auth"),
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if !restart.is_empty() {
        tracing::warn!(keys = ?restart, "config changed keys that take effect after a restart (SIGUSR1 or `homarus gateway` restart)");
        if b.gateway.reload.mode == Some(ReloadMode::Restart) {
            let _ = state.restart_tx.try_send(());
        }
    }
    *state.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
    restart
}

/// Watch the config file and reload it on change (debounced). `None` when reload is `off` or the
/// watcher cannot be created (logged).
pub fn spawn_watcher(state: Arc<GatewayState>) -> Option<JoinHandle<()>> {
    let cfg = state.config();
    if cfg.config.gateway.reload.mode == Some(ReloadMode::Off) {
        *state.reload_status.lock().unwrap_or_else(|p| p.into_inner()) = "off";
        return None;
    }
    let debounce = Duration::from_millis(cfg.config.gateway.reload.debounce_ms.unwrap_or(300));
    let path: PathBuf = state.opts.config_path.clone();
    let dir = path.parent().map(PathBuf::from).filter(|d| !d.as_os_str().is_empty()).unwrap_or_else(|| ".".into());
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(error = %e, dir = %dir.display(), "config watcher disabled: cannot create the config folder");
        return None;
    }
    // The notify callback runs on its own thread; a small bounded channel is enough because any
    // number of events collapses into one reload.
    let (tx, mut rx) = mpsc::channel::<()>(8);
    let file_name = path.file_name().map(|n| n.to_os_string());
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if ev.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == file_name) {
                let _ = tx.try_send(());
            }
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "config watcher disabled");
            *state.reload_status.lock().unwrap_or_else(|p| p.into_inner()) = "unavailable";
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, "config watcher disabled");
        *state.reload_status.lock().unwrap_or_else(|p| p.into_inner()) = "unavailable";
        return None;
    }
    Some(tokio::spawn(async move {
        let _watcher = watcher; // owned by this task; dropped (and stopped) when it ends
        while rx.recv().await.is_some() {
            // Debounce: wait for quiet, swallowing the burst of events an editor makes.
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            reload_from_disk(&state);
        }
    }))
}

fn reload_from_disk(state: &GatewayState) {
    let path = &state.opts.config_path;
    match homarus_config::load_file(path) {
        Ok(loaded) if loaded.hash == state.config().hash => {}
        Ok(loaded) => {
            tracing::info!(path = %path.display(), "config file changed; applying");
            apply(state, loaded);
            *state.last_reload_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        Err(e) => {
            tracing::error!(error = %e, "config reload rejected; keeping the running config");
            *state.last_reload_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    }
}
