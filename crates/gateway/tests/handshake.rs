//! The v4 handshake against real sockets: challenge, connect, negotiation, auth, refusals and close
//! codes. Every frame received is validated against OpenClaw's schemas by the harness.
mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn cli_connect_gets_a_schema_valid_hello_with_only_implemented_features() {
    let gw = TestGateway::start().await;
    let (_c, hello) = connect_cli(&gw.url()).await;
    assert_eq!(hello["protocol"], 4);
    let methods: Vec<&str> =
        hello["features"]["methods"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(methods, homarus_gateway::IMPLEMENTED_METHODS);
    assert_eq!(hello["policy"]["maxPayload"], 26214400);
    assert_eq!(hello["policy"]["maxBufferedBytes"], 52428800);
    assert_eq!(hello["policy"]["tickIntervalMs"], 30000);
    assert_eq!(hello["auth"]["scopes"], json!(ALL_SCOPES));
    assert!(hello["snapshot"]["configPath"].is_string(), "admins see the config path");
}

#[tokio::test]
async fn first_request_must_be_connect() {
    let gw = TestGateway::start().await;
    let mut c = Client::open(&gw.url(), None).await;
    let res = c.request("health", json!({})).await;
    assert_eq!(res["error"]["message"], "invalid handshake: first request must be connect");
    assert!(matches!(c.closed().await, Closed::Code(1008, _)));
}

#[tokio::test]
async fn non_json_or_oversized_first_frames_close_the_socket() {
    let gw = TestGateway::start().await;
    let mut c = Client::open(&gw.url(), None).await;
    c.send_text("this is not json".into()).await;
    assert!(matches!(c.closed().await, Closed::Code(1008, _)));

    let mut c = Client::open(&gw.url(), None).await;
    let big = json!({"type":"req","id":"1","method":"connect","params":{"pad":"x".repeat(70 * 1024)}});
    c.send_text(big.to_string()).await;
    assert!(matches!(c.closed().await, Closed::Code(1009, _)), "pre-auth frames over 64 KiB are refused");
}

#[tokio::test]
async fn malformed_connect_params_name_the_field() {
    let gw = TestGateway::start().await;
    let mut c = Client::open(&gw.url(), None).await;
    let mut params = cli_connect(TOKEN, &["operator.read"]);
    params["client"]["id"] = json!("not-a-client");
    let res = c.request("connect", params).await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(
        res["error"]["message"],
        "invalid connect params: at /client/id: must be equal to one of the allowed values"
    );
    let mut c = Client::open(&gw.url(), None).await;
    let mut params = cli_connect(TOKEN, &["operator.read"]);
    params["surprise"] = json!(true);
    let res = c.request("connect", params).await;
    assert!(res["error"]["message"].as_str().unwrap().contains("at /surprise: unknown field"), "{res}");
}

#[tokio::test]
async fn protocol_negotiation_needs_4_except_for_probes() {
    let gw = TestGateway::start().await;
    let mut c = Client::open(&gw.url(), None).await;
    let mut params = cli_connect(TOKEN, &["operator.read"]);
    params["minProtocol"] = json!(3);
    params["maxProtocol"] = json!(3);
    let res = c.request("connect", params).await;
    assert_eq!(res["error"]["message"], "protocol mismatch");
    assert_eq!(res["error"]["details"]["code"], "PROTOCOL_MISMATCH");
    assert_eq!(res["error"]["details"]["expectedProtocol"], 4);
    assert!(matches!(c.closed().await, Closed::Code(1002, _)));

    // A probe may speak 3; it gets no scopes, so health works and status is forbidden.
    let mut c = Client::open(&gw.url(), None).await;
    let mut params = cli_connect(TOKEN, &["operator.read"]);
    params["minProtocol"] = json!(3);
    params["client"]["id"] = json!("openclaw-probe");
    params["client"]["mode"] = json!("probe");
    let hello = c.request("connect", params).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]));
    assert_eq!(c.call("health", json!({})).await["ok"], true);
    let res = c.request("status", json!({})).await;
    assert_eq!(res["error"]["code"], "FORBIDDEN");
    assert_eq!(res["error"]["message"], "missing scope: operator.read");
    assert_eq!(
        res["error"]["details"],
        json!({"code":"MISSING_SCOPE","missingScope":"operator.read","requiredScopes":["operator.read"]})
    );
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_refused() {
    let gw = TestGateway::start().await;
    let mut c = Client::open(&gw.url(), None).await;
    let res = c.request("connect", cli_connect("wrong", &["operator.read"])).await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    assert!(matches!(c.closed().await, Closed::Code(1008, _)));

    let mut c = Client::open(&gw.url(), None).await;
    let mut params = cli_connect(TOKEN, &["operator.read"]);
    params.as_object_mut().unwrap().remove("auth");
    let res = c.request("connect", params).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED");
    assert_eq!(res["error"]["details"]["code"], "DEVICE_IDENTITY_REQUIRED");

    // The TUI without a device identity is refused (it always signs).
    let mut c = Client::open(&gw.url(), None).await;
    let mut params = cli_connect(TOKEN, &["operator.read"]);
    params["client"]["id"] = json!("openclaw-tui");
    params["client"]["mode"] = json!("ui");
    let res = c.request("connect", params).await;
    assert_eq!(res["error"]["details"]["code"], "CONTROL_UI_DEVICE_IDENTITY_REQUIRED");
}

#[tokio::test]
async fn failed_auth_from_a_remote_address_is_rate_limited_but_loopback_is_not() {
    let gw = TestGateway::start_with(Some(&format!(
        r#"{{gateway: {{auth: {{token: "{TOKEN}", rateLimit: {{maxAttempts: 3}}}}, trustedProxies: ["127.0.0.1"]}}}}"#
    )))
    .await;
    let mut last = json!(null);
    for _ in 0..4 {
        let mut c = Client::open(&gw.url(), Some("192.0.2.10")).await;
        last = c.request("connect", cli_connect("wrong", &["operator.read"])).await;
    }
    assert_eq!(last["error"]["details"]["code"], "AUTH_RATE_LIMITED", "{last}");
    assert!(last["error"]["retryAfterMs"].as_u64().unwrap() > 0);
    // Even the right token is refused while locked out...
    let mut c = Client::open(&gw.url(), Some("192.0.2.10")).await;
    let res = c.request("connect", cli_connect(TOKEN, &["operator.read"])).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_RATE_LIMITED");
    // ...but other addresses and loopback are unaffected.
    for _ in 0..5 {
        let mut c = Client::open(&gw.url(), None).await;
        c.request("connect", cli_connect("wrong", &["operator.read"])).await;
    }
    let (_c, hello) = connect_cli(&gw.url()).await;
    assert_eq!(hello["type"], "hello-ok");
}

#[tokio::test]
async fn a_malformed_frame_from_one_client_never_affects_another() {
    let gw = TestGateway::start().await;
    let (mut good, _) = connect_cli(&gw.url()).await;
    let (mut bad, _) = connect_cli(&gw.url()).await;
    bad.send_text("{not json".into()).await;
    assert!(matches!(bad.closed().await, Closed::Code(1008, _)));
    let (mut bad2, _) = connect_cli(&gw.url()).await;
    let res = bad2.request("health", json!("not an object")).await;
    assert_eq!(res["ok"], false, "an invalid request with an id is answered, not fatal");
    assert_eq!(good.call("health", json!({})).await["ok"], true);
}

#[tokio::test]
async fn a_frame_over_max_payload_closes_the_connection() {
    let gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let big = json!({"type":"req","id":"1","method":"health","params":{"pad":"x".repeat(26 * 1024 * 1024)}});
    // The server may close while the frame is still being written; either way the socket ends.
    let _ =
        futures_util::SinkExt::send(&mut c.ws, tokio_tungstenite::tungstenite::Message::Text(big.to_string().into()))
            .await;
    assert_ne!(c.closed().await, Closed::Code(1000, String::new()));
    let (mut other, _) = connect_cli(&gw.url()).await;
    assert_eq!(other.call("health", json!({})).await["ok"], true);
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_at_max_buffered_bytes() {
    let gw = TestGateway::start().await;
    let log = gw.dir.path().join("logs/homarus.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let line = format!("{{\"msg\":\"{}\"}}\n", "y".repeat(1000));
    std::fs::write(&log, line.repeat(1000)).unwrap(); // ~1 MB: each logs.tail answer is ~1 MB
    let (mut c, _) = connect_cli(&gw.url()).await;
    // Ask for far more than 50 MiB of answers without reading any of them.
    let mut sent = 0;
    for i in 0..120 {
        let req =
            json!({"type":"req","id":format!("t{i}"),"method":"logs.tail","params":{"maxBytes":1000000,"limit":5000}});
        let send = futures_util::SinkExt::send(
            &mut c.ws,
            tokio_tungstenite::tungstenite::Message::Text(req.to_string().into()),
        );
        // If the server never drops us, both sides end up blocked on full sockets: fail, don't hang.
        match tokio::time::timeout(std::time::Duration::from_secs(20), send).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => panic!("the slow client was never dropped: sends blocked for 20 s"),
        }
        sent += 1;
    }
    assert!(sent > 60, "sent {sent}");
    // Now read: the connection must end before all 120 answers arrive.
    let mut answered = 0;
    while let Some(frame) = c.recv().await {
        if frame["type"] == "res" {
            answered += 1;
        }
    }
    assert!(answered < 120, "a slow client was never dropped ({answered} answers)");
    let (mut other, _) = connect_cli(&gw.url()).await;
    assert_eq!(other.call("health", json!({})).await["ok"], true);
}

#[tokio::test]
async fn password_mode_checks_the_password() {
    let gw =
        TestGateway::start_with(Some(r#"{gateway: {auth: {mode: "password", password: "hunter2-but-longer"}}}"#)).await;
    let mut params = cli_connect("ignored", &["operator.read"]);
    params["auth"] = json!({"password": "nope"});
    let mut c = Client::open(&gw.url(), None).await;
    let res = c.request("connect", params.clone()).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_PASSWORD_MISMATCH");
    params["auth"] = json!({"password": "hunter2-but-longer"});
    let mut c = Client::open(&gw.url(), None).await;
    let hello = c.request("connect", params).await;
    assert_eq!(hello["payload"]["auth"]["method"], "password", "{hello}");
}
