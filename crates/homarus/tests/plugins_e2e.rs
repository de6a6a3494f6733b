//! The lifecycle guarantee end to end: the real binary, a real external plugin process (the
//! example session-ledger, Python), sessions created over the WebSocket, and real signals.
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn config_with_plugin(plugin_dir: &Path, extra_entries: &str) -> String {
    format!(r#"{{plugins: {{load: {{paths: ["{}"]}}, entries: {{{extra_entries}}}}}}}"#, plugin_dir.display())
}

/// Poll `status` until the plugin runs. The bound is wide because the plugin's `initialize` writes
/// and syncs a SQLite file, which a machine busy with a parallel build can delay by seconds.
fn wait_plugin_running(d: &Daemon, url: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = d.cli(&["status", "--url", url, "--token", &d.token, "--json"]);
        let status: Value = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
        let running =
            status["plugins"].as_array().is_some_and(|ps| ps.iter().any(|p| p["id"] == id && p["state"] == "running"));
        if running {
            return;
        }
        assert!(Instant::now() < deadline, "plugin {id} not running: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (hook, session_id, reason) rows of the ledger, in order.
fn ledger(db: &Path) -> Vec<(String, String, Option<String>)> {
    let script = "import json,sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(json.dumps(c.execute('select hook, session_id, reason from events order by id').fetchall()))";
    let out = std::process::Command::new("python3").args(["-c", script]).arg(db).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn every_session_gets_exactly_one_end_per_start_across_restart_and_shutdown() {
    let plugin = workspace_root().join("examples/plugins/session-ledger");
    let db_dir = tempfile::tempdir().unwrap();
    let db = db_dir.path().join("ledger.sqlite");
    let entries = format!(r#""session-ledger": {{config: {{db: "{}"}}}}"#, db.display());
    let mut d = Daemon::start(&[], Some(&config_with_plugin(&plugin, &entries)));
    let url = d.url.clone();
    wait_plugin_running(&d, &url, "session-ledger");
    let mut ids = Vec::new();
    for k in ["a", "b", "c"] {
        let params = format!(r#"{{"key":"agent:main:{k}"}}"#);
        let out = d.cli(&[
            "gateway",
            "call",
            "sessions.create",
            "--params",
            &params,
            "--url",
            &url,
            "--token",
            &d.token,
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        ids.push(v["sessionId"].as_str().unwrap().to_string());
    }

    d.signal(10); // SIGUSR1: in-process restart
    let url = d.wait_for_url();
    wait_plugin_running(&d, &url, "session-ledger");
    // After the restart every stored session is tracked again (session_start, resumed).
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger(&db).iter().filter(|(h, _, _)| h == "session_start").count() < 6 {
        assert!(Instant::now() < deadline, "sessions not re-tracked: {:?}", ledger(&db));
        std::thread::sleep(Duration::from_millis(50));
    }

    d.signal(15); // SIGTERM
    let status = d.child.wait().unwrap();
    assert!(status.success());

    let rows = ledger(&db);
    let mut per_session: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for (hook, id, reason) in rows {
        per_session.entry(id).or_default().push((hook, reason));
    }
    assert_eq!(per_session.len(), 3, "{per_session:?}");
    for id in &ids {
        let events = &per_session[id];
        let expected = vec![
            ("session_start".to_string(), None),
            ("session_end".to_string(), Some("restart".to_string())),
            ("session_start".to_string(), None),
            ("session_end".to_string(), Some("shutdown".to_string())),
        ];
        assert_eq!(events, &expected, "session {id}");
    }
}

#[test]
fn a_plugin_sleeping_in_session_end_cannot_hold_the_exit() {
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slow-end");
    let mut d = Daemon::start(&[], Some(&config_with_plugin(&plugin, "")));
    let url = d.url.clone();
    wait_plugin_running(&d, &url, "slow-end");
    for k in ["x", "y"] {
        let params = format!(r#"{{"key":"agent:main:{k}"}}"#);
        let out =
            d.cli(&["gateway", "call", "sessions.create", "--params", &params, "--url", &url, "--token", &d.token]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let started = Instant::now();
    d.signal(15);
    let line = d.next_line().unwrap();
    let status = d.child.wait().unwrap();
    let took = started.elapsed();
    assert!(status.success());
    eprintln!("signal to exit: {took:?}; {line}");
    assert!(took < Duration::from_secs(3), "exited after {took:?} ({line})");
    assert!(line.contains("warnings: session-end-drain"), "{line}");
    let log = std::fs::read_to_string(d.state_dir().join("logs/homarus.log")).unwrap();
    assert!(log.contains("session-end-drain timed out after 2000ms after 2 sessions"), "the timeout is logged");
}
