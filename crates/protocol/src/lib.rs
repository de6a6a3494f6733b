//! The OpenClaw gateway protocol (v4) as Rust types: frames, `connect` parameters, error shapes,
//! operator scopes and device-signature verification.
//!
//! This crate does no I/O. It turns bytes into validated values and back, and every rejection is an
//! error that names what was wrong and where (a JSON pointer into the frame), so the gateway can pass
//! it to the client unchanged.
mod connect;
mod constants;
mod device;
mod error;
mod frame;
mod scope;
pub mod session_key;

pub use connect::{from_value_with_path, parse_connect_params, AuthParams, ClientInfo, ConnectParams, DeviceParams};
pub use constants::*;
pub use device::{device_id_for_public_key, verify_device_signature, DeviceAuthError, SignatureVersion};
pub use error::{ErrorCode, ErrorShape};
pub use frame::{parse_client_frame, EventFrame, FrameError, RequestFrame, ResponseFrame};
pub use scope::{required_scopes, scopes_satisfy, Scope, ScopeCheck, OPERATOR_SCOPES};
