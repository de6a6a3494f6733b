//! Device identity: Ed25519 v2/v3 signatures, silent loopback pairing with a persisted device token,
//! and operator approval for remote devices.
mod common;

use common::*;
use serde_json::{json, Value};

const REMOTE: &str = "192.0.2.44";

fn proxied_config() -> String {
    format!(r#"{{gateway: {{auth: {{token: "{TOKEN}"}}, trustedProxies: ["127.0.0.1"]}}}}"#)
}

async fn connect_device(
    url: &str,
    dev: &Device,
    version: &str,
    auth: Value,
    signed: &str,
    xff: Option<&str>,
) -> (Client, Value) {
    let mut c = Client::open(url, xff).await;
    let params = dev.connect(version, &c.nonce(), auth, signed);
    let res = c.request("connect", params).await;
    (c, res)
}

#[tokio::test]
async fn v2_and_v3_devices_pair_silently_on_loopback_and_reconnect_with_their_token() {
    let gw = TestGateway::start().await;
    for (seed, version) in [(1u8, "v3"), (2u8, "v2")] {
        let dev = Device::new(seed);
        let (_c, res) = connect_device(&gw.url(), &dev, version, json!({"token": TOKEN}), TOKEN, None).await;
        assert_eq!(res["ok"], true, "{version}: {res}");
        let token = res["payload"]["auth"]["deviceToken"].as_str().expect("a device token is issued").to_string();
        assert!(res["payload"]["auth"]["issuedAtMs"].as_i64().is_some());

        // Reconnect with only the device token, as `auth.deviceToken` (TUI) ...
        let (mut c, res) = connect_device(&gw.url(), &dev, version, json!({"deviceToken": token}), &token, None).await;
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(res["payload"]["auth"]["method"], "device-token");
        assert!(res["payload"]["auth"].get("deviceToken").is_none(), "no new token on a device-token reconnect");
        assert_eq!(c.call("status", json!({})).await["runtime"], "homarus");
        // ... or as `auth.token` (openclaw-node).
        let (_c, res) = connect_device(&gw.url(), &dev, version, json!({"token": token}), &token, None).await;
        assert_eq!(res["payload"]["auth"]["method"], "device-token", "{res}");
    }
    let (mut admin, _) = connect_cli(&gw.url()).await;
    let list = admin.call("device.pair.list", json!({})).await;
    let paired = list["paired"].as_array().unwrap();
    assert_eq!(paired.len(), 2);
    assert!(paired.iter().all(|d| d["approvedVia"] == "silent" && d.get("tokenHash").is_none()));
}

#[tokio::test]
async fn bad_signatures_nonces_and_tokens_are_refused_with_their_codes() {
    let gw = TestGateway::start().await;
    let dev = Device::new(3);
    // Signed over a different token than the one sent: the signature does not verify.
    let (mut c, res) = connect_device(&gw.url(), &dev, "v3", json!({"token": TOKEN}), "other", None).await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_INVALID", "{res}");
    assert_eq!(res["error"]["details"]["reason"], "device-signature");
    assert!(matches!(c.closed().await, Closed::Code(1008, _)));

    let mut c = Client::open(&gw.url(), None).await;
    let params = dev.connect("v3", "not-the-challenge-nonce", json!({"token": TOKEN}), TOKEN);
    let res = c.request("connect", params).await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_AUTH_NONCE_MISMATCH");

    let mut c = Client::open(&gw.url(), None).await;
    let mut params = dev.connect("v3", &c.nonce(), json!({"token": TOKEN}), TOKEN);
    params["device"]["id"] = json!("0".repeat(64));
    let res = c.request("connect", params).await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_AUTH_DEVICE_ID_MISMATCH");

    // A paired device presenting a wrong device token (and no shared token) is refused.
    let (_c, res) = connect_device(&gw.url(), &dev, "v3", json!({"token": TOKEN}), TOKEN, None).await;
    assert_eq!(res["ok"], true);
    let (_c, res) = connect_device(&gw.url(), &dev, "v3", json!({"deviceToken": "forged"}), "forged", None).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{res}");
}

#[tokio::test]
async fn remote_devices_wait_for_approval_then_receive_a_token() {
    let gw = TestGateway::start_with(Some(&proxied_config())).await;
    let dev = Device::new(9);
    let (mut admin, _) = connect_cli(&gw.url()).await;

    let (_c, res) = connect_device(&gw.url(), &dev, "v3", json!({"token": TOKEN}), TOKEN, Some(REMOTE)).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED");
    let request_id = res["error"]["details"]["requestId"].as_str().unwrap().to_string();

    let list = admin.call("device.pair.list", json!({})).await;
    assert_eq!(list["pending"][0]["requestId"], request_id.as_str());
    assert_eq!(list["pending"][0]["deviceId"], dev.id());
    assert_eq!(list["pending"][0]["remoteIp"], REMOTE);
    assert!(admin.events.iter().any(|e| e["event"] == "device.pair.requested"), "pairing admins are told");

    let bad = admin.request("device.pair.approve", json!({"requestId": "nope"})).await;
    assert!(bad["error"]["message"].as_str().unwrap().contains("unknown pairing request: nope"));
    let approved = admin.call("device.pair.approve", json!({"requestId": request_id})).await;
    assert_eq!(approved["device"]["status"], "paired");

    let (mut c, res) = connect_device(&gw.url(), &dev, "v3", json!({"token": TOKEN}), TOKEN, Some(REMOTE)).await;
    assert_eq!(res["ok"], true, "{res}");
    let token = res["payload"]["auth"]["deviceToken"].as_str().expect("token issued after approval").to_string();
    assert_eq!(c.call("health", json!({})).await["ok"], true);
    let (_c, res) = connect_device(&gw.url(), &dev, "v3", json!({"deviceToken": token}), &token, Some(REMOTE)).await;
    assert_eq!(res["payload"]["auth"]["method"], "device-token");

    // Reject and remove.
    let other = Device::new(10);
    let (_c, res) = connect_device(&gw.url(), &other, "v2", json!({"token": TOKEN}), TOKEN, Some(REMOTE)).await;
    let rid = res["error"]["details"]["requestId"].as_str().unwrap().to_string();
    admin.call("device.pair.reject", json!({"requestId": rid})).await;
    admin.call("device.pair.remove", json!({"deviceId": dev.id()})).await;
    let list = admin.call("device.pair.list", json!({})).await;
    assert_eq!(list, json!({"pending": [], "paired": []}));
}

#[tokio::test]
async fn a_device_less_remote_cli_gets_no_scopes() {
    let gw = TestGateway::start_with(Some(&proxied_config())).await;
    let mut c = Client::open(&gw.url(), Some(REMOTE)).await;
    let hello = c.request("connect", cli_connect(TOKEN, ALL_SCOPES)).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]));
    let res = c.request("device.pair.list", json!({})).await;
    assert_eq!(res["error"]["details"]["missingScope"], "operator.pairing");
}
