//! The lifecycle guarantee: every session that starts gets exactly one `session_end`, through reset,
//! delete, shutdown and restart, within a bounded drain.
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use homarus_hooks::{HandlerFuture, HookRunner, Registration};
use serde_json::{json, Value};

type Log = Arc<Mutex<Vec<(String, Value)>>>;

fn recording_runner(session_end_delay: Option<Duration>) -> (Arc<HookRunner>, Log) {
    let runner = Arc::new(HookRunner::new());
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    for hook in ["session_start", "session_end"] {
        let log = log.clone();
        let handler = move |name: &str, event: Value, _ctx: Value| -> HandlerFuture {
            let log = log.clone();
            let name = name.to_string();
            Box::pin(async move {
                if name == "session_end" {
                    if let Some(d) = session_end_delay {
                        tokio::time::sleep(d).await;
                    }
                }
                log.lock().unwrap().push((name, event));
                Ok(None)
            })
        };
        runner
            .register(Registration {
                plugin_id: "ledger".into(),
                hook: hook.into(),
                priority: 0,
                timeout: Some(Duration::from_secs(60)),
                handler: Arc::new(handler),
            })
            .unwrap();
    }
    (runner, log)
}

/// Wait (bounded) until `n` events of `hook` were recorded.
async fn wait_for(log: &Log, hook: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lock().unwrap().iter().filter(|(h, _)| h == hook).count() < n {
        assert!(Instant::now() < deadline, "{hook}: fewer than {n} events: {:?}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ends_by_session(log: &Log) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (hook, e) in log.lock().unwrap().iter() {
        if hook == "session_end" {
            out.entry(e["sessionId"].as_str().unwrap().into()).or_default().push(e["reason"].as_str().unwrap().into());
        }
    }
    out
}

fn started_ids(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(h, _)| h == "session_start")
        .map(|(_, e)| e["sessionId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_started_session_ends_exactly_once_through_reset_delete_and_restart() {
    let (runner, log) = recording_runner(None);
    let mut gw = TestGateway::start_tuned(None, |o| o.hooks = runner.clone()).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    for k in ["a", "b", "c"] {
        c.call("sessions.create", json!({"key": format!("agent:main:{k}")})).await;
    }
    wait_for(&log, "session_start", 3).await;
    let reset = c.call("sessions.reset", json!({"key": "agent:main:a"})).await;
    c.call("sessions.delete", json!({"key": "agent:main:b"})).await;
    wait_for(&log, "session_end", 2).await;
    wait_for(&log, "session_start", 4).await;

    let report = gw.close("gateway restarting", Some(1500)).await;
    assert!(report.warnings.is_empty(), "{report:?}");
    let ends = ends_by_session(&log);
    let starts = started_ids(&log);
    assert_eq!(starts.len(), 4);
    for id in &starts {
        assert_eq!(ends.get(id).map(Vec::len), Some(1), "session {id} must end exactly once: {ends:?}");
    }
    assert_eq!(ends[reset["previousSessionId"].as_str().unwrap()], ["reset"]);
    assert_eq!(ends[reset["sessionId"].as_str().unwrap()], ["restart"]);
    let end_of_reset =
        log.lock().unwrap().iter().find(|(h, e)| h == "session_end" && e["reason"] == "reset").unwrap().1.clone();
    assert_eq!(end_of_reset["nextSessionId"], reset["sessionId"]);
    assert_eq!(end_of_reset["transcriptArchived"], true);
    assert!(end_of_reset["sessionFile"].as_str().unwrap().contains(".jsonl.reset."));
    let start_after_reset = log
        .lock()
        .unwrap()
        .iter()
        .find(|(h, e)| h == "session_start" && e["sessionId"] == reset["sessionId"])
        .unwrap()
        .1
        .clone();
    assert_eq!(start_after_reset["resumedFrom"], reset["previousSessionId"]);
    assert!(ends.values().flatten().filter(|r| *r == "deleted").count() == 1);

    // After the restart the stored sessions are tracked again, and a shutdown ends each once more.
    log.lock().unwrap().clear();
    let mut opts = homarus_gateway::GatewayOptions::new(gw.dir.path().to_path_buf(), gw.config_path());
    opts.port = Some(0);
    opts.token = Some(TOKEN.into());
    opts.hooks = runner.clone();
    let running =
        homarus_gateway::Gateway::start(opts, homarus_config::load_file(&gw.config_path()).unwrap()).await.unwrap();
    wait_for(&log, "session_start", 2).await;
    running.close("gateway stopping", None).await;
    let ends = ends_by_session(&log);
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert!(ends.values().all(|r| r == &["shutdown"]), "{ends:?}");
}

#[tokio::test]
async fn a_hanging_session_end_plugin_cannot_hold_the_shutdown() {
    let (runner, log) = recording_runner(Some(Duration::from_secs(30)));
    let mut gw = TestGateway::start_tuned(None, |o| o.hooks = runner.clone()).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    for i in 0..20 {
        c.call("sessions.create", json!({"key": format!("agent:main:s{i}")})).await;
    }
    let started = Instant::now();
    let report = gw.close("gateway stopping", None).await;
    assert!(started.elapsed() < Duration::from_secs(3), "closed in {:?}", started.elapsed());
    assert_eq!(report.warnings, ["session-end-drain"]);
    assert!(ends_by_session(&log).is_empty(), "the sleeping handler never finished");
}

#[tokio::test]
async fn no_sessions_means_no_drain_warning_and_new_sessions_are_refused_while_closing() {
    let (runner, log) = recording_runner(None);
    let mut gw = TestGateway::start_tuned(None, |o| o.hooks = runner).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let mut seq = gw.running.take().unwrap().shutdown_sequence("gateway stopping", None);
    // A probe step after the drain: a client still connected tries to start a session.
    seq.insert_before("broadcast-shutdown", "probe", Duration::from_secs(5), move || async move {
        let res = c.request("sessions.create", json!({"key": "agent:main:late"})).await;
        if res["error"]["code"] == "UNAVAILABLE" && res["error"]["retryAfterMs"] == 1500 {
            Ok(())
        } else {
            Err(format!("a session could start during the close: {res}"))
        }
    });
    let report = seq.run().await;
    assert!(report.warnings.is_empty(), "{report:?}");
    assert!(log.lock().unwrap().is_empty(), "no session started, none ended");
}

/// Create `a` (pinned), `b`, `c`, `d`, stop, then start again on the same folder with `config`.
async fn restart_with_four_stored_sessions(config: &str, runner: Arc<HookRunner>) -> (TestGateway, Client) {
    let mut gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    for k in ["a", "b", "c", "d"] {
        c.call("sessions.create", json!({"key": format!("agent:main:{k}")})).await;
    }
    c.call("sessions.patch", json!({"key": "agent:main:a", "pinned": true})).await;
    gw.close("gateway stopping", None).await;
    std::fs::write(gw.config_path(), config).unwrap();
    let mut opts = homarus_gateway::GatewayOptions::new(gw.dir.path().to_path_buf(), gw.config_path());
    opts.port = Some(0);
    opts.token = Some(TOKEN.into());
    opts.hooks = runner;
    let running =
        homarus_gateway::Gateway::start(opts, homarus_config::load_file(&gw.config_path()).unwrap()).await.unwrap();
    gw.addr = running.addr;
    gw.running = Some(running);
    let (c, _) = connect_cli(&gw.url()).await;
    (gw, c)
}

/// The first maintenance pass, as `status` reports it (waits for it, bounded).
async fn maintenance_pass(c: &mut Client) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = c.call("status", json!({})).await;
        if !status["sessions"]["maintenance"].is_null() {
            return status["sessions"]["maintenance"].clone();
        }
        assert!(Instant::now() < deadline, "no maintenance pass reported: {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn maintenance_prunes_unpinned_stale_sessions_with_one_session_end_each() {
    let (runner, log) = recording_runner(None);
    let config = r#"{session: {maintenance: {pruneAfter: "1ms", maxEntries: 2}}}"#;
    let (mut gw, mut c) = restart_with_four_stored_sessions(config, runner).await;
    let pass = maintenance_pass(&mut c).await;
    assert_eq!(pass["enforced"], true, "{pass}");
    assert_eq!(pass["selectedCount"], 3, "{pass}");
    assert_eq!(pass["maxEntries"], 2);
    wait_for(&log, "session_end", 3).await;
    let list = c.call("sessions.list", json!({})).await;
    let keys: Vec<_> = list["sessions"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["agent:main:a"], "the pinned session stays");

    // Every removed session was resumed first, ended once as `deleted`, with its transcript archived.
    let events = log.lock().unwrap().clone();
    for (i, (hook, e)) in events.iter().enumerate() {
        if hook == "session_end" {
            assert_eq!(e["reason"], "deleted");
            assert!(e["sessionFile"].as_str().unwrap().contains(".jsonl.deleted."), "{e}");
            assert!(std::path::Path::new(e["sessionFile"].as_str().unwrap()).exists());
            let started_before =
                events[..i].iter().any(|(h, s)| h == "session_start" && s["sessionId"] == e["sessionId"]);
            assert!(started_before, "session_end before its session_start: {events:?}");
        }
    }
    gw.close("gateway stopping", None).await;
    let ends = ends_by_session(&log);
    assert_eq!(ends.len(), 4, "{ends:?}");
    assert!(ends.values().all(|r| r.len() == 1), "{ends:?}");
    assert_eq!(ends.values().filter(|r| r[0] == "shutdown").count(), 1, "{ends:?}");
}

#[tokio::test]
async fn maintenance_in_warn_mode_only_reports() {
    let (runner, log) = recording_runner(None);
    let config = r#"{session: {maintenance: {mode: "warn", maxEntries: 1}}}"#;
    let (mut gw, mut c) = restart_with_four_stored_sessions(config, runner).await;
    let pass = maintenance_pass(&mut c).await;
    assert_eq!(pass["enforced"], false, "{pass}");
    assert_eq!(pass["mode"], "warn");
    assert_eq!(pass["selectedCount"], 3, "the three beyond the cap, pinned excluded: {pass}");
    assert_eq!(c.call("sessions.list", json!({})).await["count"], 4);
    gw.close("gateway stopping", None).await;
    assert!(ends_by_session(&log).values().all(|r| r == &["shutdown"]));
}

#[tokio::test]
async fn an_idle_session_resets_on_the_next_message_and_session_memory_keeps_the_old_one() {
    let mock = homarus_mockllm::MockLlm::start().await.unwrap();
    mock.push([homarus_mockllm::Reply::Text("noted".into())]);
    let config = format!(
        r#"{{models: {{providers: {{local: {{baseUrl: "{}", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
            agents: {{defaults: {{model: "local/m"}}}},
            session: {{reset: {{mode: "idle", idleMinutes: 30}}}},
            hooks: {{internal: {{entries: {{"session-memory": {{enabled: true}}}}}}}}}}"#,
        mock.openai_base_url()
    );
    let (runner, log) = recording_runner(None);
    let mut gw = TestGateway::start_tuned(Some(&config), |o| o.hooks = runner.clone()).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call(
        "chat.send",
        json!({"sessionKey": "agent:main:main", "message": "remember lobsters", "idempotencyKey": "a"}),
    )
    .await;
    let old = wait_for_reply(&mut c, "a").await;
    assert_eq!(old, "noted");
    let old_id = c.call("sessions.describe", json!({"key": "agent:main:main"})).await["session"]["sessionId"].clone();
    gw.close("gateway stopping", None).await;

    // Two hours pass without a message (the store is edited while the gateway is down).
    let opts = homarus_gateway::GatewayOptions::new(gw.dir.path().to_path_buf(), gw.config_path());
    let store = homarus_store::Store::open(&opts.database_path()).unwrap();
    let mut row = store.session("agent:main:main").unwrap().unwrap();
    let two_hours_ago = row.last_interaction_at_ms.unwrap() - 2 * 3_600_000;
    row.last_interaction_at_ms = Some(two_hours_ago);
    row.session_started_at_ms = two_hours_ago;
    store.update_session(&row).unwrap();
    drop(store);

    log.lock().unwrap().clear();
    let mut opts = opts;
    opts.port = Some(0);
    opts.token = Some(TOKEN.into());
    opts.hooks = runner.clone();
    let running =
        homarus_gateway::Gateway::start(opts, homarus_config::load_file(&gw.config_path()).unwrap()).await.unwrap();
    gw.addr = running.addr;
    gw.running = Some(running);
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "hello again", "idempotencyKey": "b"}))
        .await;
    assert_eq!(wait_for_reply(&mut c, "b").await, "MOCK-REPLY 2");
    let new_id = c.call("sessions.describe", json!({"key": "agent:main:main"})).await["session"]["sessionId"].clone();
    assert_ne!(old_id, new_id);
    wait_for(&log, "session_end", 1).await;
    let ends = ends_by_session(&log);
    assert_eq!(ends[old_id.as_str().unwrap()], ["idle"]);
    let start = log.lock().unwrap().iter().find(|(h, e)| h == "session_start" && e["sessionId"] == new_id).cloned();
    assert_eq!(start.unwrap().1["resumedFrom"], old_id);
    // The new session's history starts fresh; the old conversation was saved by session-memory.
    let history = c.call("chat.history", json!({"sessionKey": "agent:main:main"})).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 2);
    let memory_dir = gw.dir.path().join("workspace/memory");
    let saved: Vec<String> =
        std::fs::read_dir(&memory_dir).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(
        saved[0].contains("**user**: remember lobsters") && saved[0].contains("reset automatically"),
        "{}",
        saved[0]
    );
    gw.close("gateway stopping", None).await;
}

/// Wait for the final chat reply of `run_id` and return its text.
async fn wait_for_reply(c: &mut Client, run_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pending = std::mem::take(&mut c.events);
    loop {
        for e in pending.drain(..) {
            let p = &e["payload"];
            if e["event"] == "chat" && p["runId"] == run_id {
                match p["state"].as_str() {
                    Some("final") => return p["message"]["content"][0]["text"].as_str().unwrap_or("").to_string(),
                    Some("error") | Some("aborted") => panic!("run {run_id} failed: {e}"),
                    _ => {}
                }
            }
        }
        assert!(Instant::now() < deadline, "no reply for {run_id}");
        if let Some(v) = c.recv().await {
            pending.push(v);
        }
    }
}
