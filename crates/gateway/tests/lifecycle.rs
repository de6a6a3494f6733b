//! Close sequence, shutdown broadcast, token generation and hot reload.
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn close_broadcasts_shutdown_then_closes_clients_with_1012() {
    let mut gw = TestGateway::start().await;
    let (mut a, _) = connect_cli(&gw.url()).await;
    let (mut b, _) = connect_cli(&gw.url()).await;
    let report = gw.close("gateway restarting", Some(1500)).await;
    assert!(report.warnings.is_empty(), "{report:?}");
    for c in [&mut a, &mut b] {
        let closed = c.closed().await;
        assert_eq!(closed, Closed::Code(1012, "service restart".into()));
        let shutdown = c.events.iter().find(|e| e["event"] == "shutdown").expect("shutdown event before close");
        assert_eq!(shutdown["payload"], json!({"reason": "gateway restarting", "restartExpectedMs": 1500}));
        assert!(shutdown["seq"].as_u64().unwrap() >= 1);
    }
    // The port is released: nothing accepts there any more.
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}

#[tokio::test]
async fn the_close_sequence_has_named_steps() {
    let mut gw = TestGateway::start().await;
    let seq = gw.running.take().unwrap().shutdown_sequence("gateway stopping", None);
    assert_eq!(
        seq.names(),
        vec![
            "config-reloader",
            "session-maintenance",
            "stop-accepting",
            "gateway:shutdown",
            "agent-runs",
            "cron",
            "session-end-drain",
            "channels",
            "broadcast-shutdown",
            "close-clients",
            "plugins",
            "http-server"
        ]
    );
    assert!(seq.run().await.warnings.is_empty());
}

#[tokio::test]
async fn a_missing_token_is_generated_once_and_stored_privately() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("homarus.json");
    let mut opts = homarus_gateway::GatewayOptions::new(dir.path().to_path_buf(), cfg_path.clone());
    opts.port = Some(0);
    let first =
        homarus_gateway::Gateway::start(opts.clone(), homarus_config::load_file(&cfg_path).unwrap()).await.unwrap();
    let token = first.generated_token.clone().expect("generated on first start");
    first.close("test", None).await;
    let stored = std::fs::read_to_string(dir.path().join("gateway-token")).unwrap();
    assert_eq!(stored.trim(), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("gateway-token")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let second = homarus_gateway::Gateway::start(opts, homarus_config::load_file(&cfg_path).unwrap()).await.unwrap();
    assert!(second.generated_token.is_none(), "reused, not regenerated or reprinted");
    second.close("test", None).await;
}

#[tokio::test]
async fn lan_bind_without_auth_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("homarus.json");
    std::fs::write(&cfg_path, r#"{gateway: {bind: "lan", auth: {mode: "none"}}}"#).unwrap();
    let mut opts = homarus_gateway::GatewayOptions::new(dir.path().to_path_buf(), cfg_path.clone());
    opts.port = Some(0);
    let err = homarus_gateway::Gateway::start(opts, homarus_config::load_file(&cfg_path).unwrap()).await.err().unwrap();
    assert!(err.to_string().starts_with("refusing to listen on 0.0.0.0:0 without authentication"), "{err}");
}

/// Wait (bounded) until `check` holds, re-evaluating after each status call.
async fn wait_for(mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "condition not reached within 10s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn file_edits_reload_live_and_bad_edits_keep_the_running_config() {
    let gw = TestGateway::start_with(Some(&format!(
        r#"{{gateway: {{auth: {{token: "{TOKEN}"}}, reload: {{debounceMs: 50}}}}}}"#
    )))
    .await;
    let url = gw.url();
    // A bad edit is rejected and reported; the old token keeps working.
    std::fs::write(gw.config_path(), "{gateway: {port: \"abc\"}}").unwrap();
    let (mut admin, _) = connect_cli(&url).await;
    wait_for(async || {
        let s = admin.call("status", json!({})).await;
        s["gateway"]["lastReloadError"]
            .as_str()
            .is_some_and(|e| e.contains("gateway.port: expected an integer 1-65535"))
    })
    .await;
    let (_c, hello) = connect_cli(&url).await;
    assert_eq!(hello["type"], "hello-ok");

    // A good edit changing the token applies without a restart.
    std::fs::write(gw.config_path(), r#"{gateway: {auth: {token: "rotated-token"}, reload: {debounceMs: 50}}}"#)
        .unwrap();
    wait_for(async || {
        let mut c = Client::open(&url, None).await;
        c.request("connect", cli_connect("rotated-token", &["operator.read"])).await["ok"] == true
    })
    .await;
    let mut c = Client::open(&url, None).await;
    let res = c.request("connect", cli_connect(TOKEN, &["operator.read"])).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH", "the old token no longer works");
}

#[tokio::test]
async fn ticks_arrive_at_the_advertised_interval_with_rising_seq() {
    let gw = TestGateway::start_tuned(None, |o| o.tick_interval = Duration::from_millis(100)).await;
    let (mut c, hello) = connect_cli(&gw.url()).await;
    assert_eq!(hello["policy"]["tickIntervalMs"], 100);
    let started = Instant::now();
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let frame = c.recv().await.expect("socket open");
        assert_eq!(frame["event"], "tick", "{frame}"); // validated against TickEventSchema by the harness
        seqs.push(frame["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(started.elapsed() >= Duration::from_millis(250), "ticks are not sent early");
}

#[tokio::test]
async fn a_silent_client_is_closed_at_the_handshake_timeout() {
    let gw = TestGateway::start_tuned(None, |o| o.handshake_timeout = Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut c = Client::open(&gw.url(), None).await;
    assert_eq!(c.closed().await, Closed::Code(1008, "handshake timeout".into()));
    assert!(started.elapsed() >= Duration::from_millis(200), "not closed before the timeout");
}

#[tokio::test]
async fn the_server_pings_idle_clients() {
    use futures_util::StreamExt;
    let gw = TestGateway::start_tuned(None, |o| o.ping_interval = Duration::from_millis(100)).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let ping = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match c.ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_))) => return true,
                Some(Ok(_)) => continue,
                _ => return false,
            }
        }
    })
    .await;
    assert_eq!(ping, Ok(true), "a WebSocket ping within the interval");
}
