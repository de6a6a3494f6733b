//! The agent loop against a scripted LLM server speaking the real OpenAI and Anthropic wire formats.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homarus_agent::provider::Api;
use homarus_agent::{
    run, CompactionSettings, ResolvedModel, RetryPolicy, RunEvent, RunOutcome, RunRequest, StopReason,
};
use homarus_mockllm::{MockLlm, Reply};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn model(mock: &MockLlm, api: Api, name: &str) -> ResolvedModel {
    ResolvedModel {
        provider: "mock".into(),
        model: name.into(),
        api,
        base_url: if api == Api::AnthropicMessages { mock.anthropic_base_url() } else { mock.openai_base_url() },
        api_key: Some("sk-test".into()),
        headers: vec![],
        context_window: 128_000,
        max_tokens: 1024,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    req: RunRequest,
}

fn fixture(models: Vec<ResolvedModel>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("s.jsonl");
    homarus_store::create_transcript(&transcript, "s1", "/", 0).unwrap();
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(&workspace).unwrap();
    let req = RunRequest {
        run_id: "r1".into(),
        agent_id: "main".into(),
        session_key: "agent:main:main".into(),
        session_id: "s1".into(),
        transcript,
        message: "hello".into(),
        models,
        system_prompt: "be brief".into(),
        tools: homarus_agent::tools::builtin_specs(),
        tool_ctx: homarus_agent::ToolContext {
            workspace,
            exec_timeout: Duration::from_secs(10),
            http: reqwest::Client::new(),
            memory_db: dir.path().join("memory.sqlite"),
        },
        retry: RetryPolicy {
            base_backoff: Duration::from_millis(10),
            idle_timeout: Duration::from_secs(5),
            ..RetryPolicy::default()
        },
        compaction: CompactionSettings::default(),
        max_turns: 10,
        heartbeat: false,
        hooks: None,
        compaction_hooks: None,
        steering: None,
        extra_tools: None,
    };
    Fixture { _dir: dir, req }
}

async fn go(req: &RunRequest) -> (RunOutcome, Vec<RunEvent>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let out = run(req, &reqwest::Client::new(), &CancellationToken::new(), &mut |e| sink.lock().unwrap().push(e)).await;
    let ev = events.lock().unwrap().clone();
    (out, ev)
}

fn transcript_messages(req: &RunRequest) -> Vec<Value> {
    homarus_store::read_transcript(&req.transcript)
        .unwrap()
        .entries
        .into_iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["message"].clone())
        .collect()
}

#[tokio::test]
async fn streams_text_in_both_wire_formats_and_writes_the_transcript() {
    for api in [Api::OpenAiCompletions, Api::AnthropicMessages] {
        let mock = MockLlm::start().await.unwrap();
        mock.push([Reply::Text("Hello there friend".into())]);
        let f = fixture(vec![model(&mock, api, "m")]);
        let (out, events) = go(&f.req).await;
        assert_eq!(out.error, None, "{api:?}");
        assert_eq!(out.text, "Hello there friend");
        assert_eq!(out.stop_reason, StopReason::Stop);
        assert!(out.usage.input > 0 && out.usage.output == 3, "{:?}", out.usage);
        let deltas: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Assistant { delta, .. } => Some(delta.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, ["Hello ", "there ", "friend"], "{api:?}");
        let msgs = transcript_messages(&f.req);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0]["role"], "user");
        assert_eq!(msgs[1]["content"][0]["text"], "Hello there friend");
        // The request carried the system prompt and the tools in the provider's own shape.
        let body = &mock.requests()[0];
        assert_eq!(body["stream"], true);
        if api == Api::AnthropicMessages {
            assert_eq!(body["system"], "be brief");
            assert!(body["tools"][0]["input_schema"].is_object());
        } else {
            assert_eq!(body["messages"][0], json!({"role": "system", "content": "be brief"}));
            assert_eq!(body["tools"][0]["type"], "function");
        }
    }
}

#[tokio::test]
async fn tool_calls_run_and_their_results_go_back_to_the_model() {
    for api in [Api::OpenAiCompletions, Api::AnthropicMessages] {
        let mock = MockLlm::start().await.unwrap();
        mock.push([
            Reply::ToolCall { name: "write".into(), args: json!({"path": "notes/a.txt", "content": "lobster"}) },
            Reply::ToolCall { name: "exec".into(), args: json!({"command": "cat notes/a.txt; echo err >&2; exit 3"}) },
            Reply::Text("done".into()),
        ]);
        let f = fixture(vec![model(&mock, api, "m")]);
        let (out, events) = go(&f.req).await;
        assert_eq!(out.text, "done", "{api:?} {:?}", out.error);
        assert_eq!(std::fs::read_to_string(f.req.tool_ctx.workspace.join("notes/a.txt")).unwrap(), "lobster");
        let ends: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                RunEvent::ToolEnd { name, is_error, result, .. } => Some((name.clone(), *is_error, result.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 2);
        assert_eq!((ends[1].0.as_str(), ends[1].1), ("exec", true));
        assert!(
            ends[1].2.contains("exit code: 3") && ends[1].2.contains("lobster") && ends[1].2.contains("err"),
            "{}",
            ends[1].2
        );
        let roles: Vec<_> =
            transcript_messages(&f.req).iter().map(|m| m["role"].as_str().unwrap().to_string()).collect();
        assert_eq!(roles, ["user", "assistant", "toolResult", "assistant", "toolResult", "assistant"]);
        let third = mock.requests()[2].to_string();
        assert!(third.contains("exit code: 3"), "the exec result reached the model: {third}");
    }
}

#[tokio::test]
async fn rate_limits_are_retried_after_retry_after_and_errors_fail_over() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([
        Reply::Error { status: 429, message: "slow down".into(), retry_after: Some(1) },
        Reply::Text("ok".into()),
    ]);
    let f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    let started = Instant::now();
    let (out, _) = go(&f.req).await;
    assert_eq!(out.text, "ok");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured");
    assert_eq!(mock.requests().len(), 2);

    // Three 5xx on the primary: the fallback answers.
    let mock = MockLlm::start().await.unwrap();
    let err = || Reply::Error { status: 503, message: "overloaded".into(), retry_after: None };
    mock.push([err(), err(), err(), Reply::Text("from fallback".into())]);
    let f =
        fixture(vec![model(&mock, Api::OpenAiCompletions, "primary"), model(&mock, Api::AnthropicMessages, "backup")]);
    let (out, _) = go(&f.req).await;
    assert_eq!(out.text, "from fallback");
    assert_eq!(out.model, "backup");

    // A 400 is not retried and the error names the provider and status.
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Error { status: 400, message: "bad field".into(), retry_after: None }]);
    let f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    let (out, _) = go(&f.req).await;
    assert_eq!(out.error.as_deref(), Some("mock refused the request (HTTP 400): bad field"));
    assert_eq!(out.stop_reason, StopReason::Error);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn stalled_and_broken_streams_end_with_clear_errors() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Stall, Reply::Stall, Reply::Stall]);
    let mut f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    f.req.retry.idle_timeout = Duration::from_millis(300);
    let (out, _) = go(&f.req).await;
    // The stall streamed text already, so it is not retried (the user would see it twice).
    assert_eq!(out.error.as_deref(), Some("mock: the model stream stalled (nothing for 0.3 s)"));
    assert_eq!(mock.requests().len(), 1);

    // Broken after text was shown: an error, not a retry.
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Broken]);
    let f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    let (out, _) = go(&f.req).await;
    assert!(
        out.error.as_deref().unwrap_or_default().starts_with("mock: stream broke"),
        "{out:?} {:?}",
        mock.requests()
    );
    assert_eq!(mock.requests().len(), 1);

    // Broken before any text: retried, and the next attempt answers.
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Broken]);
    let f = fixture(vec![model(&mock, Api::AnthropicMessages, "m")]);
    let (out, _) = go(&f.req).await;
    assert_eq!(out.error, None);
    assert_eq!(out.text, "MOCK-REPLY 2");
}

#[tokio::test]
async fn overflow_compacts_then_retries_and_the_summary_falls_back_when_the_model_fails() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Text("first answer".into())]);
    let mut f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    f.req.compaction.keep_recent_tokens = 1;
    go(&f.req).await;
    // Second message: overflow → summary request fails (400) → deterministic summary → retry answers.
    mock.push([
        Reply::Overflow,
        Reply::Error { status: 400, message: "no".into(), retry_after: None },
        Reply::Text("after compaction".into()),
    ]);
    f.req.message = "second".into();
    let (out, events) = go(&f.req).await;
    assert_eq!(out.text, "after compaction", "{:?}", out.error);
    assert_eq!(out.compactions, 1);
    let end = events
        .iter()
        .find_map(|e| match e {
            RunEvent::CompactionEnd { result, will_retry, .. } => Some((result.clone(), *will_retry)),
            _ => None,
        })
        .unwrap();
    assert!(end.1, "the overflowed call is retried");
    let c = end.0.unwrap();
    assert!(c.fallback);
    assert!(c.summary.contains("- hello"), "{}", c.summary);
    let entries = homarus_store::read_transcript(&f.req.transcript).unwrap().entries;
    let comp = entries.iter().find(|e| e["type"] == "compaction").unwrap();
    assert_eq!(comp["summary"], c.summary.as_str());
    // The retried request starts with the summary, not the folded messages.
    let last = mock.requests().last().unwrap().clone();
    let first_user = last["messages"][1]["content"].as_str().unwrap();
    assert!(first_user.contains("<summary>"), "{first_user}");
}

#[tokio::test]
async fn a_compaction_that_leaves_no_answer_gets_exactly_one_continuation_turn() {
    let mock = MockLlm::start().await.unwrap();
    let mut f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    f.req.models[0].context_window = 400; // every turn crosses the threshold
    f.req.compaction =
        CompactionSettings { enabled: true, reserve_tokens: 100, keep_recent_tokens: 1, memory_flush: false };
    // Turn 1 calls a tool; the threshold compaction runs (summary); turn 2 says nothing visible.
    mock.push([
        Reply::ToolCall { name: "read".into(), args: json!({"path": "missing.txt"}) },
        Reply::Text("summary of it".into()),
        Reply::Text("NO_REPLY".into()),
        Reply::Text("summary again".into()),
        Reply::Text("the real answer".into()),
    ]);
    let (out, _) = go(&f.req).await;
    assert_eq!(out.text, "the real answer", "{:?}", out.error);
    assert!(out.continued);
    let continuation =
        mock.requests().iter().filter(|r| r.to_string().contains("compacted while you were working")).count();
    assert_eq!(continuation, 2, "one continuation turn (plus its own summary request that quotes it)");

    // Never loops: a silent answer after the continuation ends the run.
    let mock = MockLlm::start().await.unwrap();
    let mut f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    f.req.models[0].context_window = 400;
    f.req.compaction =
        CompactionSettings { enabled: true, reserve_tokens: 100, keep_recent_tokens: 1, memory_flush: false };
    mock.push([
        Reply::ToolCall { name: "read".into(), args: json!({"path": "x"}) },
        Reply::Text("s1".into()),
        Reply::Text("".into()),
        Reply::Text("s2".into()),
        Reply::Text("NO_REPLY".into()),
        Reply::Text("s3".into()),
    ]);
    let (out, _) = go(&f.req).await;
    assert!(out.continued);
    assert_eq!(out.text, "NO_REPLY");
    let n = mock.requests().len();
    assert!(n <= 6, "bounded: {n} requests");

    // Heartbeats never get one.
    let mock = MockLlm::start().await.unwrap();
    let mut f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    f.req.models[0].context_window = 400;
    f.req.compaction =
        CompactionSettings { enabled: true, reserve_tokens: 100, keep_recent_tokens: 1, memory_flush: false };
    f.req.heartbeat = true;
    mock.push([
        Reply::ToolCall { name: "read".into(), args: json!({"path": "x"}) },
        Reply::Text("s".into()),
        Reply::Text("HEARTBEAT_OK".into()),
    ]);
    let (out, _) = go(&f.req).await;
    assert!(!out.continued);
}

#[tokio::test]
async fn an_abort_stops_the_stream_and_is_reported() {
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Chunks(vec!["a".into(), "b".into()], Duration::from_secs(30))]);
    let f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let events = Arc::new(Mutex::new(0usize));
    let seen = events.clone();
    let handle = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let out = run(&f.req, &http, &c, &mut |_| *seen.lock().unwrap() += 1).await;
        (out, f)
    });
    // Wait until the model call is in flight (the request reached the server), then abort.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.requests().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    let (out, f) = tokio::time::timeout(Duration::from_secs(5), handle).await.unwrap().unwrap();
    assert!(out.aborted);
    assert_eq!(out.stop_reason, StopReason::Aborted);
    let msgs = transcript_messages(&f.req);
    assert_eq!(msgs.len(), 1, "the user message was kept: {msgs:?}");
}

#[tokio::test]
async fn a_silent_memory_flush_turn_runs_before_an_automatic_compaction() {
    let mock = MockLlm::start().await.unwrap();
    let mut f = fixture(vec![model(&mock, Api::OpenAiCompletions, "m")]);
    f.req.models[0].context_window = 400;
    f.req.compaction =
        CompactionSettings { enabled: true, reserve_tokens: 100, keep_recent_tokens: 1, memory_flush: true };
    mock.push([
        Reply::Text("the answer".into()),
        Reply::ToolCall {
            name: "write".into(),
            args: json!({"path": "memory/today.md", "content": "user said hello"}),
        },
        Reply::Text("NO_REPLY".into()),
        Reply::Text("summary".into()),
    ]);
    let (out, events) = go(&f.req).await;
    assert_eq!(out.text, "the answer", "the flush does not replace the answer");
    assert_eq!(out.compactions, 1);
    assert_eq!(std::fs::read_to_string(f.req.tool_ctx.workspace.join("memory/today.md")).unwrap(), "user said hello");
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Assistant { delta, .. } => Some(delta.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, "the answer", "the flush turn is silent");
    let flush_req = mock.requests()[1].to_string();
    assert!(flush_req.contains("Pre-compaction memory flush"), "{flush_req}");
    assert_eq!(mock.requests().len(), 4);
}
