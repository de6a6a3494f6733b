//! Nothing acknowledged is lost on `kill -9`: finished turns survive, a torn transcript line is
//! skipped with a warning, and the session goes on after the restart.
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn history(d: &Daemon) -> Vec<Value> {
    d.call_json("chat.history", r#"{"sessionKey":"agent:main:main"}"#)["messages"].as_array().unwrap().clone()
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

fn poll(d: &Daemon, method: &str, params: &str, ok: &dyn Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = d.call_json(method, params);
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{method} never satisfied: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_with_100_running_tasks_leaves_none_running_and_tells_every_requester() {
    const N: usize = 100;
    let model = MockModel::start();
    model.server.hold_videos(true);
    for i in 0..N {
        model.server.push_matching(
            &format!("VIDEO {i}\""),
            homarus_mockllm::Reply::ToolCall {
                name: "video_generate".into(),
                args: serde_json::json!({"prompt": format!("clip {i}")}),
            },
        );
        model.server.push_matching("Started video_generate", homarus_mockllm::Reply::Text("queued".into()));
    }
    let media = format!(r#""openai":{{"baseUrl":"{}","apiKey":"sk"}},"local""#, model.server.openai_base_url());
    let config = model.config().replacen(r#""local""#, &media, 1);
    let d = Daemon::start(&[], Some(&config));
    for i in 0..N {
        let params = format!(r#"{{"sessionKey":"agent:main:s{i}","message":"VIDEO {i}","idempotencyKey":"v{i}"}}"#);
        d.call_json("chat.send", &params);
    }
    poll(&d, "tasks.list", r#"{"status":"running","limit":500}"#, &|v| v["tasks"].as_array().unwrap().len() == N);
    let token = d.token.clone();
    let dir = d.kill_9();

    for _ in 0..N {
        model.server.push_matching("was lost", homarus_mockllm::Reply::Text("Sorry, that video was lost.".into()));
    }
    let restarted = Instant::now();
    let d = Daemon::start_in(dir, &["--token", &token], Some(&config));
    let running = d.call_json("tasks.list", r#"{"status":["queued","running"],"limit":500}"#);
    assert_eq!(running["tasks"], serde_json::json!([]), "nothing is left running after the restart");
    let failed = d.call_json("tasks.list", r#"{"status":"failed","limit":500}"#);
    assert_eq!(failed["tasks"].as_array().unwrap().len(), N);
    assert!(failed["tasks"].as_array().unwrap().iter().all(|t| t["error"].as_str().unwrap().starts_with("lost")));
    // Every requester hears about its task exactly once, in its own session.
    for i in 0..N {
        let key = format!("agent:main:s{i}");
        let h = poll(&d, "chat.history", &format!(r#"{{"sessionKey":"{key}"}}"#), &|v| {
            v["messages"].as_array().unwrap().iter().any(|m| m["content"][0]["text"] == "Sorry, that video was lost.")
        });
        let notices = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["content"][0]["text"].as_str().unwrap_or("").contains("was lost: the gateway stopped"))
            .count();
        assert_eq!(notices, 1, "{key}: {h}");
    }
    eprintln!("restart → {N} lost tasks reported to their requesters in {:?}", restarted.elapsed());
}
