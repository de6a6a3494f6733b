//! Starting and closing the gateway.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use homarus_config::LoadedConfig;
use homarus_store::Store;

use crate::http::{router, AppState};
use crate::state::{GatewayState, ShutdownNotice, StateInit};
use crate::{GatewayError, GatewayOptions, ResolvedAuth, ShutdownReport, ShutdownSequence};

/// Entry point.
pub struct Gateway;

/// A started gateway. Owns its tasks; [`RunningGateway::close`] ends them all.
pub struct RunningGateway {
    /// The bound address (with the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The token generated at this start (printed once by the binary), if any.
    pub generated_token: Option<String>,
    state: Arc<GatewayState>,
    server: JoinHandle<()>,
    stop_accepting: oneshot::Sender<()>,
    watcher: Option<JoinHandle<()>>,
    maintenance: JoinHandle<()>,
    done_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<()>,
    restart_rx: mpsc::Receiver<()>,
}

/// Where plugins are looked for: `<stateDir>/plugins/`, then `plugins.load.paths` (`~` expanded).
pub fn plugin_roots(opts: &GatewayOptions, cfg: &LoadedConfig) -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut roots = vec![opts.state_dir.join("plugins")];
    for p in &cfg.config.plugins.load.paths {
        let path = match (p.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => PathBuf::from(p),
        };
        roots.push(path);
    }
    roots
}

/// The log file: `logging.file`, else `<stateDir>/logs/homarus.log`.
pub fn log_file_path(opts: &GatewayOptions, cfg: &LoadedConfig) -> PathBuf {
    cfg.config
        .logging
        .file
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| opts.state_dir.join("logs").join("homarus.log"))
}

impl Gateway {
    /// The log file for these options and config (the binary opens it before starting).
    pub fn log_file(opts: &GatewayOptions, cfg: &LoadedConfig) -> PathBuf {
        log_file_path(opts, cfg)
    }

    /// Validate, bind and spawn. Fails without side effects beyond the state folder when the config
    /// is inconsistent (e.g. a non-loopback bind without auth) or the port is taken.
    pub async fn start(opts: GatewayOptions, loaded: LoadedConfig) -> Result<RunningGateway, GatewayError> {
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let addr = opts.listen_addr(&loaded.config)?;
        let (auth, generated) = ResolvedAuth::resolve(&opts, &loaded.config)?;
        if auth == ResolvedAuth::None && !addr.ip().is_loopback() {
            return Err(GatewayError::Config(format!(
                "refusing to listen on {addr} without authentication: set gateway.auth.mode to \"token\" or \"password\" \
                 (or bind to loopback)"
            )));
        }
        let generated_token = match (&auth, generated) {
            (ResolvedAuth::Token(t), true) => Some(t.clone()),
            _ => None,
        };
        let store = Store::open(&opts.database_path())?;
        let listener = TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| GatewayError::Bind { addr, source })?;
        let log_file = log_file_path(&opts, &loaded);
        let (restart_tx, restart_rx) = mpsc::channel(1);
        let plugin_roots = plugin_roots(&opts, &loaded);
        let plugins = homarus_plugins::PluginHost::start(
            &plugin_roots,
            &loaded.config.plugins,
            opts.hooks.clone(),
            &opts.version,
        );
        let internal_hooks = crate::automation::load(&opts, &loaded);
        let state = Arc::new(GatewayState::new(StateInit {
            opts,
            config: loaded,
            auth,
            store,
            log_file,
            listen_addr: addr,
            restart_tx,
            plugins,
            internal_hooks,
        }));
        // After the plugins, so their session_start handlers see the resumed sessions.
        let resumed = crate::lifecycle::resume_stored(&state);
        crate::channels::start_all(&state);
        crate::cron::start(&state);
        crate::heartbeat::start(&state);
        // Nothing runs yet: every task the ledger still calls open was lost with the last process.
        crate::background::reconcile_at_start(&state);
        // Maintenance waits for the resumed session_start calls, so a plugin never hears a
        // session_end before the session_start of the same session.
        let maintenance = crate::maintenance::spawn(state.clone(), resumed, crate::maintenance::MAINTENANCE_INTERVAL);
        let startup = json!({"port": addr.port()});
        crate::automation::emit_detached(&state, crate::automation::event("gateway", "startup", "gateway", startup));
        crate::automation::run_boot_md(&state);

        let (done_tx, done_rx) = mpsc::channel(1);
        let app = AppState { gateway: state.clone(), done: done_tx.clone() };
        let (stop_accepting, stop_rx) = oneshot::channel::<()>();
        let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
        // No Nagle: a response often follows an event frame immediately, and waiting for the first
        // segment's ACK would add the client's delayed-ACK time (~40 ms) to the call.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, service).with_graceful_shutdown(async {
                let _ = stop_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server stopped with an error");
            }
        });
        let watcher = crate::reload::spawn_watcher(state.clone());
        tracing::info!(%addr, auth = state.auth().mode_name(), "gateway listening");
        Ok(RunningGateway {
            addr,
            generated_token,
            state,
            server,
            stop_accepting,
            watcher,
            maintenance,
            done_tx,
            done_rx,
            restart_rx,
        })
    }
}

impl RunningGateway {
    /// Resolves when the gateway asks to be restarted in process (a config change in `restart` mode).
    pub async fn restart_requested(&mut self) {
        if self.restart_rx.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// The close sequence for this gateway, ready to run. Exposed so callers (and later subsystems)
    /// can insert their own steps before running it.
    pub fn shutdown_sequence(self, reason: &str, restart_expected_ms: Option<u64>) -> ShutdownSequence {
        let reason = match reason.trim() {
            "" => "gateway stopping".to_string(),
            r => r.to_string(),
        };
        let RunningGateway { state, server, stop_accepting, watcher, maintenance, done_tx, mut done_rx, .. } = self;
        let mut seq = ShutdownSequence::new();
        seq.push("config-reloader", Duration::from_secs(1), move || async move {
            if let Some(w) = watcher {
                w.abort();
                let _ = w.await;
            }
            Ok(())
        });
        seq.push("session-maintenance", Duration::from_secs(1), move || async move {
            // A pass removes each session in one synchronous step, so aborting between them is safe.
            maintenance.abort();
            let _ = maintenance.await;
            Ok(())
        });
        let st = state.clone();
        seq.push("stop-accepting", Duration::from_secs(1), move || async move {
            st.closing.store(true, Ordering::SeqCst);
            let _ = stop_accepting.send(());
            Ok(())
        });
        let st = state.clone();
        let hook_ctx = json!({"reason": reason, "restartExpectedMs": restart_expected_ms});
        let ctx = hook_ctx.clone();
        seq.push("gateway:shutdown", Duration::from_secs(5), move || async move {
            st.internal_hooks.emit(&crate::automation::event("gateway", "shutdown", "gateway", ctx)).await;
            Ok(())
        });
        if restart_expected_ms.is_some() {
            let st = state.clone();
            seq.push("gateway:pre-restart", Duration::from_secs(10), move || async move {
                st.internal_hooks.emit(&crate::automation::event("gateway", "pre-restart", "gateway", hook_ctx)).await;
                Ok(())
            });
        }
        let st = state.clone();
        seq.push("agent-runs", Duration::from_secs(3), move || async move {
            // Abort every run and let it write its last transcript entries before sessions end.
            if st.runs.shutdown(Duration::from_secs(2)).await {
                Ok(())
            } else {
                Err("runs still finishing after 2 s".into())
            }
        });
        let st = state.clone();
        // After the runs were aborted, so job and heartbeat turns waiting on them end at once.
        seq.push("cron", Duration::from_secs(2), move || async move {
            st.cron.stop_all().await;
            st.heartbeats.stop_all().await;
            Ok(())
        });
        let st = state.clone();
        let restart = restart_expected_ms.is_some();
        // The drain has its own total budget; the step's timeout is only a backstop above it.
        let drain_backstop = st.opts.session_end_drain_budget + Duration::from_secs(1);
        seq.push("session-end-drain", drain_backstop, move || async move {
            let out = crate::lifecycle::drain(&st, restart).await;
            if out.timed_out {
                return Err(format!("timed out with {} sessions", out.emitted_session_ids.len()));
            }
            Ok(())
        });
        let st = state.clone();
        // After the drain: replies of runs that finished while closing still reach their chats.
        seq.push("channels", Duration::from_secs(3), move || async move {
            st.channels.stop_all().await;
            Ok(())
        });
        let st = state.clone();
        seq.push("broadcast-shutdown", Duration::from_secs(1), move || async move {
            // `send` fails only when no connection is subscribed, which is fine.
            let _ = st.shutdown_tx.send(ShutdownNotice { reason, restart_expected_ms });
            Ok(())
        });
        seq.push("close-clients", Duration::from_secs(2), move || async move {
            drop(done_tx);
            // Every connection holds a sender clone; `None` means all have finished.
            let _ = done_rx.recv().await;
            Ok(())
        });
        let st = state.clone();
        seq.push("plugins", Duration::from_secs(3), move || async move {
            let host = st.plugins.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(host) = host {
                host.stop().await;
            }
            Ok(())
        });
        seq.push("http-server", Duration::from_secs(5), move || async move {
            server.await.map_err(|e| format!("server task failed: {e}"))
        });
        seq
    }

    /// Close: run the shutdown sequence and report.
    pub async fn close(self, reason: &str, restart_expected_ms: Option<u64>) -> ShutdownReport {
        self.shutdown_sequence(reason, restart_expected_ms).run().await
    }
}
