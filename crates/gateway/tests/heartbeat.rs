//! Heartbeats: skipped while HEARTBEAT.md is empty, `HEARTBEAT_OK` acknowledgements dropped, a real
//! message sent to the main session's conversation (`target: "last"`), `set-heartbeats` and
//! `last-heartbeat`; a cron job with `wakeMode: "now"` runs a heartbeat at once with its event.
mod common;

use std::time::Duration;

use common::*;
use homarus_mockllm::{MockLlm, Reply};
use homarus_qabus::QaBus;
use serde_json::{json, Value};

fn config(mock: &MockLlm, heartbeat: &str, extra: &str) -> String {
    format!(
        r#"{{
          models: {{providers: {{local: {{baseUrl: "{}", apiKey: "sk-test", api: "openai-completions",
                     models: [{{id: "mock-model", contextWindow: 120000, maxTokens: 1024}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "local/mock-model"}}, heartbeat: {heartbeat}}}}},
          {extra}
        }}"#,
        mock.openai_base_url()
    )
}

/// Wait for a `heartbeat` event matching `ok`.
async fn heartbeat_event(c: &mut Client, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no matching heartbeat event");
        if let Some(e) = c.recv().await {
            if e["event"] == "heartbeat" && ok(&e["payload"]) {
                return e["payload"].clone();
            }
        }
    }
}

#[tokio::test]
async fn heartbeats_read_the_file_drop_acks_and_reach_the_last_conversation() {
    let mock = MockLlm::start().await.unwrap();
    let bus = QaBus::start().await.unwrap();
    let extra = format!(
        r#"channels: {{"qa-channel": {{baseUrl: "{}", botUserId: "homarus", pollTimeoutMs: 250, dmPolicy: "open", allowFrom: ["*"]}}}}"#,
        bus.url()
    );
    let gw = TestGateway::start_with(Some(&config(&mock, r#"{every: "1s", target: "last", ackMaxChars: 20}"#, &extra)))
        .await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let skipped = heartbeat_event(&mut c, |p| p["status"] == "skipped").await;
    assert_eq!(
        (skipped["skipReason"].as_str(), skipped["sessionKey"].as_str()),
        (Some("empty-heartbeat-file"), Some("agent:main:main"))
    );

    // The main session learns its conversation from a DM.
    mock.push_matching("hi there", Reply::Text("hello alice".into()));
    bus.inject("direct", "alice", "alice", "hi there", None).await;
    bus.wait_outbound("dm:alice", "hello alice", Duration::from_secs(20)).await.expect("a reply");

    mock.push_matching("Read HEARTBEAT.md", Reply::Text("HEARTBEAT_OK all quiet".into()));
    mock.push_matching("Read HEARTBEAT.md", Reply::Text("Reminder: water the plants today. HEARTBEAT_OK".into()));
    std::fs::create_dir_all(gw.dir.path().join("workspace")).unwrap();
    std::fs::write(gw.dir.path().join("workspace/HEARTBEAT.md"), "# Heartbeat\n- remind alice to water the plants\n")
        .unwrap();
    let ack = heartbeat_event(&mut c, |p| p["status"] != "skipped").await;
    assert_eq!(ack["status"], "ok-token", "{ack}");
    let sent = heartbeat_event(&mut c, |p| p["status"] == "sent").await;
    assert_eq!(sent["preview"], "Reminder: water the plants today.");
    let msg = bus.wait_outbound("dm:alice", "water the plants", Duration::from_secs(20)).await.expect("sent to alice");
    assert_eq!(msg["text"], "Reminder: water the plants today.", "HEARTBEAT_OK stripped");
    let out: Vec<Value> = bus.outbound().await.into_iter().filter(|m| m["to"] == "dm:alice").collect();
    assert!(!out.iter().any(|m| m["text"].as_str().unwrap_or("").contains("all quiet")), "the short ack was dropped");

    // HEARTBEAT.md is injected into the heartbeat turn, beside the other workspace files.
    let hb = mock.requests().into_iter().find(|r| r.to_string().contains("Read HEARTBEAT.md")).unwrap().to_string();
    assert!(
        hb.contains("## HEARTBEAT.md")
            && hb.contains("remind alice to water the plants")
            && hb.contains("## AGENTS.md")
    );
    c.call("set-heartbeats", json!({"enabled": false})).await;
    let off = heartbeat_event(&mut c, |p| p["skipReason"] == "disabled").await;
    assert_eq!(off["status"], "skipped");
    let last = c.call("last-heartbeat", json!({})).await;
    assert_eq!(last["skipReason"], "disabled");
}

#[tokio::test]
async fn a_cron_wake_now_runs_a_heartbeat_with_the_event() {
    let mock = MockLlm::start().await.unwrap();
    mock.push_matching(
        "Stand up and stretch",
        Reply::Text("Time to stretch, you have been sitting for an hour!".into()),
    );
    let gw = TestGateway::start_with(Some(&config(&mock, r#"{every: "1h", lightContext: true}"#, ""))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call(
        "cron.add",
        json!({"name": "stretch", "schedule": {"kind": "at", "at": "1s"}, "sessionTarget": "main",
                               "wakeMode": "now", "payload": {"kind": "systemEvent", "text": "Stand up and stretch"}}),
    )
    .await;
    let sent = heartbeat_event(&mut c, |p| p["status"] == "sent").await;
    assert_eq!(sent["reason"], "cron");
    assert!(sent["preview"].as_str().unwrap().starts_with("Time to stretch"));
    let req = mock.requests().into_iter().find(|r| r.to_string().contains("Stand up and stretch")).unwrap();
    assert!(req.to_string().contains("Read HEARTBEAT.md"), "a heartbeat turn carried the event");
    assert!(!req.to_string().contains("## AGENTS.md"), "lightContext: no other workspace file");
}
