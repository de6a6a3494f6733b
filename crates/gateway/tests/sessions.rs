//! Session RPCs over the WebSocket: durable rows, transcripts, archives, events, params and scopes.
mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn create_list_describe_patch_reset_delete() {
    let gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let (mut watcher, _) = connect_cli(&gw.url()).await;

    let created = c.call("sessions.create", json!({"key": "agent:main:work", "label": "Work"})).await;
    assert_eq!(created["ok"], true);
    assert_eq!(created["created"], true);
    let first_id = created["sessionId"].as_str().unwrap().to_string();
    let file = created["entry"]["sessionFile"].as_str().unwrap().to_string();
    let header: Value = serde_json::from_str(std::fs::read_to_string(&file).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(header["type"], "session");
    assert_eq!(header["id"], first_id.as_str());
    let again = c.call("sessions.create", json!({"key": "agent:main:work"})).await;
    assert_eq!(
        (again["created"].clone(), again["sessionId"].clone()),
        (json!(false), json!(first_id)),
        "adopts the existing key"
    );
    let other = c.call("sessions.create", json!({"agentId": "ops"})).await;
    assert!(other["key"].as_str().unwrap().starts_with("agent:ops:explicit:"), "{other}");

    let list = c.call("sessions.list", json!({"limit": 1})).await;
    assert_eq!(list["totalCount"], 2);
    assert_eq!(list["hasMore"], true);
    assert_eq!(list["sessions"][0]["key"], other["key"], "newest first");
    let by_label = c.call("sessions.list", json!({"label": "Work"})).await;
    assert_eq!(by_label["sessions"][0]["key"], "agent:main:work");

    let patched =
        c.call("sessions.patch", json!({"key": "agent:main:work", "thinkingLevel": "high", "pinned": true})).await;
    assert_eq!(patched["entry"]["thinkingLevel"], "high");
    let patched = c.call("sessions.patch", json!({"key": "agent:main:work", "thinkingLevel": null})).await;
    assert!(patched["entry"].get("thinkingLevel").is_none(), "null clears");
    assert_eq!(patched["entry"]["pinned"], true);
    let stale = c
        .request("sessions.patch", json!({"key": "agent:main:work", "expectedSessionId": "old", "pinned": false}))
        .await;
    assert_eq!(stale["error"]["details"]["code"], "SESSION_ID_MISMATCH");

    let reset = c.call("sessions.reset", json!({"key": "agent:main:work", "reason": "reset"})).await;
    assert_eq!(reset["previousSessionId"], first_id.as_str());
    assert_ne!(reset["sessionId"], first_id.as_str());
    let archived = reset["archived"][0].as_str().unwrap();
    assert!(archived.starts_with(&format!("{file}.reset.")) && Path::new(archived).exists(), "{archived}");
    assert!(!Path::new(&file).exists());
    assert_eq!(reset["entry"]["pinned"], true, "preferences survive a reset");
    let described = c.call("sessions.describe", json!({"key": "agent:main:work"})).await;
    assert_eq!(described["session"]["sessionId"], reset["sessionId"]);

    let deleted = c.call("sessions.delete", json!({"key": "agent:main:work"})).await;
    assert_eq!(deleted["deleted"], true);
    assert!(deleted["archived"][0].as_str().unwrap().contains(".jsonl.deleted."));
    let gone = c.request("sessions.describe", json!({"key": "agent:main:work"})).await;
    assert_eq!(gone["error"]["message"], "unknown session: agent:main:work");

    // Another operator saw every change.
    watcher.call("health", json!({})).await;
    let reasons: Vec<&str> = watcher
        .events
        .iter()
        .filter(|e| e["event"] == "sessions.changed")
        .map(|e| e["payload"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["create", "create", "patch", "patch", "reset", "delete"]);
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let mut gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let created = c.call("sessions.create", json!({"key": "agent:main:durable"})).await;
    gw.close("test", None).await;
    drop(c);
    let opts = {
        let mut o = homarus_gateway::GatewayOptions::new(gw.dir.path().to_path_buf(), gw.config_path());
        o.port = Some(0);
        o.token = Some(TOKEN.into());
        o
    };
    let running =
        homarus_gateway::Gateway::start(opts, homarus_config::load_file(&gw.config_path()).unwrap()).await.unwrap();
    let (mut c, _) = connect_cli(&format!("ws://{}", running.addr)).await;
    let described = c.call("sessions.describe", json!({"key": "agent:main:durable"})).await;
    assert_eq!(described["session"]["sessionId"], created["sessionId"]);
    running.close("test", None).await;
}

#[tokio::test]
async fn chat_history_reads_the_transcript_and_skips_a_torn_line() {
    let gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let created = c.call("sessions.create", json!({"key": "agent:main:chat"})).await;
    let file = created["entry"]["sessionFile"].as_str().unwrap().to_string();
    homarus_store::append_entries(
        Path::new(&file),
        &[
            json!({"type":"message","id":"m1","parentId":null,"message":{"role":"user","content":"hello there","timestamp":1}}),
            json!({"type":"custom","id":"x","parentId":"m1","data":{}}),
            json!({"type":"message","id":"m2","parentId":"m1","message":{"role":"assistant","content":[{"type":"text","text":"hi"}],"timestamp":2}}),
        ],
    )
    .unwrap();
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"{\"type\":\"message\",\"id\":\"m3\"")
        .unwrap();

    let h = c.call("chat.history", json!({"sessionKey": "agent:main:chat", "limit": 10, "maxChars": 5})).await;
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "custom entries and the torn line are not messages: {h}");
    assert_eq!(msgs[0]["content"], "hello", "trimmed to maxChars");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["__openclaw"]["id"], "m2");
    let h = c.call("chat.history", json!({"sessionKey": "agent:main:chat", "limit": 1})).await;
    assert_eq!(h["messages"][0]["__openclaw"]["id"], "m2", "the most recent");
}

#[tokio::test]
async fn params_follow_the_openclaw_schemas_and_scopes_apply() {
    let gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let bad = c.request("sessions.list", json!({"limit": "ten"})).await;
    assert!(bad["error"]["message"].as_str().unwrap().starts_with("invalid params: at /limit:"), "{bad}");
    let bad = c.request("sessions.create", json!({"key": "k", "colour": "red"})).await;
    assert!(bad["error"]["message"].as_str().unwrap().contains("colour"), "{bad}");
    let bad = c.request("chat.history", json!({})).await;
    assert!(bad["error"]["message"].as_str().unwrap().contains("sessionKey"), "{bad}");

    let mut reader = Client::open(&gw.url(), None).await;
    reader.request("connect", cli_connect(TOKEN, &["operator.read"])).await;
    assert_eq!(
        reader.request("sessions.create", json!({})).await["error"]["details"]["missingScope"],
        "operator.write"
    );
    let mut writer = Client::open(&gw.url(), None).await;
    writer.request("connect", cli_connect(TOKEN, &["operator.write"])).await;
    writer.call("sessions.create", json!({"key": "agent:main:w"})).await;
    assert_eq!(
        writer.request("sessions.reset", json!({"key": "agent:main:w"})).await["error"]["details"]["missingScope"],
        "operator.admin"
    );
}

#[tokio::test]
async fn health_and_status_count_the_stored_sessions() {
    let gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("sessions.create", json!({"key": "agent:main:a"})).await;
    c.call("sessions.create", json!({"key": "agent:main:b"})).await;
    let health = c.call("health", json!({})).await;
    assert_eq!(health["sessions"]["count"], 2);
    assert_eq!(health["sessions"]["recent"][0]["key"], "agent:main:b");
    let status = c.call("status", json!({})).await;
    assert_eq!(status["sessions"]["count"], 2);
    let (_c2, hello) = connect_cli(&gw.url()).await;
    assert_eq!(hello["snapshot"]["health"]["sessions"]["count"], 2, "the hello snapshot is schema-valid and current");
}
