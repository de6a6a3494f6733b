//! Real third-party servers for the channel tests, installed by `scripts/install-peers` into
//! `.cache/peers` and started here on 127.0.0.1 (each stopped by its PID when dropped):
//! telegram-test-api (Node), miniircd (Python), Synapse (Python).
//!
//! `scripts/test` sets HOMARUS_REQUIRE_PEERS=1 so a missing install fails; a bare `cargo test`
//! without them skips these tests with a message.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where `scripts/install-peers` put the servers (`HOMARUS_PEERS_DIR` overrides).
pub fn peers_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("HOMARUS_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/peers"));
    if dir.join("venv/bin/python").exists() && dir.join("telegram/node_modules/telegram-test-api").exists() {
        return Some(dir);
    }
    if std::env::var("HOMARUS_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("the channel test peers are not installed in {}: run scripts/install-peers", dir.display());
    }
    eprintln!("skipping: channel test peers not installed (scripts/test installs them)");
    None
}

/// A free loopback port (bound and released; the server takes it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed (with its group) when dropped.
pub struct Peer {
    pub child: Child,
    pub port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `port` accepts a TCP connection (the readiness signal), or the process exits.
fn wait_port(child: &mut Child, port: u16, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// telegram-test-api on a free port.
pub fn telegram(peers: &Path) -> Peer {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let module = peers.join("telegram/node_modules/telegram-test-api");
    let script = format!(
        "const T = require({module:?});\n\
         const s = new T({{port: {port}, host: '127.0.0.1', storeTimeout: 60}});\n\
         s.start().then(() => console.log('up'));\n\
         process.on('SIGTERM', () => s.stop().then(() => process.exit(0)));\n",
        module = module.display().to_string()
    );
    std::fs::write(dir.path().join("start.js"), script).unwrap();
    let mut child = Command::new("node")
        .arg(dir.path().join("start.js"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "up", "telegram-test-api started");
    wait_port(&mut child, port, "telegram-test-api", Duration::from_secs(10));
    Peer { child, port, _dir: Some(dir) }
}

/// miniircd on a free port (as root it needs `--setuid root`).
pub fn miniircd(peers: &Path) -> Peer {
    let port = free_port();
    let mut cmd = Command::new(peers.join("venv/bin/miniircd"));
    cmd.args(["--listen", "127.0.0.1", "--ports", &port.to_string()]);
    if unsafe_is_root() {
        cmd.args(["--setuid", "root"]);
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("miniircd runs");
    wait_port(&mut child, port, "miniircd", Duration::from_secs(10));
    Peer { child, port, _dir: None }
}

/// miniircd over TLS with a fresh self-signed certificate for 127.0.0.1; returns the peer and the
/// certificate's PEM file (to trust through SSL_CERT_FILE).
pub fn miniircd_tls(peers: &Path) -> (Peer, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let port = free_port();
    let mut cmd = Command::new(peers.join("venv/bin/miniircd"));
    cmd.args(["--listen", "127.0.0.1", "--ports", &port.to_string()])
        .arg("--ssl-cert-file")
        .arg(&cert)
        .arg("--ssl-key-file")
        .arg(&key);
    if unsafe_is_root() {
        cmd.args(["--setuid", "root"]);
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("miniircd runs");
    wait_port(&mut child, port, "miniircd (TLS)", Duration::from_secs(10));
    (Peer { child, port, _dir: Some(dir) }, cert)
}

fn unsafe_is_root() -> bool {
    std::env::var("USER").as_deref() == Ok("root")
        || Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

/// Synapse with open registration and raised rate limits, on a free port.
pub fn synapse(peers: &Path) -> Peer {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let python = peers.join("venv/bin/python");
    let generated = Command::new(&python)
        .args(["-m", "synapse.app.homeserver", "--server-name", "localhost", "--config-path"])
        .arg(data.join("homeserver.yaml"))
        .args(["--generate-config", "--report-stats=no", "--data-directory"])
        .arg(data)
        .output()
        .expect("synapse generates its config");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let base = std::fs::read_to_string(data.join("homeserver.yaml")).unwrap();
    // Drop the generated listeners; add ours (loopback only) and the test settings.
    let mut kept = String::new();
    let mut skipping = false;
    for line in base.lines() {
        if line.starts_with("listeners:") {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with(' ') || line.starts_with('-')) {
            continue;
        }
        skipping = false;
        kept.push_str(line);
        kept.push('\n');
    }
    let limits = "{per_second: 1000, burst_count: 1000}";
    kept.push_str(&format!(
        "listeners:\n  - port: {port}\n    bind_addresses: ['127.0.0.1']\n    type: http\n    tls: false\n    x_forwarded: false\n    resources:\n      - names: [client]\n        compress: false\n\
         trusted_key_servers: []\nsuppress_key_server_warning: true\nenable_registration: true\n\
         enable_registration_without_verification: true\nfederation_domain_whitelist: []\nurl_preview_enabled: false\n\
         rc_message: {limits}\nrc_registration: {limits}\nrc_joins: {{local: {limits}, remote: {limits}}}\n\
         rc_login: {{address: {limits}, account: {limits}, failed_attempts: {limits}}}\n\
         rc_invites: {{per_room: {limits}, per_user: {limits}, per_issuer: {limits}}}\n"
    ));
    std::fs::write(data.join("homeserver.yaml"), kept).unwrap();
    let log_config = data.join("localhost.log.config");
    if let Ok(l) = std::fs::read_to_string(&log_config) {
        std::fs::write(&log_config, l.replace("level: INFO", "level: WARNING")).unwrap();
    }
    let mut child = Command::new(&python)
        .args(["-m", "synapse.app.homeserver", "-c"])
        .arg(data.join("homeserver.yaml"))
        .current_dir(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("synapse runs");
    wait_port(&mut child, port, "synapse", Duration::from_secs(60));
    Peer { child, port, _dir: Some(dir) }
}

/// Register a Matrix user with open registration; returns its access token.
pub async fn matrix_register(http: &reqwest::Client, base: &str, user: &str, password: &str) -> String {
    let v: Value = http
        .post(format!("{base}/_matrix/client/v3/register"))
        .json(&json!({"username": user, "password": password, "auth": {"type": "m.login.dummy"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap_or_else(|| panic!("registered {user}: {v}")).to_string()
}
