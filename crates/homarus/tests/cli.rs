//! The `homarus` binary end to end: zero-config start, CLI calls, signals, config commands.
mod common;

use common::*;
use serde_json::Value;

#[test]
fn zero_config_start_prints_the_generated_token_once_and_serves_cli_calls() {
    let d = Daemon::start(&[], None);
    assert!(d.seen.iter().any(|l| l.trim() == format!("token: {}", d.token)), "{:?}", d.seen);
    assert!(!d.token.is_empty());

    let out = d.cli(&["health", "--url", &d.url, "--token", &d.token, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let health: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(health["ok"], true);

    let out = d.cli(&["status", "--url", &d.url, "--token", &d.token, "--json"]);
    let status: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["runtime"], "homarus");

    let out = d.cli(&["gateway", "call", "foo.bar", "--url", &d.url, "--token", &d.token, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        err,
        serde_json::json!({"ok": false, "error": {"type": "gateway_request_error", "code": "INVALID_REQUEST", "message": "unknown method: foo.bar"}})
    );

    let out = d.cli(&["gateway", "call", "health", "--url", &d.url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--url requires explicit credentials"), "{}", stderr(&out));

    let out = d.cli(&["gateway", "call", "health", "--url", &d.url, "--token", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "one-line reason: {}", stderr(&out));
    assert!(stderr(&out).contains("gateway error INVALID_REQUEST: unauthorized: gateway token mismatch"));

    let out = d.cli(&["devices", "list", "--url", &d.url, "--token", &d.token, "--json"]);
    let devices: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(devices, serde_json::json!({"pending": [], "paired": []}));
}

/// Connect as the CLI and return the socket after `hello-ok`.
async fn connected(
    url: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures_util::{SinkExt, StreamExt};
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let _challenge = ws.next().await.unwrap().unwrap();
    let connect = serde_json::json!({"type":"req","id":"1","method":"connect","params":{"minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"t","platform":"linux","mode":"cli"},"auth":{"token":token},"scopes":["operator.read"]}});
    ws.send(tokio_tungstenite::tungstenite::Message::Text(connect.to_string().into())).await.unwrap();
    let hello: Value = serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(hello["ok"], true, "{hello}");
    ws
}

/// Read until close; return the `shutdown` payload seen and the close code.
async fn until_closed(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> (Value, Option<u16>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut shutdown = Value::Null;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(15), ws.next()).await.expect("closed in time");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["event"] == "shutdown" {
                    shutdown = v["payload"].clone();
                }
            }
            Some(Ok(Message::Close(f))) => return (shutdown, f.map(|f| f.code.into())),
            Some(Ok(_)) => continue,
            _ => return (shutdown, None),
        }
    }
}

#[test]
fn sigusr1_restarts_in_process_and_sigterm_stops_cleanly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut d = Daemon::start(&[], None);
    let mut ws = rt.block_on(connected(&d.url, &d.token));
    d.signal(10); // SIGUSR1
    let (shutdown, code) = rt.block_on(until_closed(&mut ws));
    assert_eq!(shutdown, serde_json::json!({"reason": "gateway restarting", "restartExpectedMs": 1500}));
    assert_eq!(code, Some(1012));
    let restarting = d.next_line().unwrap();
    assert!(restarting.starts_with("homarus gateway restarting ("), "{restarting}");
    let url = d.wait_for_url();
    let out = d.cli(&["health", "--url", &url, "--token", &d.token, "--json"]);
    assert!(out.status.success(), "serves again after restart: {}", stderr(&out));

    let mut ws = rt.block_on(connected(&url, &d.token));
    d.signal(15); // SIGTERM
    let (shutdown, code) = rt.block_on(until_closed(&mut ws));
    assert_eq!(shutdown, serde_json::json!({"reason": "gateway stopping"}));
    assert_eq!(code, Some(1012));
    let stopped = d.next_line().unwrap();
    assert!(stopped.starts_with("homarus gateway stopped in "), "{stopped}");
    assert!(!stopped.contains("warnings"), "{stopped}");
    let status = d.child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn refuses_lan_without_auth_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["gateway", "--port", "0", "--bind", "lan", "--auth", "none"])
        .env("HOMARUS_STATE_DIR", dir.path())
        .env_remove("HOMARUS_CONFIG_PATH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("refusing to listen on 0.0.0.0:0 without authentication"), "{}", stderr(&out));
}

#[test]
fn config_commands_edit_validate_and_explain_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| run_in(dir.path(), args);
    assert!(run(&["config", "set", "gateway.port", "18800"]).status.success());
    assert_eq!(stdout(&run(&["config", "get", "gateway.port"])).trim(), "18800");
    let bad = run(&["config", "set", "gateway.port", "abc"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("gateway.port: expected an integer 1-65535, found \"abc\""), "{}", stderr(&bad));
    assert_eq!(stdout(&run(&["config", "get", "gateway.port"])).trim(), "18800", "a rejected set changes nothing");
    assert!(run(&["config", "set", "gateway.auth.token", "s3cret"]).status.success());
    assert_eq!(stdout(&run(&["config", "get", "gateway.auth.token"])).trim(), "__OPENCLAW_REDACTED__");
    assert!(run(&["config", "unset", "gateway.port"]).status.success());
    assert_eq!(run(&["config", "get", "gateway.port"]).status.code(), Some(1));

    std::fs::write(dir.path().join("homarus.json"), "{\n  gateway: {\n    autth: {}\n  }\n}\n").unwrap();
    let v = run(&["config", "validate"]);
    assert_eq!(v.status.code(), Some(1));
    assert_eq!(
        stderr(&v).trim(),
        "homarus: invalid config: gateway.autth: unknown key; did you mean `gateway.auth`? at homarus.json:3:5"
    );
}

#[test]
fn checked_in_schema_and_reference_match_the_code() {
    let out = std::process::Command::new(BIN)
        .args(["config", "schema", "--check"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let drift = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["config", "schema", "--check", "--root"])
        .arg(drift.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("drifted from the code"));
}

#[test]
fn http_probes_answer_curl() {
    let d = Daemon::start(&[], None);
    let http = d.url.replace("ws://", "http://");
    for (path, want) in [("/health", "live"), ("/healthz", "live")] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", &format!("{http}{path}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {path}: {}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["status"], want);
    }
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", &format!("{http}/readyz")])
        .output()
        .unwrap();
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["failing"], serde_json::json!([]));
    assert!(v["uptimeMs"].as_u64().is_some());
}

#[test]
fn sessions_commands_go_through_the_gateway() {
    let d = Daemon::start(&[], None);
    let call = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--url", &d.url, "--token", &d.token]);
        d.cli(&all)
    };
    let out = call(&["gateway", "call", "sessions.create", "--params", r#"{"key":"agent:main:cli"}"#, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = call(&["sessions", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("1 of 1 sessions"), "{text}");
    assert!(text.contains("agent:main:cli"), "{text}");
    let shown: Value = serde_json::from_str(&stdout(&call(&["sessions", "show", "agent:main:cli", "--json"]))).unwrap();
    let reset: Value =
        serde_json::from_str(&stdout(&call(&["sessions", "reset", "agent:main:cli", "--json"]))).unwrap();
    assert_eq!(reset["previousSessionId"], shown["session"]["sessionId"]);
    let deleted: Value =
        serde_json::from_str(&stdout(&call(&["sessions", "delete", "agent:main:cli", "--json"]))).unwrap();
    assert_eq!(deleted["deleted"], true);
    let out = call(&["sessions", "show", "agent:main:cli"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "homarus: gateway error INVALID_REQUEST: unknown session: agent:main:cli");
}

#[test]
fn plugins_commands_list_inspect_enable_disable() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = dir.path().join("plugins/session-ledger");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let example = workspace_root().join("examples/plugins/session-ledger");
    for f in ["homarus.plugin.json", "ledger.py"] {
        std::fs::copy(example.join(f), plugin_dir.join(f)).unwrap();
    }
    let run = |args: &[&str]| run_in(dir.path(), args);
    let list = |json: bool| -> Value {
        let out = if json { run(&["plugins", "list", "--json"]) } else { run(&["plugins", "list"]) };
        assert!(out.status.success(), "{}", stderr(&out));
        if json {
            serde_json::from_str(&stdout(&out)).unwrap()
        } else {
            Value::String(stdout(&out))
        }
    };
    assert_eq!(list(true)["plugins"][0]["id"], "session-ledger");
    assert_eq!(list(true)["plugins"][0]["enabled"], true);
    assert!(list(false).as_str().unwrap().contains("session-ledger"));

    assert!(run(&["plugins", "disable", "session-ledger"]).status.success());
    assert_eq!(list(true)["plugins"][0]["enabled"], false);
    let cfg = std::fs::read_to_string(dir.path().join("homarus.json")).unwrap();
    assert!(cfg.contains("\"enabled\": false"), "{cfg}");
    let inspect: Value = serde_json::from_str(&stdout(&run(&["plugins", "inspect", "session-ledger"]))).unwrap();
    assert_eq!(inspect["hooks"], serde_json::json!(["session_start", "session_end"]));
    assert_eq!(inspect["entry"]["enabled"], false);
    assert!(inspect["configSchema"]["properties"]["db"].is_object());
    assert!(run(&["plugins", "enable", "session-ledger"]).status.success());
    assert_eq!(list(true)["plugins"][0]["enabled"], true);
    let missing = run(&["plugins", "inspect", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no plugin with id `nope`"));
}

#[test]
fn hooks_commands_list_enable_disable_check() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| run_in(dir.path(), args);
    let list = || -> Value { serde_json::from_str(&stdout(&run(&["hooks", "list", "--json"]))).unwrap() };
    let logger =
        |v: &Value| v["hooks"].as_array().unwrap().iter().find(|h| h["name"] == "command-logger").cloned().unwrap();
    assert_eq!(logger(&list())["selected"], false, "nothing loads unless selected");
    assert!(run(&["hooks", "enable", "command-logger"]).status.success());
    assert_eq!(logger(&list())["selected"], true);
    assert!(run(&["hooks", "check"]).status.success());
    assert!(run(&["hooks", "disable", "command-logger"]).status.success());
    assert_eq!(logger(&list())["selected"], false);
    let missing = run(&["hooks", "enable", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no hook named `nope`"));

    let hook = dir.path().join("hooks/needs-tool");
    std::fs::create_dir_all(&hook).unwrap();
    std::fs::write(
        hook.join("HOOK.md"),
        "---\nmetadata: {openclaw: {events: [command], requires: {bins: [surely-not-a-real-tool]}}}\n---\n",
    )
    .unwrap();
    std::fs::write(hook.join("handler"), "#!/bin/sh\n").unwrap();
    assert!(run(&["hooks", "enable", "needs-tool"]).status.success());
    let check = run(&["hooks", "check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stderr(&check).contains("hook needs-tool: missing program `surely-not-a-real-tool`"), "{}", stderr(&check));
}

#[test]
fn agent_and_chat_commands_talk_to_the_model_through_the_gateway() {
    let model = MockModel::start();
    model.server.push([homarus_mockllm::Reply::Text("Hi from the mock".into())]);
    let d = Daemon::start(&[], Some(&model.config()));
    let out = d.cli(&["agent", "--message", "hello", "--url", &d.url, "--token", &d.token]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Hi from the mock");
    let out = d.cli(&["agent", "-m", "again", "--json", "--url", &d.url, "--token", &d.token]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["result"]["payloads"][0]["text"], "MOCK-REPLY 2");

    // `homarus chat` reads lines from stdin and streams each reply.
    let mut child = std::process::Command::new(BIN)
        .args(["chat", "--url", &d.url, "--token", &d.token])
        .env("HOMARUS_STATE_DIR", d.state_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"first line\n/status\n/exit\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("you: hello") && text.contains("agent: Hi from the mock"), "history shown: {text}");
    assert!(text.contains("MOCK-REPLY 3"), "{text}");
    assert!(text.contains("session agent:main:main"), "/status answered: {text}");

    // The `agent` calls were recorded as tasks.
    let out = d.cli(&["tasks", "list", "--url", &d.url, "--token", &d.token]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("2 tasks"), "{}", stdout(&out));
    let list: Value =
        serde_json::from_str(&stdout(&d.cli(&["tasks", "list", "--json", "--url", &d.url, "--token", &d.token])))
            .unwrap();
    let id = list["tasks"][0]["id"].as_str().unwrap().to_string();
    let shown: Value =
        serde_json::from_str(&stdout(&d.cli(&["tasks", "show", &id, "--json", "--url", &d.url, "--token", &d.token])))
            .unwrap();
    assert_eq!(shown["task"]["status"], "completed");
    let cancel: Value = serde_json::from_str(&stdout(
        &d.cli(&["tasks", "cancel", &id, "--json", "--url", &d.url, "--token", &d.token]),
    ))
    .unwrap();
    assert_eq!(cancel["cancelled"], false);
}

#[test]
fn channels_status_and_pairing_commands() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let bus = rt.block_on(homarus_qabus::QaBus::start()).unwrap();
    let config = format!(
        r#"{{"channels":{{"qa-channel":{{"baseUrl":"{}","botUserId":"homarus","pollTimeoutMs":250}}}}}}"#,
        bus.url()
    );
    let d = Daemon::start(&[], Some(&config));
    let auth = ["--url", &d.url, "--token", &d.token];
    let cli = |args: &[&str]| d.cli(&[args, &auth[..]].concat());
    rt.block_on(bus.inject("direct", "zoe", "zoe", "hi", None));
    let sent = rt.block_on(bus.wait_outbound("dm:zoe", "Pairing code:", std::time::Duration::from_secs(20)));
    let sent = sent.unwrap_or_else(|| {
        panic!("no code; log: {}", std::fs::read_to_string(d.state_dir().join("logs/homarus.log")).unwrap_or_default())
    });
    let code =
        sent["text"].as_str().unwrap().lines().find_map(|l| l.strip_prefix("Pairing code: ")).unwrap().to_string();

    let out = cli(&["pairing", "list", "qa-channel"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("1 pending") && stdout(&out).contains(&code), "{}", stdout(&out));
    let bad = cli(&["pairing", "approve", "nope-channel", &code]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("unknown channel \"nope-channel\""), "{}", stderr(&bad));
    let out = cli(&["pairing", "approve", "qa-channel", &code.to_lowercase()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Approved qa-channel sender zoe (command owner"), "{}", stdout(&out));
    let listed: Value = serde_json::from_str(&stdout(&cli(&["pairing", "list", "--json"]))).unwrap();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 0);

    let status: Value = serde_json::from_str(&stdout(&cli(&["channels", "status", "--json"]))).unwrap();
    let acc = &status["channelAccounts"]["qa-channel"][0];
    assert_eq!((acc["accountId"].as_str(), acc["running"].as_bool()), (Some("default"), Some(true)));
    let out = cli(&["channels", "status"]);
    let line = stdout(&out).lines().find(|l| l.starts_with("qa-channel")).unwrap_or_default().to_string();
    assert!(line.split_whitespace().take(3).eq(["qa-channel", "default", "yes"]), "{}", stdout(&out));
}

#[test]
fn cron_commands_manage_and_run_jobs() {
    let d = Daemon::start(&[], None);
    let auth = ["--url", &d.url, "--token", &d.token];
    let cli = |args: &[&str]| d.cli(&[args, &auth[..]].concat());
    let bad = cli(&["cron", "add", "--name", "x", "--system-event", "tick"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("a schedule is required"), "{}", stderr(&bad));
    let bad =
        cli(&["cron", "add", "--name", "x", "--cron", "0 9 * * *", "--tz", "Nowhere/City", "--system-event", "tick"]);
    assert!(stderr(&bad).contains("unknown time zone"), "{}", stderr(&bad));
    let out =
        cli(&["cron", "add", "--name", "standup", "--every", "1h", "--system-event", "Standup in 5 minutes", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!((job["sessionTarget"].as_str(), job["schedule"]["everyMs"].as_u64()), (Some("main"), Some(3_600_000)));
    let list = stdout(&cli(&["cron", "list"]));
    assert!(list.starts_with("1 jobs") && list.contains(&id) && list.contains("standup"), "{list}");
    let ran: Value = serde_json::from_str(&stdout(&cli(&["cron", "run", &id, "--json"]))).unwrap();
    assert_eq!(ran["ran"], true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let runs = stdout(&cli(&["cron", "runs", &id]));
        if runs.starts_with("1 of 1 runs") {
            assert!(runs.contains(" ok ") && runs.contains("Standup in 5 minutes"), "{runs}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{runs}");
    }
    let edited: Value = serde_json::from_str(&stdout(&cli(&["cron", "edit", &id, "--every", "2h", "--json"]))).unwrap();
    assert_eq!(edited["schedule"]["everyMs"], 7_200_000);
    let off: Value = serde_json::from_str(&stdout(&cli(&["cron", "disable", &id, "--json"]))).unwrap();
    assert_eq!(off["enabled"], false);
    assert!(stdout(&cli(&["cron", "list"])).starts_with("0 jobs"));
    assert!(stdout(&cli(&["cron", "list", "--all"])).starts_with("1 jobs"));
    let on: Value = serde_json::from_str(&stdout(&cli(&["cron", "enable", &id, "--json"]))).unwrap();
    assert_eq!(on["enabled"], true);
    let shown: Value = serde_json::from_str(&stdout(&cli(&["cron", "show", &id, "--json"]))).unwrap();
    assert_eq!(shown["name"], "standup");
    assert!(cli(&["cron", "remove", &id]).status.success());
    let gone = cli(&["cron", "show", &id]);
    assert!(!gone.status.success() && stderr(&gone).contains("no cron job"), "{}", stderr(&gone));
}
