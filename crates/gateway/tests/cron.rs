//! Cron over the WebSocket: job management and validation, main-session and isolated jobs, announce
//! through a channel (the QA bus), webhook delivery, error backoff, one-shot removal, and a job every
//! second across a restart (no drift beyond 1 s, no slot run twice).
mod common;

use std::time::{Duration, Instant};

use common::*;
use homarus_mockllm::{MockLlm, Reply};
use homarus_qabus::QaBus;
use serde_json::{json, Value};

fn config(mock: &MockLlm, extra: &str) -> String {
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

fn every_second(name: &str) -> Value {
    json!({"name": name, "schedule": {"kind": "every", "everyMs": 1000}, "sessionTarget": "main",
           "wakeMode": "next-heartbeat", "payload": {"kind": "systemEvent", "text": format!("{name} tick")}})
}

/// Poll `cron.runs` for a job until `ok` holds, for at most `within`.
async fn runs_within(c: &mut Client, id: &str, within: Duration, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let v = c.call("cron.runs", json!({"id": id, "limit": 200, "sortDir": "asc"})).await;
        let entries = v["entries"].as_array().cloned().unwrap_or_default();
        if ok(&entries) {
            return entries;
        }
        assert!(Instant::now() < deadline, "runs never satisfied: {} runs", entries.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Poll `cron.runs` for a job until `ok` holds.
async fn runs_until(c: &mut Client, id: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let v = c
        .until("cron.runs", json!({"id": id, "limit": 200, "sortDir": "asc"}), |v| {
            ok(v["entries"].as_array().map(Vec::as_slice).unwrap_or(&[]))
        })
        .await;
    v["entries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn manage_jobs_with_clear_errors_and_events() {
    use homarus_hooks::{HandlerFuture, HookRunner, Registration};
    use std::sync::{Arc, Mutex};
    let runner = Arc::new(HookRunner::new());
    let changes: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = changes.clone();
    runner
        .register(Registration {
            plugin_id: "watcher".into(),
            hook: "cron_changed".into(),
            priority: 0,
            timeout: None,
            handler: Arc::new(move |_: &str, event: Value, _ctx: Value| -> HandlerFuture {
                sink.lock().unwrap().push(event);
                Box::pin(async { Ok(None) })
            }),
        })
        .unwrap();
    let mock = MockLlm::start().await.unwrap();
    let gw = TestGateway::start_tuned(Some(&config(&mock, "")), |o| o.hooks = runner.clone()).await;
    let (mut c, hello) = connect_cli(&gw.url()).await;
    for m in ["cron.add", "cron.list", "cron.runs", "last-heartbeat", "set-heartbeats"] {
        assert!(hello["features"]["methods"].as_array().unwrap().iter().any(|x| x == m), "{m}");
    }
    let bad = c
        .request(
            "cron.add",
            json!({"name": "x", "schedule": {"kind": "cron", "expr": "99 * * * *"}, "sessionTarget": "main",
                                     "wakeMode": "now", "payload": {"kind": "systemEvent", "text": "t"}}),
        )
        .await;
    assert!(bad["error"]["message"].as_str().unwrap().starts_with("invalid params: at /schedule/expr:"), "{bad}");
    let bad = c
        .request(
            "cron.add",
            json!({"name": "x", "schedule": {"kind": "every", "everyMs": 60000}, "sessionTarget": "isolated",
                                     "wakeMode": "now", "payload": {"kind": "systemEvent", "text": "t"}}),
        )
        .await;
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("at /payload/kind: an isolated job runs an agent turn"),
        "{bad}"
    );

    let job = c
        .call("cron.add", json!({"name": "weekly review", "schedule": {"kind": "cron", "expr": "0 9 * * 1", "tz": "Europe/Paris"},
                                  "sessionTarget": "isolated", "wakeMode": "now", "payload": {"kind": "agentTurn", "message": "Review"},
                                  "delivery": {"mode": "none"}}))
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert!(job["state"]["nextRunAtMs"].as_i64().unwrap() > 0);
    let ev = c.events.iter().find(|e| e["event"] == "cron").cloned();
    let ev = match ev {
        Some(e) => e,
        None => loop {
            let e = c.recv().await.unwrap();
            if e["event"] == "cron" {
                break e;
            }
        },
    };
    assert_eq!((ev["payload"]["action"].as_str(), ev["payload"]["jobId"].as_str()), (Some("added"), Some(id.as_str())));
    let list = c.call("cron.list", json!({})).await;
    assert_eq!(list["total"], 1);
    let upd = c.call("cron.update", json!({"id": id, "patch": {"enabled": false}})).await;
    assert_eq!((upd["enabled"].as_bool(), upd["state"]["nextRunAtMs"].is_null()), (Some(false), true));
    assert_eq!(c.call("cron.list", json!({})).await["total"], 0, "disabled jobs are hidden by default");
    assert_eq!(c.call("cron.list", json!({"includeDisabled": true})).await["total"], 1);
    let bad = c.request("cron.update", json!({"id": id, "patch": {"wakeMode": "later"}})).await;
    assert!(bad["error"]["message"].as_str().unwrap().contains("at /patch/wakeMode"), "{bad}");
    assert_eq!(c.call("cron.remove", json!({"jobId": id})).await["removed"], true);
    let gone = c.request("cron.get", json!({"id": id})).await;
    assert_eq!(gone["error"]["details"]["code"], "CRON_JOB_NOT_FOUND");
    // Plugins heard every change through cron_changed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut actions: Vec<String> =
            changes.lock().unwrap().iter().filter_map(|e| e["action"].as_str().map(str::to_string)).collect();
        // Observation hooks run concurrently: the order they land in is not guaranteed.
        actions.sort();
        if actions == ["added", "removed", "updated"] {
            assert!(changes.lock().unwrap().iter().all(|e| e["jobId"] == id.as_str()));
            break;
        }
        assert!(Instant::now() < deadline, "cron_changed: {actions:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn isolated_job_announces_through_a_channel_and_webhook_and_backs_off_on_failure() {
    let mock = MockLlm::start().await.unwrap();
    let bus = QaBus::start().await.unwrap();
    mock.push_matching("Summarize the day", Reply::Text("Three meetings, one deploy.".into()));
    mock.push_matching("Ping the hook", Reply::Text("hook body".into()));
    mock.push_matching(
        "Will fail",
        Reply::Error { status: 400, message: "bad request from the provider".into(), retry_after: None },
    );
    // A webhook receiver.
    let (hook_tx, mut hook_rx) = tokio::sync::mpsc::channel::<(Value, Option<String>)>(4);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/cron-hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/cron-hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
            let tx = hook_tx.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                let _ = tx.send((body.0, auth)).await;
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let extra = format!(
        r#"cron: {{webhookToken: "hook-secret"}},
           channels: {{"qa-channel": {{baseUrl: "{}", botUserId: "homarus", pollTimeoutMs: 250, dmPolicy: "open", allowFrom: ["*"]}}}}"#,
        bus.url()
    );
    let gw = TestGateway::start_with(Some(&config(&mock, &extra))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.until("channels.status", json!({}), |v| v["channelAccounts"]["qa-channel"][0]["connected"] == true).await;

    let daily = c
        .call(
            "cron.add",
            json!({"name": "daily", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                                  "wakeMode": "now", "payload": {"kind": "agentTurn", "message": "Summarize the day"},
                                  "delivery": {"mode": "announce", "channel": "qa-channel", "to": "dm:alice"}}),
        )
        .await;
    let id = daily["id"].as_str().unwrap().to_string();
    let ran = c.call("cron.run", json!({"id": id})).await;
    assert_eq!(ran["ran"], true);
    let msg = bus.wait_outbound("dm:alice", "Three meetings", Duration::from_secs(20)).await.expect("announced");
    assert_eq!(msg["text"], "⏰ daily: Three meetings, one deploy.");
    let runs = runs_until(&mut c, &id, |e| !e.is_empty()).await;
    assert_eq!((runs[0]["status"].as_str(), runs[0]["deliveryStatus"].as_str()), (Some("ok"), Some("delivered")));
    assert!(runs[0]["sessionKey"].as_str().unwrap().starts_with("cron:"), "{}", runs[0]);
    let tasks = c.call("tasks.list", json!({})).await;
    assert!(
        tasks["tasks"].as_array().unwrap().iter().any(|t| t["kind"] == "cron" && t["status"] == "completed"),
        "{tasks}"
    );

    let hooked = c
        .call(
            "cron.add",
            json!({"name": "hooked", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
                                  "wakeMode": "now", "payload": {"kind": "agentTurn", "message": "Ping the hook"},
                                  "delivery": {"mode": "webhook", "to": hook_url}}),
        )
        .await;
    let hid = hooked["id"].as_str().unwrap().to_string();
    c.call("cron.run", json!({"id": hid})).await;
    let (body, auth) = tokio::time::timeout(Duration::from_secs(20), hook_rx.recv()).await.unwrap().unwrap();
    assert_eq!((body["jobId"].as_str(), body["summary"].as_str()), (Some(hid.as_str()), Some("hook body")));
    assert_eq!(auth.as_deref(), Some("Bearer hook-secret"));
    let runs = runs_until(&mut c, &hid, |e| !e.is_empty()).await;
    assert_eq!(runs[0]["deliveryStatus"], "delivered");

    // A failing job backs off: every second by schedule, but the next run waits 30 s after a failure.
    let failing = c
        .call(
            "cron.add",
            json!({"name": "flaky", "schedule": {"kind": "every", "everyMs": 1000}, "sessionTarget": "isolated",
                                  "wakeMode": "now", "payload": {"kind": "agentTurn", "message": "Will fail"}}),
        )
        .await;
    let fid = failing["id"].as_str().unwrap().to_string();
    let runs = runs_until(&mut c, &fid, |e| !e.is_empty()).await;
    assert_eq!(runs[0]["status"], "error");
    assert!(runs[0]["error"].as_str().unwrap().contains("bad request"), "{}", runs[0]);
    let job = c.call("cron.get", json!({"id": fid})).await;
    let st = &job["state"];
    assert_eq!(st["consecutiveErrors"], 1);
    let wait = st["nextRunAtMs"].as_i64().unwrap() - st["lastRunAtMs"].as_i64().unwrap();
    assert!(wait >= 30_000, "backed off: next run {wait} ms after the failure");
}

#[tokio::test]
async fn one_shot_jobs_run_once_and_are_removed() {
    let mock = MockLlm::start().await.unwrap();
    let gw = TestGateway::start_with(Some(&config(&mock, ""))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let job = c
        .call("cron.add", json!({"name": "remind", "schedule": {"kind": "at", "at": "1s"}, "sessionTarget": "main",
                                  "wakeMode": "next-heartbeat", "payload": {"kind": "systemEvent", "text": "Call Bob"}}))
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert!(job["schedule"]["at"].as_str().unwrap().ends_with('Z'), "relative times are stored absolute");
    c.until("cron.list", json!({"includeDisabled": true}), |v| v["total"] == 0).await;
    let runs = runs_until(&mut c, &id, |e| !e.is_empty()).await;
    assert_eq!((runs.len(), runs[0]["status"].as_str()), (1, Some("ok")));
    let status = c.call("status", json!({})).await;
    assert!(status.to_string().contains("Call Bob"), "the event waits in the main session: {status}");
}

#[tokio::test]
async fn every_second_for_a_minute_across_a_restart_without_drift_or_duplicates() {
    let mock = MockLlm::start().await.unwrap();
    let cfg = config(&mock, "");
    let mut gw = TestGateway::start_with(Some(&cfg)).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let job = c.call("cron.add", every_second("metronome")).await;
    let id = job["id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    runs_within(&mut c, &id, Duration::from_secs(45), |e| e.len() >= 30).await;
    gw.close("restart for the test", Some(100)).await;
    let gw2 = TestGateway::start_in(gw.dir, Some(&cfg)).await;
    let (mut c, _) = connect_cli(&gw2.url()).await;
    let runs = runs_within(&mut c, &id, Duration::from_secs(45), |e| e.len() >= 60).await;
    let elapsed = t0.elapsed();
    let slots: Vec<i64> = runs.iter().map(|r| r["runAtMs"].as_i64().unwrap()).collect();
    let mut unique = slots.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), slots.len(), "no slot ran twice");
    for r in &runs {
        assert_eq!(r["status"], "ok");
        let drift = r["startedAtMs"].as_i64().unwrap() - r["runAtMs"].as_i64().unwrap();
        assert!((0..=1000).contains(&drift), "drift {drift} ms: {r}");
    }
    for w in slots.windows(2) {
        assert!(w[1] - w[0] <= 2000, "no second missed: {w:?}");
    }
    assert!(elapsed >= Duration::from_secs(58) && elapsed <= Duration::from_secs(75), "60 runs took {elapsed:?}");
}

#[tokio::test]
async fn missed_slots_after_downtime_run_once_or_are_skipped_and_interrupted_runs_are_recorded() {
    let mock = MockLlm::start().await.unwrap();
    for (skip, expect_run) in [(false, true), (true, false)] {
        let cfg = config(&mock, &format!("cron: {{skipMissedJobs: {skip}}}"));
        let mut gw = TestGateway::start_with(Some(&cfg)).await;
        let (mut c, _) = connect_cli(&gw.url()).await;
        let hourly = c.call("cron.add", json!({"name": "hourly", "schedule": {"kind": "every", "everyMs": 3_600_000},
            "sessionTarget": "main", "wakeMode": "next-heartbeat", "payload": {"kind": "systemEvent", "text": "hourly"}})).await;
        let id = hourly["id"].as_str().unwrap().to_string();
        gw.close("down for a while", None).await;
        // While it was down, the slot passed; and the last process died during another job's run.
        let opts = homarus_gateway::GatewayOptions::new(gw.dir.path().to_path_buf(), gw.config_path());
        let store = homarus_store::Store::open(&opts.database_path()).unwrap();
        let mut job = store.cron_job(&id).unwrap().unwrap();
        let past = job["state"]["nextRunAtMs"].as_i64().unwrap() - 3_600_000 - 60_000;
        job["state"]["nextRunAtMs"] = json!(past);
        store.cron_job_put(&id, &job, past).unwrap();
        let mut crashed = job.clone();
        crashed["id"] = json!("crashed-job");
        crashed["state"]["runningAtMs"] = json!(past);
        store.cron_job_put("crashed-job", &crashed, past).unwrap();
        drop(store);
        let gw2 = TestGateway::start_in(gw.dir, Some(&cfg)).await;
        let (mut c, _) = connect_cli(&gw2.url()).await;
        let interrupted = runs_until(&mut c, "crashed-job", |e| !e.is_empty()).await;
        assert_eq!(interrupted[0]["status"], "error");
        assert!(interrupted[0]["error"].as_str().unwrap().contains("interrupted"), "{}", interrupted[0]);
        if expect_run {
            let runs = runs_until(&mut c, &id, |e| !e.is_empty()).await;
            assert_eq!(runs.len(), 1, "caught up once, not once per missed slot");
        } else {
            let job = c.call("cron.get", json!({"id": id})).await;
            assert!(
                job["state"]["nextRunAtMs"].as_i64().unwrap() > past + 3_600_000,
                "skipped to a future slot: {job}"
            );
            let runs = c.call("cron.runs", json!({"id": id})).await;
            assert_eq!(runs["total"], 0, "skipMissedJobs: nothing ran");
        }
    }
}
