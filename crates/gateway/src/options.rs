//! What the gateway is started with, and how that resolves against the configuration.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use homarus_config::{AuthMode, BindMode, HomarusConfig};

/// Start-up options (CLI flags and environment, which win over the config file).
#[derive(Clone)]
pub struct GatewayOptions {
    /// State folder (`~/.homarus`, `HOMARUS_STATE_DIR`).
    pub state_dir: PathBuf,
    /// Config file (`<stateDir>/homarus.json`, `HOMARUS_CONFIG_PATH`).
    pub config_path: PathBuf,
    /// `--port`.
    pub port: Option<u16>,
    /// `--bind`.
    pub bind: Option<BindMode>,
    /// Host for `--bind custom`.
    pub custom_host: Option<String>,
    /// `--auth`.
    pub auth_mode: Option<AuthMode>,
    /// `--token` / `HOMARUS_GATEWAY_TOKEN`.
    pub token: Option<String>,
    /// `--password` / `HOMARUS_GATEWAY_PASSWORD`.
    pub password: Option<String>,
    /// Version reported to clients.
    pub version: String,
    /// `tick` event interval, advertised as `hello-ok.policy.tickIntervalMs` (protocol default 30 s).
    pub tick_interval: std::time::Duration,
    /// Time a client has to complete the handshake (protocol default 15 s).
    pub handshake_timeout: std::time::Duration,
    /// WebSocket ping interval (25 s: under the client's 2×tick watchdog and common proxy idle limits).
    pub ping_interval: std::time::Duration,
    /// Plugin hook handlers (native ones registered by an embedder or test; plugin processes later).
    pub hooks: std::sync::Arc<homarus_hooks::HookRunner>,
    /// Total budget of the shutdown `session_end` drain (2 s).
    pub session_end_drain_budget: std::time::Duration,
    /// How often the task ledger is swept (60 s), and how long an open task whose run is gone may
    /// stay without news before it is `lost` (5 min).
    pub task_sweep: (std::time::Duration, std::time::Duration),
}

impl std::fmt::Debug for GatewayOptions {
    // Secrets are shown only as present or absent.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("GatewayOptions")
            .field("state_dir", &self.state_dir)
            .field("config_path", &self.config_path)
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("custom_host", &self.custom_host)
            .field("auth_mode", &self.auth_mode)
            .field("token", &secret(&self.token))
            .field("password", &secret(&self.password))
            .field("version", &self.version)
            .field("tick_interval", &self.tick_interval)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("session_end_drain_budget", &self.session_end_drain_budget)
            .field("task_sweep", &self.task_sweep)
            .finish()
    }
}

impl GatewayOptions {
    /// Options with the defaults for a state folder.
    pub fn new(state_dir: PathBuf, config_path: PathBuf) -> Self {
        Self {
            state_dir,
            config_path,
            port: None,
            bind: None,
            custom_host: None,
            auth_mode: None,
            token: None,
            password: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
            tick_interval: std::time::Duration::from_millis(homarus_protocol::TICK_INTERVAL_MS),
            handshake_timeout: std::time::Duration::from_millis(homarus_protocol::HANDSHAKE_TIMEOUT_MS),
            ping_interval: std::time::Duration::from_secs(25),
            hooks: std::sync::Arc::new(homarus_hooks::HookRunner::new()),
            session_end_drain_budget: std::time::Duration::from_secs(2),
            task_sweep: (std::time::Duration::from_secs(60), std::time::Duration::from_secs(300)),
        }
    }

    /// The state database path.
    pub fn database_path(&self) -> PathBuf {
        self.state_dir.join("state.sqlite")
    }

    /// Where a generated token is kept.
    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join("gateway-token")
    }

    /// The address to listen on.
    pub fn listen_addr(&self, cfg: &HomarusConfig) -> Result<SocketAddr, GatewayError> {
        let port = self.port.unwrap_or_else(|| cfg.port());
        let bind = self.bind.or(cfg.gateway.bind).unwrap_or_default();
        let ip = match bind {
            BindMode::Loopback | BindMode::Auto => IpAddr::V4(Ipv4Addr::LOCALHOST),
            BindMode::Lan => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            BindMode::Custom => {
                let host =
                    self.custom_host.clone().or_else(|| cfg.gateway.custom_bind_host.clone()).ok_or_else(|| {
                        GatewayError::Config("gateway.bind is \"custom\" but gateway.customBindHost is not set".into())
                    })?;
                host.parse().map_err(|_| {
                    GatewayError::Config(format!("gateway.customBindHost: expected an IP address, found \"{host}\""))
                })?
            }
            BindMode::Tailnet => {
                return Err(GatewayError::Config(
                    "gateway.bind: \"tailnet\" is not supported by Homarus; use \"lan\" or \"custom\"".into(),
                ))
            }
        };
        Ok(SocketAddr::new(ip, port))
    }
}

/// The shared secret clients must present.
#[derive(Clone, PartialEq, Eq)]
pub enum ResolvedAuth {
    /// Anyone may connect (loopback only).
    None,
    /// `auth.token` must match.
    Token(String),
    /// `auth.password` must match.
    Password(String),
}

impl std::fmt::Debug for ResolvedAuth {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mode_name())
    }
}

impl ResolvedAuth {
    /// `none`, `token` or `password`.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Token(_) => "token",
            Self::Password(_) => "password",
        }
    }

    /// Resolve from options and config. A token is generated and stored (0600) when the mode is
    /// `token` and none is configured; the second value is then `true`.
    pub fn resolve(opts: &GatewayOptions, cfg: &HomarusConfig) -> Result<(Self, bool), GatewayError> {
        let mode = opts.auth_mode.or(cfg.gateway.auth.mode).unwrap_or_default();
        match mode {
            AuthMode::None => Ok((Self::None, false)),
            AuthMode::TrustedProxy => Err(GatewayError::Config(
                "gateway.auth.mode: \"trusted-proxy\" is not supported by Homarus; use \"token\" or \"password\""
                    .into(),
            )),
            AuthMode::Password => {
                let pw = opts.password.clone().or_else(|| cfg.gateway.auth.password.clone()).filter(|p| !p.is_empty());
                pw.map(|p| (Self::Password(p), false)).ok_or_else(|| {
                    GatewayError::Config(
                        "gateway.auth.mode is \"password\" but no password is set (gateway.auth.password, --password or HOMARUS_GATEWAY_PASSWORD)".into(),
                    )
                })
            }
            AuthMode::Token => {
                if let Some(t) = opts.token.clone().or_else(|| cfg.gateway.auth.token.clone()).filter(|t| !t.is_empty())
                {
                    return Ok((Self::Token(t), false));
                }
                load_or_generate_token(&opts.token_file())
            }
        }
    }
}

fn load_or_generate_token(path: &Path) -> Result<(ResolvedAuth, bool), GatewayError> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let t = existing.trim().to_string();
        if !t.is_empty() {
            return Ok((ResolvedAuth::Token(t), false));
        }
    }
    let token = crate::auth::random_token();
    homarus_config::write_atomic(path, &format!("{token}\n")).map_err(|e| GatewayError::Config(e.to_string()))?;
    Ok((ResolvedAuth::Token(token), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let mut o = GatewayOptions::new("/s".into(), "/s/h.json".into());
        o.token = Some("very-secret-token".into());
        o.password = Some("very-secret-password".into());
        let shown = format!("{o:?} {:?}", ResolvedAuth::Token("very-secret-token".into()));
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<set>"));
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is invalid or inconsistent.
    #[error("{0}")]
    Config(String),
    /// The state database could not be opened.
    #[error(transparent)]
    Store(#[from] homarus_store::StoreError),
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
