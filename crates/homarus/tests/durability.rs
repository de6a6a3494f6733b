//! Nothing acknowledged is lost on `kill -9`: finished turns survive, a torn transcript line is
//! skipped with a warning, and the session goes on after the restart.
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn history(d: &Daemon) -> Vec<Value> {
    let out = d.cli(&[
        "gateway",
        "call",
        "chat.history",
        "--params",
        r#"{"sessionKey":"agent:main:main"}"#,
        "--json",
        "--url",
        &d.url,
        "--token",
        &d.token,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["messages"].as_array().unwrap().clone()
}

fn texts(msgs: &[Value]) -> Vec<String> {
    msgs.iter().map(|m| m["content"][0]["text"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn kill_9_keeps_every_finished_turn_and_skips_a_torn_line() {
    let model = MockModel::start();
    let config = model.config();
    let d = Daemon::start(&[], Some(&config));
    for i in 0..3 {
        let out = d.cli(&["agent", "-m", &format!("turn {i}"), "--url", &d.url, "--token", &d.token]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // A fourth turn whose answer never finishes streaming: killed mid-answer.
    model
        .server
        .push([homarus_mockllm::Reply::Chunks(vec!["partial".into(), " never".into()], Duration::from_secs(60))]);
    let mut slow = std::process::Command::new(BIN)
        .args(["agent", "-m", "turn 3", "--url", &d.url, "--token", &d.token])
        .env("HOMARUS_STATE_DIR", d.state_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while model.server.requests().len() < 4 {
        assert!(Instant::now() < deadline, "the fourth turn never reached the model");
        std::thread::sleep(Duration::from_millis(5));
    }
    let token = d.token.clone();
    let dir = d.kill_9();
    let _ = slow.kill();
    let _ = slow.wait();

    // The crash tore the last line of the transcript.
    let sessions = dir.path().join("agents/main/sessions");
    let file = std::fs::read_dir(&sessions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    std::io::Write::write_all(&mut f, br#"{"type":"message","id":"torn","message":{"role":"assis"#).unwrap();
    drop(f);

    let d = Daemon::start_in(dir, &["--token", &token], Some(&config));
    let msgs = history(&d);
    assert_eq!(
        texts(&msgs),
        ["turn 0", "MOCK-REPLY 1", "turn 1", "MOCK-REPLY 2", "turn 2", "MOCK-REPLY 3", "turn 3"],
        "every finished turn and the interrupted turn's message survive; the unfinished answer does not"
    );
    let out = d.cli(&["agent", "-m", "after the crash", "--url", &d.url, "--token", &d.token]);
    assert!(out.status.success(), "{}", stderr(&out));
    let msgs = history(&d);
    assert_eq!(texts(&msgs[7..]), ["after the crash", "MOCK-REPLY 5"]);
}
