//! End to end through the synthetic `qa-channel`: a QA message bus (real HTTP, long polling) where
//! the test speaks as any user in any conversation, the gateway's qa-channel account polling it, the
//! scripted LLM server answering. Covers DM pairing (code, cap, approval over RPC), allowlists,
//! group mention gating, thread replies, owner-only commands, and a subagent completion that comes
//! back into the group as the agent's own reply.
mod common;

use std::time::Duration;

use common::*;
use homarus_mockllm::{MockLlm, Reply};
use homarus_qabus::QaBus;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn config(mock: &MockLlm, bus: &QaBus, channel_extra: &str, extra: &str) -> String {
    format!(
        r#"{{
          models: {{providers: {{local: {{baseUrl: "{}", apiKey: "sk-test", api: "openai-completions",
                     models: [{{id: "mock-model", contextWindow: 120000, maxTokens: 1024}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "local/mock-model"}}}}}},
          messages: {{groupChat: {{mentionPatterns: ["\\b@?homarus\\b"]}}}},
          channels: {{"qa-channel": {{enabled: true, baseUrl: "{}", botUserId: "homarus", botDisplayName: "Homarus QA",
                                      pollTimeoutMs: 250 {channel_extra}}}}},
          {extra}
        }}"#,
        mock.openai_base_url(),
        bus.url()
    )
}

fn code_in(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("Pairing code:")).expect("a pairing code line");
    line.trim_start_matches("Pairing code:").trim().to_string()
}

fn user_texts(mock: &MockLlm) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| r["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].to_string()))
        .collect()
}

async fn outbound_to(bus: &QaBus, to: &str) -> Vec<Value> {
    bus.outbound().await.into_iter().filter(|m| m["to"] == to).collect()
}

#[tokio::test]
async fn an_unknown_sender_pairs_and_is_then_answered() {
    let mock = MockLlm::start().await.unwrap();
    let bus = QaBus::start().await.unwrap();
    let gw = TestGateway::start_with(Some(&config(&mock, &bus, "", ""))).await;
    let (mut c, hello) = connect_cli(&gw.url()).await;
    let methods = hello["features"]["methods"].as_array().unwrap();
    assert!(methods.iter().any(|m| m == "channels.pairing.approve"));
    let st =
        c.until("channels.status", json!({}), |v| v["channelAccounts"]["qa-channel"][0]["connected"] == true).await;
    let acc = &st["channelAccounts"]["qa-channel"][0];
    assert_eq!((acc["accountId"].as_str(), acc["running"].as_bool()), (Some("default"), Some(true)));
    assert_eq!((acc["restartPending"].as_bool(), acc["dmPolicy"].as_str()), (Some(false), Some("pairing")));

    // An unknown sender gets a code, and the agent never sees the message.
    bus.inject("direct", "alice", "alice", "hello, who are you?", None).await;
    let pairing = bus.wait_outbound("dm:alice", "Pairing code:", WAIT).await.expect("a pairing message");
    let code = code_in(pairing["text"].as_str().unwrap());
    assert_eq!(code.len(), 8);
    assert!(
        code.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()) && !code.contains(['0', 'O', '1', 'I'])
    );
    // Asking again does not send a second code; three pending per account at most.
    bus.inject("direct", "alice", "alice", "hello?", None).await;
    for who in ["bob", "carol"] {
        bus.inject("direct", who, who, "hi", None).await;
        bus.wait_outbound(&format!("dm:{who}"), "Pairing code:", WAIT).await.expect("a code");
    }
    bus.inject("direct", "dave", "dave", "hi", None).await;
    let list = c.call("channels.pairing.list", json!({"channel": "qa-channel"})).await;
    let reqs = list["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 3, "{list}");
    assert!(reqs.iter().any(|r| r["id"] == "alice" && r["code"] == code.as_str()));

    let bad = c.request("channels.pairing.approve", json!({"channel": "qa-channel", "code": "ZZZZZZZZ"})).await;
    assert_eq!(bad["ok"], false, "an unknown code is refused: {bad}");
    let ok = c.call("channels.pairing.approve", json!({"channel": "qa-channel", "code": code.to_lowercase()})).await;
    assert_eq!((ok["id"].as_str(), ok["owner"].as_bool()), (Some("alice"), Some(true)));

    mock.push([Reply::Text("Hi Alice, I am your agent.".into())]);
    bus.inject("direct", "alice", "alice", "hello again", None).await;
    let reply = bus.wait_outbound("dm:alice", "Hi Alice", WAIT).await.expect("the agent's reply");
    assert_eq!(reply["senderId"], "homarus");
    assert_eq!(outbound_to(&bus, "dm:alice").await.len(), 2, "one pairing message, one reply");
    assert!(outbound_to(&bus, "dm:dave").await.is_empty(), "the fourth pending sender is ignored");
    let texts = user_texts(&mock);
    assert_eq!(texts.len(), 1, "only the approved message reached the model: {texts:?}");
    assert!(texts[0].contains("hello again"));
    // The DM went to the main session, which now remembers its channel route.
    let s = c.call("sessions.describe", json!({"key": "agent:main:main"})).await;
    let entry = if s["session"].is_object() { &s["session"] } else { &s };
    assert_eq!(entry["deliveryContext"]["channel"], "qa-channel", "{s}");
    assert_eq!(entry["deliveryContext"]["to"], "alice");
}

#[tokio::test]
async fn groups_need_a_mention_and_replies_stay_in_their_thread() {
    let mock = MockLlm::start().await.unwrap();
    let bus = QaBus::start().await.unwrap();
    let extra = r#", dmPolicy: "allowlist", allowFrom: ["bob"], groupPolicy: "allowlist",
                   groups: {"*": {requireMention: true, allowFrom: ["*"]}}"#;
    let gw = TestGateway::start_with(Some(&config(&mock, &bus, extra, ""))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.until("channels.status", json!({}), |v| v["channelAccounts"]["qa-channel"][0]["connected"] == true).await;

    bus.inject("channel", "room1", "carol", "just chatting among ourselves", None).await;
    mock.push_matching("2+2", Reply::Text("It is **4**.".into()));
    bus.inject("channel", "room1", "carol", "hey @homarus what is 2+2?", Some("t-1")).await;
    let reply = bus.wait_outbound("thread:room1/t-1", "It is 4.", WAIT).await.expect("a threaded reply");
    assert_eq!(reply["threadId"], "t-1");
    assert!(outbound_to(&bus, "channel:room1").await.is_empty(), "nothing in the room's root");
    let texts = user_texts(&mock);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("carol: hey @homarus what is 2+2?"), "the agent sees who spoke: {texts:?}");

    // DM allowlist: mallory is dropped without a pairing code; bob is answered.
    bus.inject("direct", "mallory", "mallory", "let me in", None).await;
    mock.push_matching("status report", Reply::Text("All good, Bob.".into()));
    bus.inject("direct", "bob", "bob", "status report please", None).await;
    bus.wait_outbound("dm:bob", "All good", WAIT).await.expect("bob is answered");
    assert!(outbound_to(&bus, "dm:mallory").await.is_empty());
    assert!(!user_texts(&mock).iter().any(|t| t.contains("chatting") || t.contains("let me in")));

    // Owner-only commands: bob is a concrete allowFrom entry, so an owner; carol in the group is not.
    bus.inject("channel", "room1", "carol", "/reset", None).await;
    let refused = bus.wait_outbound("channel:room1", "Only the owner can use /reset", WAIT).await.expect("refused");
    assert!(refused["text"].as_str().unwrap().contains("commands.ownerAllowFrom"));
    bus.inject("direct", "bob", "bob", "/new", None).await;
    bus.wait_outbound("dm:bob", "New session started", WAIT).await.expect("an owner resets");

    let sessions = c.call("sessions.list", json!({})).await;
    let keys: Vec<&str> = sessions["sessions"].as_array().unwrap().iter().filter_map(|s| s["key"].as_str()).collect();
    assert!(keys.contains(&"agent:main:qa-channel:channel:room1:thread:t-1"), "{keys:?}");
}

#[tokio::test]
async fn a_subagent_completion_comes_back_as_the_agents_reply_in_the_group() {
    let mock = MockLlm::start().await.unwrap();
    let bus = QaBus::start().await.unwrap();
    mock.push([
        Reply::ToolCall {
            name: "sessions_spawn".into(),
            args: json!({"task": "CHILD: tide tables for Brest", "label": "tides"}),
        },
        Reply::Text("On it, I asked a helper.".into()),
    ]);
    mock.push_matching("CHILD: tide tables", Reply::Text("High tide at 14:02.".into()));
    mock.push_matching("Subagent \\\"tides\\\" finished", Reply::Text("The helper says: high tide at 14:02.".into()));
    let extra = r#", groupPolicy: "open", groups: {"*": {requireMention: true}}"#;
    let gw = TestGateway::start_with(Some(&config(&mock, &bus, extra, ""))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.until("channels.status", json!({}), |v| v["channelAccounts"]["qa-channel"][0]["connected"] == true).await;
    bus.inject("group", "crew", "dan", "homarus please research the tides", None).await;
    bus.wait_outbound("channel:crew", "On it", WAIT).await.expect("the first answer");
    let done =
        bus.wait_outbound("channel:crew", "high tide at 14:02", WAIT).await.expect("the completion in the group");
    assert_eq!(done["senderId"], "homarus", "the agent itself speaks in the group");
    let tasks = c.until("tasks.list", json!({}), |v| v["tasks"][0]["deliveryStatus"] == "session_queued").await;
    assert_eq!(tasks["tasks"][0]["sessionKey"], "agent:main:qa-channel:group:crew");
}

#[tokio::test]
async fn message_hooks_see_rewrite_and_cancel_channel_messages() {
    use homarus_hooks::{HandlerFuture, HookRunner, Registration};
    use std::sync::{Arc, Mutex};
    let runner = Arc::new(HookRunner::new());
    let seen: Arc<Mutex<Vec<(String, Value, Value)>>> = Arc::default();
    let reg = |hook: &str, f: Arc<dyn Fn(Value, Value) -> Option<Value> + Send + Sync>| Registration {
        plugin_id: "filter".into(),
        hook: hook.into(),
        priority: 0,
        timeout: None,
        handler: Arc::new(move |_: &str, event: Value, ctx: Value| -> HandlerFuture {
            let f = f.clone();
            Box::pin(async move { Ok(f(event, ctx)) })
        }),
    };
    for hook in ["message_received", "message_sent"] {
        let sink = seen.clone();
        let name = hook.to_string();
        runner
            .register(reg(
                hook,
                Arc::new(move |e, c| {
                    sink.lock().unwrap().push((name.clone(), e, c));
                    None
                }),
            ))
            .unwrap();
    }
    runner
        .register(reg(
            "message_sending",
            Arc::new(|e, _| {
                let text = e["content"].as_str().unwrap_or("");
                if text.contains("SECRET") {
                    Some(json!({"cancel": true}))
                } else {
                    Some(json!({"content": text.replace("darn", "d**n")}))
                }
            }),
        ))
        .unwrap();
    let mock = MockLlm::start().await.unwrap();
    let bus = QaBus::start().await.unwrap();
    mock.push_matching("first", Reply::Text("The SECRET is 42.".into()));
    mock.push_matching("second", Reply::Text("Well darn.".into()));
    let cfg = config(&mock, &bus, r#", dmPolicy: "open", allowFrom: ["*"]"#, "");
    let gw = TestGateway::start_tuned(Some(&cfg), |o| o.hooks = runner.clone()).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.until("channels.status", json!({}), |v| v["channelAccounts"]["qa-channel"][0]["connected"] == true).await;
    bus.inject("direct", "ann", "ann", "first question", None).await;
    // One turn at a time: the second message must not be steered into the first turn.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(std::time::Instant::now() < deadline, "the first turn never ended");
        if let Some(e) = c.recv().await {
            if e["event"] == "chat" && e["payload"]["state"] == "final" {
                break;
            }
        }
    }
    bus.inject("direct", "ann", "ann", "second question", None).await;
    let out = bus.wait_outbound("dm:ann", "Well", WAIT).await.expect("the rewritten reply");
    assert_eq!(out["text"], "Well d**n.");
    assert_eq!(outbound_to(&bus, "dm:ann").await.len(), 1, "the cancelled message was never sent");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = seen.lock().unwrap().clone();
        let received: Vec<&(String, Value, Value)> = got.iter().filter(|(h, ..)| h == "message_received").collect();
        let sent: Vec<&(String, Value, Value)> = got.iter().filter(|(h, ..)| h == "message_sent").collect();
        if received.len() == 2 && !sent.is_empty() {
            assert_eq!(received[0].1["from"], "ann");
            assert_eq!(received[0].2["channelId"], "qa-channel");
            assert_eq!(
                (sent[0].1["content"].as_str(), sent[0].1["success"].as_bool()),
                (Some("Well d**n."), Some(true))
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "hooks not called: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
