//! Frames on the wire: one JSON object per WebSocket text message, discriminated by `type`.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ErrorShape;

/// A client request: `{type:"req", id, method, params?, traceparent?, expectedProfileId?}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestFrame {
    /// Always `"req"`; kept so the value round-trips.
    #[serde(rename = "type")]
    pub kind: ReqTag,
    /// Caller-chosen id, echoed in the response. Non-empty.
    pub id: String,
    /// Method name. Non-empty.
    pub method: String,
    /// Method parameters; absent and `null` mean the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// W3C trace context, at most 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Profile the client expects to act as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_profile_id: Option<String>,
}

/// The literal `"req"` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ReqTag {
    /// `"req"`.
    #[serde(rename = "req")]
    Req,
}

/// A server response: `{type:"res", id, ok, payload?, error?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseFrame<'a> {
    /// Always `"res"`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The request id being answered.
    pub id: &'a str,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result, when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a Value>,
    /// The error, when not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a ErrorShape>,
}

impl<'a> ResponseFrame<'a> {
    /// Serialize a success response.
    pub fn ok_json(id: &str, payload: &Value) -> String {
        let frame = ResponseFrame { kind: "res", id, ok: true, payload: Some(payload), error: None };
        serde_json::to_string(&frame).unwrap_or_default()
    }

    /// Serialize a failure response.
    pub fn err_json(id: &str, error: &ErrorShape) -> String {
        let frame = ResponseFrame { kind: "res", id, ok: false, payload: None, error: Some(error) };
        serde_json::to_string(&frame).unwrap_or_default()
    }
}

/// A server event: `{type:"event", event, payload?, seq?, stateVersion?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFrame<'a> {
    /// Always `"event"`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Event name, e.g. `tick`.
    pub event: &'a str,
    /// Event body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a Value>,
    /// Per-connection sequence number; absent only on `connect.challenge`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl<'a> EventFrame<'a> {
    /// Serialize an event with an optional per-connection `seq`.
    pub fn to_json(event: &str, payload: &Value, seq: Option<u64>) -> String {
        let frame = EventFrame { kind: "event", event, payload: Some(payload), seq };
        serde_json::to_string(&frame).unwrap_or_default()
    }
}

/// Why a client frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The text is not JSON at all.
    #[error("invalid frame: not JSON ({0})")]
    NotJson(String),
    /// JSON, but not a valid request frame.
    #[error("invalid frame: {0}")]
    Invalid(String),
}

/// Parse one client text frame as a strict request frame.
pub fn parse_client_frame(text: &str) -> Result<RequestFrame, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let Some(obj) = value.as_object() else {
        return Err(FrameError::Invalid("at /: must be object".into()));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("req") => {}
        Some(other) => return Err(FrameError::Invalid(format!("at /type: unsupported frame type \"{other}\""))),
        None => return Err(FrameError::Invalid("at /type: must be \"req\"".into())),
    }
    let frame: RequestFrame = crate::connect::from_value_with_path(value).map_err(FrameError::Invalid)?;
    if frame.id.is_empty() {
        return Err(FrameError::Invalid("at /id: must NOT have fewer than 1 characters".into()));
    }
    if frame.method.is_empty() {
        return Err(FrameError::Invalid("at /method: must NOT have fewer than 1 characters".into()));
    }
    if frame.traceparent.as_ref().is_some_and(|t| t.len() > 128) {
        return Err(FrameError::Invalid("at /traceparent: must NOT have more than 128 characters".into()));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request() {
        let f = parse_client_frame(r#"{"type":"req","id":"1","method":"health","params":{}}"#).unwrap();
        assert_eq!(f.method, "health");
        assert_eq!(f.params, Some(serde_json::json!({})));
    }

    #[test]
    fn rejects_non_json_unknown_fields_and_empty_ids() {
        assert!(matches!(parse_client_frame("nope"), Err(FrameError::NotJson(_))));
        let e = parse_client_frame(r#"{"type":"req","id":"1","method":"m","extra":1}"#).unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
        let e = parse_client_frame(r#"{"type":"req","id":"","method":"m"}"#).unwrap_err();
        assert!(e.to_string().contains("/id"), "{e}");
        let e = parse_client_frame(r#"{"type":"event","event":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("/type"), "{e}");
        let e = parse_client_frame(r#"[1,2]"#).unwrap_err();
        assert!(e.to_string().contains("must be object"), "{e}");
    }
}
