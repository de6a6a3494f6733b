//! The error shape of a `res` frame and the protocol's error codes.
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The error codes of protocol v4 (`ErrorCodes` in the OpenClaw schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The client is not linked.
    NotLinked,
    /// The device is not paired (or identity is required).
    NotPaired,
    /// An agent run timed out.
    AgentTimeout,
    /// The request was malformed or refused (most errors).
    InvalidRequest,
    /// The caller lacks a scope or role.
    Forbidden,
    /// An approval id was not found.
    ApprovalNotFound,
    /// The gateway cannot serve this right now.
    Unavailable,
}

/// `ErrorShape`: `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorShape {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable reason; names the offending field where there is one.
    pub message: String,
    /// Extra machine-readable detail, e.g. `{code: "MISSING_SCOPE", ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Whether retrying the same request may succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// When a retry may succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// An error with a code and message only.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, retryable: None, retry_after_ms: None }
    }

    /// `INVALID_REQUEST` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// `UNAVAILABLE` with a message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// Attach `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Attach `retryAfterMs` (and mark retryable).
    pub fn with_retry_after(mut self, ms: u64) -> Self {
        self.retryable = Some(true);
        self.retry_after_ms = Some(ms);
        self
    }
}
