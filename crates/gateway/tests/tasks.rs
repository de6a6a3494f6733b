//! Background work: the task ledger over RPC, subagents whose result comes back to the requester
//! through its session, and tasks lost with the previous process.
mod common;

use std::time::{Duration, Instant};

use common::*;
use homarus_mockllm::{MockLlm, Reply};
use serde_json::{json, Value};

fn config(mock: &MockLlm) -> String {
    format!(
        r#"{{models: {{providers: {{local: {{baseUrl: "{}", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
            agents: {{defaults: {{model: "local/m"}}}}}}"#,
        mock.openai_base_url()
    )
}

/// Wait for a `chat` final whose text satisfies `want`; returns its payload.
async fn chat_final(c: &mut Client, want: &dyn Fn(&str) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pending = std::mem::take(&mut c.events);
    loop {
        for e in pending.drain(..) {
            let p = &e["payload"];
            if e["event"] == "chat"
                && p["state"] == "final"
                && want(p["message"]["content"][0]["text"].as_str().unwrap_or(""))
            {
                return p.clone();
            }
        }
        assert!(Instant::now() < deadline, "no matching chat final");
        if let Some(v) = c.recv().await {
            pending.push(v);
        }
    }
}

#[tokio::test]
async fn agent_calls_are_recorded_as_tasks_listed_and_fetched() {
    let mock = MockLlm::start().await.unwrap();
    let gw = TestGateway::start_with(Some(&config(&mock))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let id = "a1";
    c.send_text(
        json!({"type": "req", "id": id, "method": "agent", "params": {"message": "hello", "idempotencyKey": "run-a"}})
            .to_string(),
    )
    .await;
    let mut n = 0;
    while n < 2 {
        let v = c.recv().await.unwrap();
        if v["type"] == "res" && v["id"] == id {
            n += 1;
        } else {
            c.events.push(v);
        }
    }
    let list = c.call("tasks.list", json!({})).await;
    assert_payload_schema("TasksListResultSchema", &list);
    let t = &list["tasks"][0];
    assert_eq!(
        (t["kind"].as_str(), t["runtime"].as_str(), t["status"].as_str()),
        (Some("agent"), Some("cli"), Some("completed")),
        "{list}"
    );
    assert_eq!(t["runId"], "run-a");
    assert_eq!(t["result"], "MOCK-REPLY 1");
    let events: Vec<&Value> = c.events.iter().filter(|e| e["event"] == "task").collect();
    assert!(events.iter().any(|e| e["payload"]["task"]["status"] == "running"));
    assert!(events.iter().any(|e| e["payload"]["task"]["status"] == "completed"));
    let got = c.call("tasks.get", json!({"taskId": t["id"]})).await;
    assert_payload_schema("TasksGetResultSchema", &got);
    assert_eq!(c.call("tasks.list", json!({"status": "running"})).await["tasks"], json!([]));
    let cancel = c.call("tasks.cancel", json!({"taskId": t["id"]})).await;
    assert_payload_schema("TasksCancelResultSchema", &cancel);
    assert_eq!(
        (cancel["found"].as_bool(), cancel["cancelled"].as_bool()),
        (Some(true), Some(false)),
        "ended tasks stay ended"
    );
    let missing = c.request("tasks.get", json!({"taskId": "nope"})).await;
    assert_eq!(missing["error"]["message"], "unknown task: nope");
}

#[tokio::test]
async fn a_subagent_result_comes_back_through_the_requester_session() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([
        Reply::ToolCall {
            name: "sessions_spawn".into(),
            args: json!({"task": "CHILD-TASK: compute the answer", "label": "calc"}),
        },
        Reply::Text("I have asked a subagent.".into()),
    ]);
    mock.push_matching("CHILD-TASK", Reply::Text("42 is the answer".into()));
    mock.push_matching("Subagent \\\"calc\\\" finished (ok)", Reply::Text("The subagent found 42.".into()));
    let gw = TestGateway::start_with(Some(&config(&mock))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call(
        "chat.send",
        json!({"sessionKey": "agent:main:telegram:group:77", "message": "work this out", "idempotencyKey": "p1"}),
    )
    .await;
    let fin = chat_final(&mut c, &|t| t == "The subagent found 42.").await;
    assert_eq!(fin["sessionKey"], "agent:main:telegram:group:77", "the parent session wrote the visible reply");
    assert!(fin["runId"].as_str().unwrap().starts_with("wake-"));
    let wake_req = mock.requests().into_iter().find(|r| r.to_string().contains("finished (ok)")).unwrap();
    let last = wake_req["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
    assert!(last.contains("42 is the answer") && last.contains("[runtime"), "{last}");
    let tasks = c.until("tasks.list", json!({}), |v| v["tasks"][0]["deliveryStatus"] == "session_queued").await;
    let t = &tasks["tasks"][0];
    assert_eq!((t["kind"].as_str(), t["status"].as_str()), (Some("subagent"), Some("completed")));
    assert_eq!(t["sessionKey"], "agent:main:telegram:group:77");
    let child = t["childSessionKey"].as_str().unwrap().to_string();
    assert!(child.starts_with("agent:main:subagent:"));
    // A one-shot child session is removed after its announce.
    c.until("sessions.list", json!({}), |v| {
        v["sessions"].as_array().unwrap().iter().all(|s| s["key"] != child.as_str())
    })
    .await;
}

#[tokio::test]
async fn subagents_are_bounded_and_stopped_with_their_requester() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([
        Reply::ToolCall { name: "sessions_spawn".into(), args: json!({"task": "SLOW-CHILD", "label": "slow one"}) },
        Reply::Text("started".into()),
    ]);
    mock.push_matching("SLOW-CHILD", Reply::Chunks(vec!["never".into()], Duration::from_secs(60)));
    let gw = TestGateway::start_with(Some(&config(&mock))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "go", "idempotencyKey": "s1"})).await;
    c.until("tasks.list", json!({"status": "running"}), |v| {
        v["tasks"].as_array().unwrap().iter().any(|t| t["kind"] == "subagent")
    })
    .await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "/stop", "idempotencyKey": "s2"})).await;
    let fin = chat_final(&mut c, &|t| t.starts_with("⏹")).await;
    assert_eq!(fin["message"]["content"][0]["text"], "⏹ Stopped (and 1 subagent(s)).");
    let tasks = c.call("tasks.list", json!({})).await;
    let sub = tasks["tasks"].as_array().unwrap().iter().find(|t| t["kind"] == "subagent").unwrap().clone();
    assert_eq!(sub["status"], "cancelled");
}

#[tokio::test]
async fn tasks_lost_with_the_previous_process_are_marked_and_reported() {
    let mock = MockLlm::start().await.unwrap();
    mock.push_matching("was lost", Reply::Text("Sorry: the research task was lost in a restart.".into()));
    let gw = TestGateway::start_with(Some(&config(&mock))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("sessions.create", json!({"key": "agent:main:main"})).await;
    let mut gw = gw;
    gw.close("gateway stopping", None).await;
    // The previous process died with a subagent task running.
    let opts = homarus_gateway::GatewayOptions::new(gw.dir.path().to_path_buf(), gw.config_path());
    let store = homarus_store::Store::open(&opts.database_path()).unwrap();
    let ledger = homarus_tasks::Ledger::new(&store);
    let t = ledger
        .create(
            homarus_tasks::NewTask {
                run_id: "gone".into(),
                runtime: "subagent".into(),
                kind: "subagent".into(),
                label: "research".into(),
                agent_id: "main".into(),
                requester_session_key: Some("agent:main:main".into()),
                notify_policy: "done_only".into(),
                running: true,
                ..Default::default()
            },
            1,
        )
        .unwrap();
    drop(store);
    let mut opts = opts;
    opts.port = Some(0);
    opts.token = Some(TOKEN.into());
    let running =
        homarus_gateway::Gateway::start(opts, homarus_config::load_file(&gw.config_path()).unwrap()).await.unwrap();
    gw.addr = running.addr;
    gw.running = Some(running);
    let (mut c, _) = connect_cli(&gw.url()).await;
    let got = c.call("tasks.get", json!({"taskId": t.task_id})).await;
    assert_eq!(got["task"]["status"], "failed");
    assert!(got["task"]["error"].as_str().unwrap().starts_with("lost"), "{got}");
    let history = c
        .until("chat.history", json!({"sessionKey": "agent:main:main"}), |v| {
            v["messages"].as_array().unwrap().len() == 2
        })
        .await;
    assert_eq!(history["messages"][1]["content"][0]["text"], "Sorry: the research task was lost in a restart.");
    assert!(history["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("\"research\" (subagent) was lost"));
}

#[tokio::test]
async fn the_sweeper_marks_a_task_whose_run_vanished_as_lost_and_tells_the_requester() {
    let mock = MockLlm::start().await.unwrap();
    mock.push_matching("stopped without a result", Reply::Text("That job vanished, sorry.".into()));
    let gw = TestGateway::start_tuned(Some(&config(&mock)), |o| {
        o.task_sweep = (Duration::from_millis(50), Duration::from_millis(100));
    })
    .await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("sessions.create", json!({"key": "agent:main:main"})).await;
    // A task whose run exists nowhere (as if its worker died without a word).
    let opts = homarus_gateway::GatewayOptions::new(gw.dir.path().to_path_buf(), gw.config_path());
    let store = homarus_store::Store::open(&opts.database_path()).unwrap();
    let t = homarus_tasks::Ledger::new(&store)
        .create(
            homarus_tasks::NewTask {
                run_id: "ghost".into(),
                runtime: "subagent".into(),
                kind: "subagent".into(),
                label: "ghost job".into(),
                agent_id: "main".into(),
                requester_session_key: Some("agent:main:main".into()),
                notify_policy: "done_only".into(),
                running: true,
                ..Default::default()
            },
            1,
        )
        .unwrap();
    let got = c.until("tasks.get", json!({"taskId": t.task_id}), |v| v["task"]["status"] == "failed").await;
    assert!(got["task"]["error"].as_str().unwrap().starts_with("lost"));
    c.until("chat.history", json!({"sessionKey": "agent:main:main"}), |v| {
        v["messages"].as_array().unwrap().iter().any(|m| m["content"][0]["text"] == "That job vanished, sorry.")
    })
    .await;
    // A task whose run is alive is never swept: every running `agent` call keeps its task.
    let running = c.call("tasks.list", json!({"status": "running"})).await;
    assert_eq!(running["tasks"], json!([]));
}

#[tokio::test]
async fn fan_out_and_depth_limits_are_enforced_and_announce_skip_stays_silent() {
    let mock = MockLlm::start().await.unwrap();
    let cfg = config(&mock).replace(
        r#"agents: {defaults: {model: "local/m"}}"#,
        r#"agents: {defaults: {model: "local/m", subagents: {maxChildrenPerAgent: 1}}}"#,
    );
    mock.push([
        Reply::ToolCall { name: "sessions_spawn".into(), args: json!({"task": "NESTING-CHILD", "label": "first"}) },
        Reply::ToolCall { name: "sessions_spawn".into(), args: json!({"task": "second one", "label": "second"}) },
        Reply::Text("parent done".into()),
    ]);
    // The child tries to spawn its own subagent, then stays silent.
    mock.push_matching(
        "NESTING-CHILD",
        Reply::ToolCall { name: "sessions_spawn".into(), args: json!({"task": "grandchild", "label": "gc"}) },
    );
    mock.push_matching("may nest 1 level", Reply::Chunks(vec!["ANNOUNCE_SKIP".into()], Duration::from_millis(300)));
    let gw = TestGateway::start_with(Some(&cfg)).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "go", "idempotencyKey": "f1"})).await;
    let t = c
        .until("tasks.list", json!({}), |v| {
            v["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["kind"] == "subagent" && t["status"] == "completed" && t["deliveryStatus"] != "pending")
        })
        .await;
    let subs: Vec<&Value> = t["tasks"].as_array().unwrap().iter().filter(|t| t["kind"] == "subagent").collect();
    assert_eq!(subs.len(), 1, "the second spawn was refused: {t}");
    assert_eq!(subs[0]["deliveryStatus"], "not_applicable", "ANNOUNCE_SKIP is not announced");
    let history = c.call("chat.history", json!({"sessionKey": "agent:main:main"})).await;
    let results = tool_results(&history);
    assert!(results[1].contains("already has 1 subagents running"), "{results:?}");
    let grandchild_refusal = mock.requests().iter().any(|r| r.to_string().contains("may nest 1 level(s) deep"));
    assert!(grandchild_refusal, "the child could not spawn a grandchild");
}
