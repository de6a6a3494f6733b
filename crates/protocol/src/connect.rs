//! `connect` parameters (`ConnectParamsSchema`), parsed strictly: unknown fields, wrong types, empty
//! strings and values outside the enums are rejected with the JSON pointer of the offending field.
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Client ids the protocol knows (`client.id` enum).
pub const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];

/// Client modes the protocol knows (`client.mode` enum).
pub const CLIENT_MODES: &[&str] = &["webchat", "cli", "ui", "backend", "node", "worker", "probe", "test"];

/// The `connect` request's parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectParams {
    /// Oldest protocol the client speaks.
    pub min_protocol: u32,
    /// Newest protocol the client speaks.
    pub max_protocol: u32,
    /// Who the client is.
    pub client: ClientInfo,
    /// Capabilities the client declares.
    #[serde(default)]
    pub caps: Vec<String>,
    /// Commands a node serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    /// Computer-use declaration (opaque here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_use: Option<Value>,
    /// Worker-run declaration (opaque here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_runs: Option<Value>,
    /// Node permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<BTreeMap<String, bool>>,
    /// A node's PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_env: Option<String>,
    /// `operator` (default) or `node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Requested scopes, in the order the client signs them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Model-catalog subscription (opaque here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_catalog: Option<Value>,
    /// Signed device identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceParams>,
    /// Shared-secret or device-token credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthParams>,
    /// Client locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Client user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// `connect.client`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientInfo {
    /// One of [`CLIENT_IDS`].
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Client version.
    pub version: String,
    /// Client build id (≤ 96 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// Platform, e.g. `linux`.
    pub platform: String,
    /// Device family, e.g. `Linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    /// Hardware model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    /// IANA time zone (≤ 64 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// One of [`CLIENT_MODES`].
    pub mode: String,
    /// Per-install instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// `connect.device`: an Ed25519 identity and its signature over the challenge.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceParams {
    /// Hex SHA-256 of the raw public key.
    pub id: String,
    /// Base64url raw 32-byte public key.
    pub public_key: String,
    /// Base64url 64-byte signature.
    pub signature: String,
    /// Milliseconds since the epoch when the payload was signed.
    pub signed_at: u64,
    /// The challenge nonce.
    pub nonce: String,
}

/// `connect.auth`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthParams {
    /// Shared gateway token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Bootstrap token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    /// Token issued to a paired device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// Shared gateway password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Approval runtime token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_runtime_token: Option<String>,
    /// Agent runtime identity token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_runtime_identity_token: Option<String>,
}

impl ConnectParams {
    /// The role, defaulting to `operator`.
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("operator")
    }

    /// The token that a device signature covers: `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`.
    pub fn signed_token(&self) -> &str {
        let Some(auth) = &self.auth else { return "" };
        auth.token.as_deref().or(auth.device_token.as_deref()).or(auth.bootstrap_token.as_deref()).unwrap_or("")
    }
}

/// Deserialize `value` into `T`, turning serde's error into `at /json/pointer: reason`.
pub fn from_value_with_path<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let pointer = json_pointer(&err.path().to_string());
        format!("at {pointer}: {}", err.inner())
    })
}

fn json_pointer(serde_path: &str) -> String {
    if serde_path == "." || serde_path.is_empty() {
        return "/".to_string();
    }
    let mut out = String::new();
    for part in serde_path.split('.') {
        // serde_path_to_error renders sequence indices as `name[3]`.
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            let (head, tail) = rest.split_at(open);
            if !head.is_empty() {
                out.push('/');
                out.push_str(head);
            }
            let close = tail.find(']').unwrap_or(tail.len());
            out.push('/');
            out.push_str(&tail[1..close]);
            rest = tail.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

/// Parse and validate `connect` params. The error reads like `at /client/id: must be equal to one of
/// the allowed values`, to be prefixed with `invalid connect params: ` by the caller.
pub fn parse_connect_params(params: Option<&Value>) -> Result<ConnectParams, String> {
    let value = params.cloned().unwrap_or(Value::Null);
    if !value.is_object() {
        return Err("at /: must be object".to_string());
    }
    let p: ConnectParams = from_value_with_path(value)?;
    check(p.min_protocol >= 1, "/minProtocol", "must be >= 1")?;
    check(p.max_protocol >= 1, "/maxProtocol", "must be >= 1")?;
    check(CLIENT_IDS.contains(&p.client.id.as_str()), "/client/id", "must be equal to one of the allowed values")?;
    check(
        CLIENT_MODES.contains(&p.client.mode.as_str()),
        "/client/mode",
        "must be equal to one of the allowed values",
    )?;
    non_empty(&p.client.version, "/client/version")?;
    non_empty(&p.client.platform, "/client/platform")?;
    for (v, at) in [
        (&p.client.display_name, "/client/displayName"),
        (&p.client.build_id, "/client/buildId"),
        (&p.client.device_family, "/client/deviceFamily"),
        (&p.client.model_identifier, "/client/modelIdentifier"),
        (&p.client.time_zone, "/client/timeZone"),
        (&p.client.instance_id, "/client/instanceId"),
        (&p.role, "/role"),
    ] {
        if let Some(v) = v {
            non_empty(v, at)?;
        }
    }
    check(
        p.client.build_id.as_ref().is_none_or(|b| b.len() <= 96),
        "/client/buildId",
        "must NOT have more than 96 characters",
    )?;
    check(
        p.client.time_zone.as_ref().is_none_or(|t| t.len() <= 64),
        "/client/timeZone",
        "must NOT have more than 64 characters",
    )?;
    for (list, name) in [(Some(&p.caps), "caps"), (p.commands.as_ref(), "commands"), (p.scopes.as_ref(), "scopes")] {
        for (i, item) in list.into_iter().flatten().enumerate() {
            non_empty(item, &format!("/{name}/{i}"))?;
        }
    }
    if let Some(d) = &p.device {
        for (v, at) in [
            (&d.id, "/device/id"),
            (&d.public_key, "/device/publicKey"),
            (&d.signature, "/device/signature"),
            (&d.nonce, "/device/nonce"),
        ] {
            non_empty(v, at)?;
        }
    }
    Ok(p)
}

fn check(ok: bool, at: &str, msg: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("at {at}: {msg}"))
    }
}

fn non_empty(v: &str, at: &str) -> Result<(), String> {
    check(!v.is_empty(), at, "must NOT have fewer than 1 characters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cli() -> Value {
        json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"cli","instanceId":"x"},"caps":[],"auth":{"token":"t"},"role":"operator","scopes":["operator.read"]})
    }

    #[test]
    fn accepts_the_real_cli_connect() {
        let p = parse_connect_params(Some(&cli())).unwrap();
        assert_eq!(p.client.id, "cli");
        assert_eq!(p.signed_token(), "t");
        assert_eq!(p.role(), "operator");
    }

    #[test]
    fn names_the_offending_field() {
        let mut v = cli();
        v["client"]["id"] = json!("nope");
        assert_eq!(
            parse_connect_params(Some(&v)).unwrap_err(),
            "at /client/id: must be equal to one of the allowed values"
        );
        let mut v = cli();
        v["client"]["bogus"] = json!(1);
        let e = parse_connect_params(Some(&v)).unwrap_err();
        assert!(e.starts_with("at /client/bogus: unknown field `bogus`"), "{e}");
        let mut v = cli();
        v["minProtocol"] = json!("4");
        let e = parse_connect_params(Some(&v)).unwrap_err();
        assert!(e.starts_with("at /minProtocol: invalid type"), "{e}");
        let mut v = cli();
        v["scopes"] = json!(["operator.read", ""]);
        assert_eq!(parse_connect_params(Some(&v)).unwrap_err(), "at /scopes/1: must NOT have fewer than 1 characters");
        assert_eq!(parse_connect_params(None).unwrap_err(), "at /: must be object");
    }

    #[test]
    fn json_pointer_handles_indices() {
        assert_eq!(json_pointer("scopes[1]"), "/scopes/1");
        assert_eq!(json_pointer("client.id"), "/client/id");
        assert_eq!(json_pointer("."), "/");
    }
}
