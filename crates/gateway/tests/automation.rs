//! Internal automation hooks: a `HOOK.md` hook with an executable handler and the bundled
//! command-logger, fired by the gateway's lifecycle and session RPCs.
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn install_recorder(state_dir: &Path) {
    let dir = state_dir.join("hooks/recorder");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("HOOK.md"),
        "---\nname: recorder\ndescription: records events\nmetadata:\n  { \"openclaw\": { \"events\": [\"gateway\", \"command\", \"session:patch\"] } }\n---\n# recorder\n",
    )
    .unwrap();
    std::fs::write(dir.join("handler.sh"), "#!/bin/sh\ncat >> events.jsonl\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("handler.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn events(state_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(state_dir.join("hooks/recorder/events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn names(evs: &[Value]) -> Vec<String> {
    evs.iter().map(|e| format!("{}:{}", e["type"].as_str().unwrap(), e["action"].as_str().unwrap())).collect()
}

async fn wait_for(state_dir: &Path, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !names(&events(state_dir)).iter().any(|n| n == name) {
        assert!(Instant::now() < deadline, "{name} never fired: {:?}", names(&events(state_dir)));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn lifecycle_command_and_patch_events_reach_hooks() {
    let mut gw = TestGateway::start_tuned(
        Some(r#"{hooks: {internal: {entries: {recorder: {}, "command-logger": {}}}}}"#),
        |o| install_recorder(&o.state_dir),
    )
    .await;
    let state_dir = gw.dir.path().to_path_buf();
    wait_for(&state_dir, "gateway:startup").await;

    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("sessions.create", json!({"key": "agent:main:auto"})).await;
    c.call("sessions.patch", json!({"key": "agent:main:auto", "pinned": true})).await;
    wait_for(&state_dir, "session:patch").await;
    c.call("sessions.reset", json!({"key": "agent:main:auto", "reason": "new"})).await;
    // command hooks are awaited before the reset returns.
    let evs = events(&state_dir);
    let new = evs.iter().find(|e| e["type"] == "command" && e["action"] == "new").expect("command:new");
    assert_eq!(new["sessionKey"], "agent:main:auto");
    assert_eq!(new["context"]["commandSource"], "rpc:sessions.reset");
    let commands = std::fs::read_to_string(state_dir.join("logs/commands.log")).unwrap();
    let line: Value = serde_json::from_str(commands.lines().last().unwrap()).unwrap();
    assert_eq!(
        (line["action"].clone(), line["sessionKey"].clone()),
        (json!("new"), json!("agent:main:auto")),
        "the bundled command-logger ran"
    );

    let report = gw.close("gateway restarting", Some(1500)).await;
    assert!(report.warnings.is_empty(), "{report:?}");
    let all = names(&events(&state_dir));
    let tail: Vec<&str> = all.iter().rev().take(2).rev().map(String::as_str).collect();
    assert_eq!(tail, ["gateway:shutdown", "gateway:pre-restart"]);
    let shutdown = events(&state_dir).into_iter().find(|e| e["action"] == "shutdown").unwrap();
    assert_eq!(shutdown["context"]["restartExpectedMs"], 1500);
}

#[tokio::test]
async fn hooks_are_off_unless_selected() {
    let mut gw = TestGateway::start_tuned(None, |o| install_recorder(&o.state_dir)).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("sessions.create", json!({"key": "agent:main:quiet"})).await;
    c.call("sessions.reset", json!({"key": "agent:main:quiet"})).await;
    gw.close("gateway stopping", None).await;
    assert!(events(gw.dir.path()).is_empty());
    assert!(!gw.dir.path().join("logs/commands.log").exists());
}

#[tokio::test]
async fn chat_messages_fire_message_received_and_sent() {
    let mock = homarus_mockllm::MockLlm::start().await.unwrap();
    let config = format!(
        r#"{{hooks: {{internal: {{enabled: true}}}},
            models: {{providers: {{local: {{baseUrl: "{}", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
            agents: {{defaults: {{model: "local/m"}}}}}}"#,
        mock.openai_base_url()
    );
    let gw = TestGateway::start_tuned(Some(&config), |o| {
        install_recorder(&o.state_dir);
        let md = o.state_dir.join("hooks/recorder/HOOK.md");
        let text = std::fs::read_to_string(&md).unwrap().replace(r#""session:patch""#, r#""session:patch", "message""#);
        std::fs::write(md, text).unwrap();
    })
    .await;
    let state_dir = gw.dir.path().to_path_buf();
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "hi there", "idempotencyKey": "m1"})).await;
    wait_for(&state_dir, "message:sent").await;
    let evs = events(&state_dir);
    let received = evs.iter().find(|e| e["type"] == "message" && e["action"] == "received").unwrap();
    assert_eq!(received["context"]["content"], "hi there");
    assert_eq!(received["context"]["channelId"], "webchat");
    let sent = evs.iter().find(|e| e["type"] == "message" && e["action"] == "sent").unwrap();
    assert_eq!(sent["context"]["content"], "MOCK-REPLY 1");
    assert_eq!(sent["context"]["success"], true);
}
