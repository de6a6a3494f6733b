//! Messages that arrive while a session's turn runs: queue modes `steer`, `followup`, `collect`,
//! `interrupt`, and the cap with its drop policy. The model is a scripted server whose first
//! answer streams slowly, so the other messages arrive mid-turn.
mod common;

use std::time::{Duration, Instant};

use common::*;
use homarus_mockllm::{MockLlm, Reply};
use serde_json::{json, Value};

fn config(mock: &MockLlm, queue: &str) -> String {
    format!(
        r#"{{models: {{providers: {{local: {{baseUrl: "{}", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
            agents: {{defaults: {{model: "local/m"}}}},
            messages: {{queue: {queue}}}}}"#,
        mock.openai_base_url()
    )
}

/// A first answer that takes a while: the turn is busy when the next messages arrive.
fn slow(text: &str) -> Reply {
    Reply::Chunks(vec![text.into(), " (slow)".into()], Duration::from_millis(400))
}

async fn send(c: &mut Client, text: &str, id: &str) {
    let ack =
        c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": text, "idempotencyKey": id})).await;
    assert_eq!(ack["runId"], id);
}

/// Wait until the model received `n` requests.
async fn requests(mock: &MockLlm, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.requests().len() < n {
        assert!(Instant::now() < deadline, "only {} model requests", mock.requests().len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The terminal chat event of each run id, waiting for all of them.
async fn terminal(c: &mut Client, ids: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = std::mem::take(&mut c.events);
    loop {
        let found: Vec<Value> = ids
            .iter()
            .filter_map(|id| {
                seen.iter()
                    .find(|e| {
                        e["event"] == "chat"
                            && e["payload"]["runId"] == *id
                            && matches!(e["payload"]["state"].as_str(), Some("final" | "error" | "aborted"))
                    })
                    .map(|e| e["payload"].clone())
            })
            .collect();
        if found.len() == ids.len() {
            return found;
        }
        assert!(Instant::now() < deadline, "missing terminal events for {ids:?}: {seen:?}");
        if let Some(v) = c.recv().await {
            seen.push(v);
        }
    }
}

fn text(p: &Value) -> &str {
    p["message"]["content"][0]["text"].as_str().unwrap_or("")
}

/// The user messages of a model request.
fn user_texts(req: &Value) -> Vec<String> {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn steer_puts_the_message_into_the_running_turn() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([slow("first"), Reply::Text("answer to both".into())]);
    let gw = TestGateway::start_with(Some(&config(&mock, "{mode: \"steer\"}"))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    send(&mut c, "one", "r1").await;
    requests(&mock, 1).await;
    send(&mut c, "two", "r2").await;
    let done = terminal(&mut c, &["r1", "r2"]).await;
    assert_eq!(text(&done[0]), "answer to both");
    assert_eq!(text(&done[1]), "answer to both", "the steered message gets the turn's answer");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2, "one turn, two model calls");
    assert_eq!(user_texts(&reqs[1]), ["one", "two"]);
}

#[tokio::test]
async fn followup_runs_each_message_as_its_own_later_turn() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([slow("first"), Reply::Text("second answer".into()), Reply::Text("third answer".into())]);
    let gw = TestGateway::start_with(Some(&config(&mock, "{mode: \"followup\", debounceMs: 0}"))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    send(&mut c, "one", "r1").await;
    requests(&mock, 1).await;
    send(&mut c, "two", "r2").await;
    send(&mut c, "three", "r3").await;
    let done = terminal(&mut c, &["r1", "r2", "r3"]).await;
    assert_eq!(text(&done[0]), "first (slow)");
    assert_eq!(text(&done[1]), "second answer");
    assert_eq!(text(&done[2]), "third answer");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(user_texts(&reqs[2]), ["one", "two", "three"], "in order, each its own turn");
}

#[tokio::test]
async fn collect_merges_what_arrived_into_one_turn() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([slow("first"), Reply::Text("one answer for both".into())]);
    let gw = TestGateway::start_with(Some(&config(&mock, "{mode: \"collect\", debounceMs: 0}"))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    send(&mut c, "one", "r1").await;
    requests(&mock, 1).await;
    send(&mut c, "two", "r2").await;
    send(&mut c, "three", "r3").await;
    let done = terminal(&mut c, &["r1", "r2", "r3"]).await;
    assert_eq!(text(&done[1]), "one answer for both");
    assert_eq!(text(&done[2]), "one answer for both");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(user_texts(&reqs[1]).last().unwrap(), "two\n\nthree");
}

#[tokio::test]
async fn interrupt_aborts_the_running_turn_and_the_cap_drops_the_oldest() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([
        Reply::Chunks(vec!["never".into(), " finished".into()], Duration::from_secs(30)),
        Reply::Text("newest".into()),
    ]);
    let gw = TestGateway::start_with(Some(&config(&mock, "{mode: \"interrupt\"}"))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    send(&mut c, "one", "r1").await;
    requests(&mock, 1).await;
    send(&mut c, "two", "r2").await;
    let done = terminal(&mut c, &["r1", "r2"]).await;
    assert_eq!(done[0]["state"], "aborted");
    assert_eq!(text(&done[1]), "newest");

    // cap 1 with drop "old": the older queued message is dropped with a clear error.
    let mock = MockLlm::start().await.unwrap();
    mock.push([slow("first"), Reply::Text("last".into())]);
    let gw =
        TestGateway::start_with(Some(&config(&mock, "{mode: \"followup\", cap: 1, drop: \"old\", debounceMs: 0}")))
            .await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    send(&mut c, "one", "r1").await;
    requests(&mock, 1).await;
    send(&mut c, "two", "r2").await;
    send(&mut c, "three", "r3").await;
    let done = terminal(&mut c, &["r1", "r2", "r3"]).await;
    assert_eq!(done[1]["state"], "error");
    assert!(done[1]["errorMessage"].as_str().unwrap().contains("messages.queue.cap"), "{}", done[1]);
    assert_eq!(text(&done[2]), "last");
    assert_eq!(mock.requests().len(), 2);

    // drop "new": the newest is refused at once.
    let mock = MockLlm::start().await.unwrap();
    mock.push([slow("first")]);
    let gw = TestGateway::start_with(Some(&config(&mock, "{mode: \"followup\", cap: 1, drop: \"new\"}"))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    send(&mut c, "one", "r1").await;
    requests(&mock, 1).await;
    send(&mut c, "two", "r2").await;
    let refused = c
        .request("chat.send", json!({"sessionKey": "agent:main:main", "message": "three", "idempotencyKey": "r3"}))
        .await;
    assert_eq!(refused["error"]["code"], "UNAVAILABLE", "{refused}");
}

#[tokio::test]
async fn the_queue_command_overrides_the_config_for_one_session() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Chunks(vec!["never".into()], Duration::from_secs(30)), Reply::Text("after interrupt".into())]);
    let gw = TestGateway::start_with(Some(&config(&mock, "{mode: \"followup\"}"))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    send(&mut c, "/queue interrupt debounce:0ms", "q").await;
    let done = terminal(&mut c, &["q"]).await;
    assert!(text(&done[0]).starts_with("Queue settings saved"), "{}", done[0]);
    send(&mut c, "one", "r1").await;
    requests(&mock, 1).await;
    send(&mut c, "two", "r2").await;
    let done = terminal(&mut c, &["r1", "r2"]).await;
    assert_eq!(done[0]["state"], "aborted");
    assert_eq!(text(&done[1]), "after interrupt");
    let bad = {
        send(&mut c, "/queue sideways", "q2").await;
        terminal(&mut c, &["q2"]).await
    };
    assert_eq!(text(&bad[0]), "/queue: unknown option \"sideways\"");
}

#[tokio::test]
async fn the_quiet_window_applies_only_to_messages_that_queued_behind_a_turn() {
    let mock = MockLlm::start().await.unwrap();
    // A one-minute debounce: a turn that waited for it would blow the 20 s bound of `terminal`.
    let gw = TestGateway::start_with(Some(&config(&mock, "{mode: \"followup\", debounceMs: 60000}"))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    for i in 0..3 {
        let id = format!("seq{i}");
        send(&mut c, "next", &id).await;
        let done = terminal(&mut c, &[id.as_str()]).await;
        assert_eq!(done[0]["state"], "final");
    }
}
