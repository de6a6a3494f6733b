//! Chat and agent runs over the WebSocket against a scripted LLM server (real OpenAI/Anthropic wire
//! formats over HTTP/SSE): event flow, two-phase `agent`, `agent.wait`, abort, commands, errors.
mod common;

use std::time::{Duration, Instant};

use common::*;
use homarus_mockllm::{MockLlm, Reply};
use serde_json::{json, Value};

fn config_for(mock: &MockLlm, extra: &str) -> String {
    format!(
        r#"{{
          models: {{providers: {{local: {{baseUrl: "{}", apiKey: "sk-test", api: "openai-completions",
                     models: [{{id: "mock-model", contextWindow: 120000, maxTokens: 1024}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "local/mock-model"}}}}}},
          {extra}
        }}"#,
        mock.openai_base_url()
    )
}

/// Collect events until a `chat` event with a terminal state for `run_id`.
async fn until_chat_end(c: &mut Client, run_id: &str) -> Vec<Value> {
    let mut seen: Vec<Value> = std::mem::take(&mut c.events);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(last) = seen.iter().find(|e| {
            e["event"] == "chat"
                && e["payload"]["runId"] == run_id
                && matches!(e["payload"]["state"].as_str(), Some("final" | "error" | "aborted"))
        }) {
            let _ = last;
            return seen;
        }
        assert!(Instant::now() < deadline, "no terminal chat event: {seen:?}");
        if let Some(v) = c.recv().await {
            seen.push(v);
        }
    }
}

fn of_run<'a>(events: &'a [Value], event: &str, run_id: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == event && e["payload"]["runId"] == run_id).collect()
}

#[tokio::test]
async fn chat_send_acks_first_then_streams_agent_and_chat_events_and_keeps_history() {
    let mock = MockLlm::start().await.unwrap();
    let gw = TestGateway::start_with(Some(&config_for(&mock, ""))).await;
    let (mut c, hello) = connect_cli(&gw.url()).await;
    let methods = hello["features"]["methods"].as_array().unwrap();
    for m in ["chat.send", "agent", "agent.wait", "chat.abort"] {
        assert!(methods.iter().any(|x| x == m), "{m} advertised");
    }
    let ack = c
        .call(
            "chat.send",
            json!({"sessionKey": "agent:main:bench", "message": "turn 0", "deliver": false, "idempotencyKey": "run-1"}),
        )
        .await;
    assert_eq!(ack, json!({"runId": "run-1", "status": "started"}));
    assert!(c.events.iter().all(|e| e["payload"]["runId"] != "run-1"), "no run event before the ack");
    let events = until_chat_end(&mut c, "run-1").await;
    let agent = of_run(&events, "agent", "run-1");
    let streams: Vec<(&str, &str)> = agent
        .iter()
        .map(|e| (e["payload"]["stream"].as_str().unwrap(), e["payload"]["data"]["phase"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(streams.first(), Some(&("lifecycle", "start")), "{streams:?}");
    assert!(streams.contains(&("lifecycle", "model")));
    assert!(streams.contains(&("assistant", "")));
    assert!(streams.contains(&("usage", "")));
    assert_eq!(streams.last(), Some(&("lifecycle", "end")));
    let seqs: Vec<u64> = agent.iter().map(|e| e["payload"]["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "per-run seq rises by one: {seqs:?}");
    let chat = of_run(&events, "chat", "run-1");
    let fin = chat.last().unwrap();
    assert_eq!(fin["payload"]["state"], "final");
    assert_eq!(fin["payload"]["message"]["content"][0]["text"], "MOCK-REPLY 1");
    assert!(chat.iter().any(|e| e["payload"]["state"] == "delta" && e["payload"]["deltaText"] == "MOCK-REPLY"));
    let end = agent.last().unwrap();
    assert_eq!(end["payload"]["data"]["terminalReply"], json!({"disposition": "visible", "text": "MOCK-REPLY 1"}));

    let history = c.call("chat.history", json!({"sessionKey": "agent:main:bench"})).await;
    let msgs = history["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["content"][0]["text"], "turn 0");
    assert_eq!(msgs[1]["content"][0]["text"], "MOCK-REPLY 1");
    let session = c.call("sessions.describe", json!({"key": "agent:main:bench"})).await;
    assert_eq!(session["session"]["messageCount"], 2);
    assert_eq!(session["session"]["model"], "mock-model");
    assert!(session["session"]["lastInteractionAt"].as_i64().is_some());
    // The provider saw the system prompt built from the workspace templates.
    let req = &mock.requests()[0];
    assert!(req["messages"][0]["content"].as_str().unwrap().contains("## AGENTS.md"), "{req}");
    assert!(gw.dir.path().join("workspace/SOUL.md").exists(), "workspace created from templates");
}

#[tokio::test]
async fn agent_answers_twice_on_one_request_id_and_agent_wait_reports_the_result() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Text("hello real agent back".into())]);
    let gw = TestGateway::start_with(Some(&config_for(&mock, ""))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let id = "7:agent";
    c.send_text(json!({"type": "req", "id": id, "method": "agent",
        "params": {"message": "hello real agent", "agentId": "main", "deliver": false, "timeout": 600, "idempotencyKey": "k-1"}}).to_string()).await;
    let mut responses = Vec::new();
    while responses.len() < 2 {
        let v = c.recv().await.unwrap();
        if v["type"] == "res" && v["id"] == id {
            responses.push(v);
        }
    }
    assert_eq!(responses[0]["payload"]["status"], "accepted");
    assert_eq!(responses[0]["payload"]["sessionKey"], "agent:main:main");
    assert_eq!(responses[1]["ok"], true);
    assert_eq!(responses[1]["payload"]["status"], "ok");
    assert_eq!(responses[1]["payload"]["result"]["payloads"][0]["text"], "hello real agent back");
    let waited = c.call("agent.wait", json!({"runId": "k-1", "timeoutMs": 1000})).await;
    assert_eq!(waited["status"], "ok");
    assert_eq!(waited["text"], "hello real agent back");
    let unknown = c.request("agent.wait", json!({"runId": "nope"})).await;
    assert_eq!(unknown["error"]["message"], "unknown run: nope");
}

#[tokio::test]
async fn without_a_model_the_user_is_told_what_to_set() {
    let gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "hi", "idempotencyKey": "r"})).await;
    let events = until_chat_end(&mut c, "r").await;
    let err = of_run(&events, "chat", "r").last().unwrap()["payload"].clone();
    assert_eq!(err["state"], "error");
    assert!(err["errorMessage"].as_str().unwrap().starts_with("no model configured: set OPENAI_API_KEY"), "{err}");
    let id = "a1";
    c.send_text(
        json!({"type": "req", "id": id, "method": "agent", "params": {"message": "hi", "idempotencyKey": "r2"}})
            .to_string(),
    )
    .await;
    let mut finals = Vec::new();
    while finals.len() < 2 {
        let v = c.recv().await.unwrap();
        if v["type"] == "res" && v["id"] == id {
            finals.push(v);
        }
    }
    assert_eq!(finals[1]["ok"], false);
    assert_eq!(finals[1]["payload"]["status"], "error");
    assert_eq!(finals[1]["error"]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn abort_stops_a_streaming_run_and_commands_answer_without_the_model() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Chunks(vec!["slow".into(), " never".into()], Duration::from_secs(30))]);
    let gw = TestGateway::start_with(Some(&config_for(&mock, ""))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "go", "idempotencyKey": "slow-1"})).await;
    // Wait for the model call to be in flight, then abort.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.requests().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let aborted = c.call("chat.abort", json!({"sessionKey": "agent:main:main"})).await;
    assert_eq!(aborted["runIds"], json!(["slow-1"]));
    let events = until_chat_end(&mut c, "slow-1").await;
    assert_eq!(of_run(&events, "chat", "slow-1").last().unwrap()["payload"]["state"], "aborted");

    // /status and /new answer without calling the model.
    let before = mock.requests().len();
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "/status", "idempotencyKey": "st"})).await;
    let events = until_chat_end(&mut c, "st").await;
    let text = of_run(&events, "chat", "st").last().unwrap()["payload"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("session agent:main:main") && text.contains("model: local/mock-model"), "{text}");
    let old = c.call("sessions.describe", json!({"key": "agent:main:main"})).await["session"]["sessionId"].clone();
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "/new", "idempotencyKey": "nw"})).await;
    let events = until_chat_end(&mut c, "nw").await;
    let text = of_run(&events, "chat", "nw").last().unwrap()["payload"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let new = c.call("sessions.describe", json!({"key": "agent:main:main"})).await["session"]["sessionId"].clone();
    assert_ne!(old, new);
    assert_eq!(text, format!("✅ New session started · {}", new.as_str().unwrap()));
    assert_eq!(mock.requests().len(), before, "commands do not call the model");
    let commands = c.call("commands.list", json!({"agentId": "main", "scope": "text", "includeArgs": false})).await;
    assert_payload_schema("CommandsListResultSchema", &commands);
    let agents = c.call("agents.list", json!({})).await;
    assert_payload_schema("AgentsListResultSchema", &agents);
    assert_eq!(agents["agents"][0]["model"]["primary"], "local/mock-model");
}

#[tokio::test]
async fn the_agent_searches_memory_and_talks_to_another_session_with_its_tools() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([
        Reply::ToolCall { name: "memory_search".into(), args: json!({"query": "cat name"}) },
        Reply::ToolCall {
            name: "sessions_send".into(),
            args: json!({"sessionKey": "agent:main:other", "message": "ping"}),
        },
        Reply::Text("pong".into()),
        Reply::ToolCall { name: "sessions_history".into(), args: json!({"sessionKey": "agent:main:other"}) },
        Reply::Text("done".into()),
    ]);
    let gw = TestGateway::start_with(Some(&config_for(&mock, ""))).await;
    let ws = gw.dir.path().join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("MEMORY.md"), "# Notes\n\nThe cat's name is Biscuit.\n").unwrap();
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "go", "idempotencyKey": "t1"})).await;
    let events = until_chat_end(&mut c, "t1").await;
    let fin = of_run(&events, "chat", "t1").last().unwrap()["payload"].clone();
    assert_eq!(fin["message"]["content"][0]["text"], "done", "{fin}");
    let tools: Vec<(String, String)> = of_run(&events, "agent", "t1")
        .iter()
        .filter(|e| e["payload"]["stream"] == "tool" && e["payload"]["data"]["phase"] == "result")
        .map(|e| {
            (
                e["payload"]["data"]["name"].as_str().unwrap().to_string(),
                e["payload"]["data"]["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(tools[0].0, "memory_search");
    assert!(tools[0].1.contains("MEMORY.md:3-3") && tools[0].1.contains("Biscuit"), "{}", tools[0].1);
    assert_eq!(tools[1], ("sessions_send".to_string(), "agent:main:other replied: pong".to_string()));
    assert!(
        tools[2].1.contains("user: [message from session agent:main:main]\nping")
            && tools[2].1.contains("assistant: pong"),
        "{}",
        tools[2].1
    );
    let other = c.call("sessions.describe", json!({"key": "agent:main:other"})).await;
    assert_eq!(other["session"]["messageCount"], 2);
    // The model was offered the gateway's session tools with the built-in ones.
    let offered: Vec<String> = mock.requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    for t in [
        "read",
        "write",
        "edit",
        "exec",
        "web_fetch",
        "memory_search",
        "memory_get",
        "sessions_list",
        "sessions_history",
        "sessions_send",
        "session_status",
    ] {
        assert!(offered.contains(&t.to_string()), "{t} offered: {offered:?}");
    }
}

#[tokio::test]
async fn plugin_hooks_shape_the_prompt_block_tools_and_turns_and_observe_the_end() {
    use homarus_hooks::{HandlerFuture, HookRunner, Registration};
    use std::sync::{Arc, Mutex};
    let runner = Arc::new(HookRunner::new());
    let ended: Arc<Mutex<Vec<Value>>> = Arc::default();
    let reg = |hook: &str, f: Arc<dyn Fn(Value) -> Option<Value> + Send + Sync>| Registration {
        plugin_id: "guard".into(),
        hook: hook.into(),
        priority: 0,
        timeout: None,
        handler: Arc::new(move |_: &str, event: Value, _ctx: Value| -> HandlerFuture {
            let f = f.clone();
            Box::pin(async move { Ok(f(event)) })
        }),
    };
    runner
        .register(reg("before_prompt_build", Arc::new(|_| Some(json!({"appendSystemContext": "PLUGIN-CONTEXT"})))))
        .unwrap();
    runner
        .register(reg(
            "before_tool_call",
            Arc::new(|e| (e["toolName"] == "exec").then(|| json!({"block": true, "blockReason": "no shell"}))),
        ))
        .unwrap();
    runner
        .register(reg(
            "before_agent_run",
            Arc::new(|e| {
                e["prompt"]
                    .as_str()
                    .unwrap()
                    .contains("forbidden")
                    .then(|| json!({"outcome": "block", "message": "Not today."}))
            }),
        ))
        .unwrap();
    let sink = ended.clone();
    runner
        .register(reg(
            "agent_end",
            Arc::new(move |e| {
                sink.lock().unwrap().push(e);
                None
            }),
        ))
        .unwrap();

    let mock = MockLlm::start().await.unwrap();
    mock.push([
        Reply::ToolCall { name: "exec".into(), args: json!({"command": "rm -rf /"}) },
        Reply::Text("ok, I won't".into()),
    ]);
    let gw = TestGateway::start_tuned(Some(&config_for(&mock, "")), |o| o.hooks = runner.clone()).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "clean up", "idempotencyKey": "h1"})).await;
    let events = until_chat_end(&mut c, "h1").await;
    assert_eq!(
        of_run(&events, "chat", "h1").last().unwrap()["payload"]["message"]["content"][0]["text"],
        "ok, I won't"
    );
    let tool = of_run(&events, "agent", "h1").into_iter().find(|e| e["payload"]["stream"] == "tool").cloned();
    assert!(tool.is_none(), "a blocked tool never starts");
    let second = mock.requests()[1].to_string();
    assert!(second.contains("blocked by plugin guard: no shell"), "{second}");
    assert!(mock.requests()[0]["messages"][0]["content"].as_str().unwrap().ends_with("PLUGIN-CONTEXT"));

    c.call(
        "chat.send",
        json!({"sessionKey": "agent:main:main", "message": "something forbidden", "idempotencyKey": "h2"}),
    )
    .await;
    let events = until_chat_end(&mut c, "h2").await;
    assert_eq!(of_run(&events, "chat", "h2").last().unwrap()["payload"]["message"]["content"][0]["text"], "Not today.");
    assert_eq!(mock.requests().len(), 2, "the blocked turn never reached the model");
    let deadline = Instant::now() + Duration::from_secs(5);
    while ended.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "agent_end never fired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ended.lock().unwrap()[0]["success"], true);
}

/// Send `agent` and return its final response frame.
async fn agent_final(c: &mut Client, params: Value) -> Value {
    let id = format!("agent-{}", params["idempotencyKey"].as_str().unwrap());
    c.send_text(json!({"type": "req", "id": id, "method": "agent", "params": params}).to_string()).await;
    let mut seen = 0;
    loop {
        let v = c.recv().await.unwrap();
        if v["type"] == "res" && v["id"] == id.as_str() {
            seen += 1;
            if seen == 2 {
                return v;
            }
        } else {
            c.events.push(v);
        }
    }
}

#[tokio::test]
async fn compaction_notifier_tells_the_user_before_and_after_an_automatic_compaction() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([
        Reply::Text("the answer".into()),
        Reply::Text("NO_REPLY".into()),
        Reply::Text("a short summary".into()),
    ]);
    let config = format!(
        r#"{{models: {{providers: {{local: {{baseUrl: "{}", api: "openai-completions", models: [{{id: "m", contextWindow: 400}}]}}}}}},
            agents: {{defaults: {{model: "local/m", compaction: {{reserveTokens: 100, keepRecentTokens: 1}}}}}},
            hooks: {{internal: {{entries: {{"compaction-notifier": {{enabled: true}}}}}}}}}}"#,
        mock.openai_base_url()
    );
    let gw = TestGateway::start_with(Some(&config)).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let fin = agent_final(&mut c, json!({"message": "hello there", "idempotencyKey": "cmp"})).await;
    let payloads: Vec<String> = fin["payload"]["result"]["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(payloads.len(), 3, "{payloads:?}");
    // Two messages of the turn, plus the memory flush prompt and its silent reply.
    assert_eq!(payloads[0], "🧹 Compacting context (4 messages) so I can continue without losing history…");
    assert!(
        payloads[1].starts_with("✅ Context compacted") && payloads[1].ends_with("Continuing from where I left off."),
        "{}",
        payloads[1]
    );
    assert_eq!(payloads[2], "the answer");
    let compaction: Vec<&Value> =
        c.events.iter().filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "compaction").collect();
    assert_eq!(compaction.len(), 2);
    assert_eq!(compaction[0]["payload"]["data"]["reason"], "threshold");
    assert_eq!(compaction[1]["payload"]["data"]["completed"], true);
    let entries = c.call("sessions.describe", json!({"key": "agent:main:main"})).await;
    assert_eq!(entries["session"]["compactionCount"], 1);
}

#[tokio::test]
async fn boot_md_runs_each_workspace_once_at_start_in_a_throwaway_session() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([
        Reply::ToolCall { name: "write".into(), args: json!({"path": "booted.txt", "content": "yes"}) },
        Reply::Text("done".into()),
    ]);
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("BOOT.md"), "Write yes into booted.txt.").unwrap();
    let extra = r#"hooks: {internal: {entries: {"boot-md": {enabled: true}}}}"#;
    let config = config_for(&mock, extra).replace(
        r#"agents: {defaults: {model: {primary: "local/mock-model"}}}"#,
        &format!(
            r#"agents: {{defaults: {{model: {{primary: "local/mock-model"}}, workspace: "{}"}}}}"#,
            ws.path().display()
        ),
    );
    let gw = TestGateway::start_with(Some(&config)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ws.path().join("booted.txt").exists() {
        assert!(Instant::now() < deadline, "BOOT.md never ran; requests: {:?}", mock.requests());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut c, _) = connect_cli(&gw.url()).await;
    // The boot session is removed once the run is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = c.call("sessions.list", json!({})).await;
        if list["count"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "boot session left behind: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.requests().len(), 2);
    assert_eq!(
        mock.requests()[0]["messages"].as_array().unwrap().last().unwrap()["content"],
        "Write yes into booted.txt."
    );
}

#[tokio::test]
async fn sessions_list_filters_sorts_and_previews() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Text("sure, here is the plan".into())]);
    let gw = TestGateway::start_with(Some(&config_for(&mock, ""))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    for k in ["agent:main:a", "agent:main:subagent:x", "agent:main:cron:daily", "agent:main:pinned"] {
        c.call("sessions.create", json!({"key": k})).await;
    }
    c.call("sessions.patch", json!({"key": "agent:main:pinned", "pinned": true})).await;
    c.call(
        "chat.send",
        json!({"sessionKey": "agent:main:a", "message": "Plan   my week please", "idempotencyKey": "p"}),
    )
    .await;
    until_chat_end(&mut c, "p").await;
    let keys = |v: &Value| {
        v["sessions"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let all = c.call("sessions.list", json!({"excludeSubagents": true, "excludeCron": true})).await;
    let mut k = keys(&all);
    k.sort();
    assert_eq!(k, ["agent:main:a", "agent:main:pinned"]);
    assert_eq!(keys(&c.call("sessions.list", json!({"pinned": true})).await), ["agent:main:pinned"]);
    assert_eq!(keys(&c.call("sessions.list", json!({"requireLastInteraction": true})).await), ["agent:main:a"]);
    assert_eq!(
        keys(&c.call("sessions.list", json!({"sortBy": "lastInteractionAt", "limit": 1})).await),
        ["agent:main:a"]
    );
    assert_eq!(keys(&c.call("sessions.list", json!({"search": "CRON"})).await), ["agent:main:cron:daily"]);
    let with = c
        .call(
            "sessions.list",
            json!({"includeDerivedTitles": true, "includeLastMessage": true, "requireLastInteraction": true}),
        )
        .await;
    assert_eq!(with["sessions"][0]["derivedTitle"], "Plan my week please");
    assert_eq!(with["sessions"][0]["lastMessagePreview"], "sure, here is the plan");
}
