//! The methods of the foundation, their payload schemas, scopes and config editing.
mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn read_methods_return_schema_valid_truthful_payloads() {
    let gw = TestGateway::start().await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let health = c.call("health", json!({})).await;
    assert_eq!(health["ok"], true);
    assert_eq!(health["agents"], json!([]), "no agent runtime yet, and health says so");

    let status = c.call("status", Value::Null).await;
    assert_eq!(status["gateway"]["listen"], gw.addr.to_string());
    assert_eq!(status["gateway"]["connections"], 1);
    assert_eq!(status["gateway"]["authMode"], "token");

    let presence = c.call("system-presence", json!({})).await;
    let entries = presence.as_array().unwrap();
    assert_eq!(entries[0]["mode"], "gateway");
    assert!(entries.iter().any(|e| e["clientId"] == "cli"), "{presence}");
    for e in entries {
        assert_payload_schema("PresenceEntrySchema", e);
    }

    let schema = c.call("config.schema", json!({})).await;
    assert_payload_schema("ConfigSchemaResponseSchema", &schema);
    assert!(schema["uiHints"]["gateway.port"]["help"].as_str().unwrap().contains("port"));
    let bad = c.request("config.schema", json!({"x": 1})).await;
    assert!(bad["error"]["message"].as_str().unwrap().contains("unknown field `x`"), "{bad}");
}

#[tokio::test]
async fn logs_tail_reads_the_log_file_by_cursor() {
    let gw = TestGateway::start().await;
    let log = gw.dir.path().join("logs/homarus.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "{\"msg\":\"one\"}\n{\"msg\":\"two\"}\n").unwrap();
    let (mut c, _) = connect_cli(&gw.url()).await;
    let first = c.call("logs.tail", json!({"limit": 10})).await;
    assert_payload_schema("LogsTailResultSchema", &first);
    assert_eq!(first["lines"], json!(["{\"msg\":\"one\"}", "{\"msg\":\"two\"}"]));
    use std::io::Write;
    writeln!(std::fs::OpenOptions::new().append(true).open(&log).unwrap(), "{{\"msg\":\"three\"}}").unwrap();
    let next = c.call("logs.tail", json!({"cursor": first["cursor"]})).await;
    assert_eq!(next["lines"], json!(["{\"msg\":\"three\"}"]));
    let bad = c.request("logs.tail", json!({"limit": 0})).await;
    assert_eq!(bad["error"]["message"], "invalid params: at /limit: must be 1-5000");
    let bad = c.request("logs.tail", json!({"cursor": "x"})).await;
    assert!(bad["error"]["message"].as_str().unwrap().starts_with("invalid params: at /cursor: invalid type"), "{bad}");
}

#[tokio::test]
async fn scopes_are_enforced_per_method() {
    let gw = TestGateway::start().await;
    let mut c = Client::open(&gw.url(), None).await;
    c.request("connect", cli_connect(TOKEN, &["operator.read"])).await;
    assert_eq!(c.call("config.get", json!({})).await["exists"], false);
    let res = c.request("config.patch", json!({"raw": "{}"})).await;
    assert_eq!(res["error"]["code"], "FORBIDDEN");
    assert_eq!(res["error"]["details"]["missingScope"], "operator.admin");
    let res = c.request("device.pair.list", json!({})).await;
    assert_eq!(res["error"]["details"]["missingScope"], "operator.pairing");
    let res = c.request("foo.bar", json!({})).await;
    assert_eq!(res["error"], json!({"code": "INVALID_REQUEST", "message": "unknown method: foo.bar"}));

    let mut w = Client::open(&gw.url(), None).await;
    w.request("connect", cli_connect(TOKEN, &["operator.write"])).await;
    assert_eq!(w.call("status", json!({})).await["runtime"], "homarus", "write implies read");
}

#[tokio::test]
async fn config_patch_and_apply_validate_guard_and_redact() {
    let gw = TestGateway::start_with(Some(&format!(
        "// comment kept? no: edits rewrite the file as JSON\n{{gateway: {{auth: {{token: \"{TOKEN}\"}}}}}}\n"
    )))
    .await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let got = c.call("config.get", json!({})).await;
    assert_eq!(got["exists"], true);
    assert_eq!(got["parsed"]["gateway"]["auth"]["token"], "__OPENCLAW_REDACTED__");
    assert!(!got["raw"].as_str().unwrap().contains(TOKEN), "the raw text is redacted too");
    let hash = got["hash"].as_str().unwrap().to_string();

    let res = c.request("config.patch", json!({"raw": "{gateway:{auth:{rateLimit:{maxAttempts:5}}}}"})).await;
    assert_eq!(res["error"]["details"]["code"], "CONFIG_BASE_HASH_REQUIRED");
    let res = c.request("config.patch", json!({"raw": "{}", "baseHash": "stale"})).await;
    assert_eq!(res["error"]["details"]["code"], "CONFIG_BASE_HASH_MISMATCH");
    let res = c.request("config.patch", json!({"raw": "{gateway:{port:\"abc\"}}", "baseHash": hash})).await;
    assert_eq!(res["error"]["message"], "invalid config: gateway.port: expected an integer 1-65535, found \"abc\"");
    assert_eq!(res["error"]["details"]["path"], "gateway.port");

    let ok = c
        .call(
            "config.patch",
            json!({"raw": "{gateway:{auth:{rateLimit:{maxAttempts:5}}, port: 18999}}", "baseHash": hash}),
        )
        .await;
    assert_eq!(ok["restartRequired"], json!(["gateway.port"]));
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(gw.config_path()).unwrap()).unwrap();
    assert_eq!(on_disk["gateway"]["auth"]["token"], TOKEN, "the redacted secret was kept, not overwritten");
    assert_eq!(on_disk["gateway"]["auth"]["rateLimit"]["maxAttempts"], 5);

    // apply: round-trip the redacted document (as the Control UI does) with a change.
    let got = c.call("config.get", json!({})).await;
    let mut doc = got["parsed"].clone();
    doc["gateway"]["auth"]["rateLimit"]["maxAttempts"] = json!(7);
    c.call("config.apply", json!({"raw": doc.to_string(), "baseHash": got["hash"]})).await;
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(gw.config_path()).unwrap()).unwrap();
    assert_eq!(on_disk["gateway"]["auth"]["token"], TOKEN);
    assert_eq!(on_disk["gateway"]["auth"]["rateLimit"]["maxAttempts"], 7);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(gw.config_path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a config holding secrets is private");
    }
}
