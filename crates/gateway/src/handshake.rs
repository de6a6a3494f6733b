//! The `connect` decision: protocol negotiation, shared-secret auth with rate limiting, device
//! identity and pairing, and the scopes granted. Produces the `hello-ok` payload or a refusal.
use std::net::IpAddr;

use serde_json::{json, Value};

use homarus_protocol::{
    parse_connect_params, verify_device_signature, ConnectParams, ErrorCode, ErrorShape, CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR, DEVICE_SIGNATURE_MAX_SKEW_MS, MIN_CLIENT_PROTOCOL_VERSION, MIN_PROBE_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};
use homarus_store::{DeviceStatus, NewPairingRequest};

use crate::auth::{random_token, secrets_equal, sha256_hex};
use crate::state::{now_ms, GatewayState};
use crate::ResolvedAuth;

/// A refused `connect`: the error to answer with and the close code that follows.
#[derive(Debug)]
pub struct Refusal {
    /// The `res` error (boxed: refusals are rare and the shape is large).
    pub error: Box<ErrorShape>,
    /// WebSocket close code.
    pub close_code: u16,
}

fn refuse(code: ErrorCode, message: impl Into<String>, details: Value) -> Refusal {
    Refusal {
        error: Box::new(ErrorShape::new(code, message).with_details(details)),
        close_code: CLOSE_POLICY_VIOLATION,
    }
}

/// An accepted client.
#[derive(Debug, Clone)]
pub struct Session {
    /// The validated params.
    pub params: ConnectParams,
    /// Role (`operator`, `node`).
    pub role: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Paired device id, if it signed one.
    pub device_id: Option<String>,
    /// A device token issued by this handshake, with its issue time.
    pub issued_token: Option<(String, i64)>,
    /// How it authenticated: `token`, `password`, `device-token` or `none`.
    pub auth_method: &'static str,
    /// Id of the `connect` request, answered by `hello-ok`.
    pub connect_request_id: String,
}

/// Who is on the other end of the socket.
pub struct Peer {
    /// Remote address.
    pub ip: IpAddr,
    /// The `connect.challenge` nonce sent to it.
    pub nonce: String,
}

enum SharedAuth {
    /// The shared secret matched (or auth mode is `none`); the value names the method.
    Ok(&'static str),
    /// No shared secret was presented.
    Missing,
    /// A shared secret was presented and is wrong (`token` or `password`).
    Mismatch(&'static str),
}

/// Decide on a `connect` request.
pub fn accept(state: &GatewayState, params: Option<&Value>, peer: &Peer) -> Result<Session, Refusal> {
    let p = parse_connect_params(params).map_err(|e| {
        refuse(
            ErrorCode::InvalidRequest,
            format!("invalid connect params: {e}"),
            json!({"code": "INVALID_CONNECT_PARAMS"}),
        )
    })?;
    negotiate(&p)?;
    let cfg = state.config();
    let rate = &cfg.config.gateway.auth.rate_limit;
    if let Some(wait) = state.rate_limiter.locked_for(peer.ip, rate) {
        let ms = wait.as_millis() as u64;
        let mut e = refuse(
            ErrorCode::InvalidRequest,
            "unauthorized: too many failed authentication attempts (retry later)",
            json!({"code": "AUTH_RATE_LIMITED", "authReason": "rate_limited", "recommendedNextStep": "wait_then_retry"}),
        );
        e.error = Box::new(e.error.with_retry_after(ms));
        return Err(e);
    }
    let role = p.role().to_string();
    let requested: Vec<String> = p.scopes.clone().unwrap_or_default();
    let loopback = peer.ip.is_loopback();
    let shared = check_shared_secret(state, &p);

    // Device identity: verify, then pair (silently on loopback) or look up.
    if p.device.is_some() {
        verify_device_signature(&p, &peer.nonce, now_ms(), DEVICE_SIGNATURE_MAX_SKEW_MS).map_err(|e| {
            refuse(ErrorCode::InvalidRequest, e.to_string(), json!({"code": e.code(), "reason": e.reason()}))
        })?;
        return accept_device(state, p, role, requested, loopback, shared, peer);
    }

    let method = match shared {
        SharedAuth::Ok(method) => method,
        SharedAuth::Mismatch(kind) => return Err(mismatch(state, peer.ip, kind, &p.client.id)),
        SharedAuth::Missing => {
            return Err(refuse(
                ErrorCode::NotPaired,
                "device identity required",
                json!({"code": "DEVICE_IDENTITY_REQUIRED"}),
            ));
        }
    };
    let is_ui = matches!(p.client.id.as_str(), "openclaw-control-ui" | "openclaw-tui" | "webchat-ui" | "webchat")
        || matches!(p.client.mode.as_str(), "ui" | "webchat");
    if is_ui {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "control ui requires device identity (use HTTPS or localhost secure context)",
            json!({"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"}),
        ));
    }
    // Device-less: a probe gets no scopes; a local client keeps what it asked for; a remote one, none.
    let scopes = if p.client.mode == "probe" || !loopback { Vec::new() } else { requested };
    state.rate_limiter.record_success(peer.ip);
    Ok(Session {
        params: p,
        role,
        scopes,
        device_id: None,
        issued_token: None,
        auth_method: method,
        connect_request_id: String::new(),
    })
}

fn negotiate(p: &ConnectParams) -> Result<(), Refusal> {
    let min_allowed = if p.role() == "node" || p.client.mode == "probe" {
        MIN_PROBE_PROTOCOL_VERSION
    } else {
        MIN_CLIENT_PROTOCOL_VERSION
    };
    let ok = p.min_protocol <= PROTOCOL_VERSION && p.max_protocol >= min_allowed && p.min_protocol <= p.max_protocol;
    if ok {
        return Ok(());
    }
    Err(Refusal {
        error: Box::new(ErrorShape::invalid("protocol mismatch").with_details(json!({
            "code": "PROTOCOL_MISMATCH",
            "clientMinProtocol": p.min_protocol,
            "clientMaxProtocol": p.max_protocol,
            "expectedProtocol": PROTOCOL_VERSION,
            "minimumProbeProtocol": MIN_PROBE_PROTOCOL_VERSION,
        }))),
        close_code: CLOSE_PROTOCOL_ERROR,
    })
}

fn check_shared_secret(state: &GatewayState, p: &ConnectParams) -> SharedAuth {
    let auth = p.auth.clone().unwrap_or_default();
    let (given, expected, kind) = match state.auth() {
        ResolvedAuth::None => return SharedAuth::Ok("none"),
        ResolvedAuth::Token(t) => (auth.token, t, "token"),
        ResolvedAuth::Password(pw) => (auth.password, pw, "password"),
    };
    match given.filter(|g| !g.is_empty()) {
        None => SharedAuth::Missing,
        Some(g) if secrets_equal(&g, &expected) => SharedAuth::Ok(kind),
        Some(_) => SharedAuth::Mismatch(kind),
    }
}

/// Refuse a wrong shared secret, counting it against the client's address.
fn mismatch(state: &GatewayState, ip: IpAddr, kind: &'static str, client_id: &str) -> Refusal {
    let cfg = state.config();
    let lock = state.rate_limiter.record_failure(ip, &cfg.config.gateway.auth.rate_limit);
    tracing::warn!(%ip, client = %client_id, "connect refused: gateway {kind} mismatch");
    let (code, reason) = if kind == "token" {
        ("AUTH_TOKEN_MISMATCH", "token_mismatch")
    } else {
        ("AUTH_PASSWORD_MISMATCH", "password_mismatch")
    };
    let mut r = refuse(
        ErrorCode::InvalidRequest,
        format!("unauthorized: gateway {kind} mismatch (check gateway.auth.{kind} or the {kind} you passed)"),
        json!({"code": code, "authReason": reason, "canRetryWithDeviceToken": false, "recommendedNextStep": "update_auth_credentials"}),
    );
    if let Some(lock) = lock {
        r.error = Box::new(r.error.with_retry_after(lock.as_millis() as u64));
    }
    r
}

fn accept_device(
    state: &GatewayState,
    p: ConnectParams,
    role: String,
    requested: Vec<String>,
    loopback: bool,
    shared: SharedAuth,
    peer: &Peer,
) -> Result<Session, Refusal> {
    let Some(device) = p.device.clone() else {
        return Err(refuse(ErrorCode::InvalidRequest, "device missing", json!({})));
    };
    let store_err = |e: homarus_store::StoreError| {
        tracing::error!(error = %e, "state database error during connect");
        Refusal {
            error: Box::new(ErrorShape::unavailable("state database unavailable; retry")),
            close_code: CLOSE_POLICY_VIOLATION,
        }
    };
    let existing = state.store.device(&device.id).map_err(store_err)?;
    let paired = existing.filter(|d| d.status == DeviceStatus::Paired && d.public_key == device.public_key);

    // Authentication: a device token of the paired device (clients send it as `auth.deviceToken`, or,
    // like openclaw-node, as `auth.token`), else the shared secret.
    let auth = p.auth.clone().unwrap_or_default();
    let device_token_ok = paired.as_ref().and_then(|d| d.token_hash.as_deref()).is_some_and(|hash| {
        [&auth.device_token, &auth.token]
            .into_iter()
            .flatten()
            .any(|t| !t.is_empty() && secrets_equal(&sha256_hex(t), hash))
    });
    let device_token = auth.device_token.filter(|t| !t.is_empty());
    let method = match shared {
        _ if device_token_ok => "device-token",
        SharedAuth::Ok(m) => m,
        SharedAuth::Mismatch(kind) => return Err(mismatch(state, peer.ip, kind, &p.client.id)),
        SharedAuth::Missing if device_token.is_some() => {
            let cfg = state.config();
            state.rate_limiter.record_failure(peer.ip, &cfg.config.gateway.auth.rate_limit);
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "unauthorized: device token mismatch (re-pair the device or use the gateway token)",
                json!({"code": "AUTH_DEVICE_TOKEN_MISMATCH", "authReason": "device_token_mismatch", "recommendedNextStep": "update_auth_credentials"}),
            ));
        }
        SharedAuth::Missing => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "unauthorized: gateway token missing (pass the gateway token or a device token)",
                json!({"code": "AUTH_TOKEN_MISSING", "authReason": "token_missing", "canRetryWithDeviceToken": paired.is_some(), "recommendedNextStep": "update_auth_credentials"}),
            ));
        }
    };

    let now = now_ms();
    let request = NewPairingRequest {
        device_id: device.id.clone(),
        public_key: device.public_key.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        role: role.clone(),
        scopes: requested.clone(),
        client_id: p.client.id.clone(),
        client_mode: p.client.mode.clone(),
        platform: Some(p.client.platform.clone()),
        device_family: p.client.device_family.clone(),
        display_name: p.client.display_name.clone(),
        remote_ip: Some(peer.ip.to_string()),
        now_ms: now,
    };

    match paired {
        Some(d) => {
            // Paired: grant what was asked within what was approved (loopback may widen silently).
            let scopes: Vec<String> =
                if loopback { requested } else { requested.into_iter().filter(|s| d.scopes.contains(s)).collect() };
            // A device approved by an operator gets its token on its first connect after approval; a
            // loopback device that authenticated with the shared secret gets a fresh one.
            let issued = if d.token_hash.is_none() || (loopback && method != "device-token") {
                let tok = random_token();
                state
                    .store
                    .pair(
                        None,
                        &d.device_id,
                        d.approved_via.as_deref().unwrap_or("manual"),
                        Some(&sha256_hex(&tok)),
                        now,
                    )
                    .map_err(store_err)?;
                Some((tok, now))
            } else {
                None
            };
            state.rate_limiter.record_success(peer.ip);
            Ok(Session {
                params: p,
                role,
                scopes,
                device_id: Some(device.id),
                issued_token: issued,
                auth_method: method,
                connect_request_id: String::new(),
            })
        }
        None if loopback => {
            let tok = random_token();
            state.store.pair(Some(&request), &device.id, "silent", Some(&sha256_hex(&tok)), now).map_err(store_err)?;
            tracing::info!(device = %device.id, client = %p.client.id, "device paired silently (loopback)");
            state.rate_limiter.record_success(peer.ip);
            Ok(Session {
                params: p,
                role,
                scopes: requested,
                device_id: Some(device.id),
                issued_token: Some((tok, now)),
                auth_method: method,
                connect_request_id: String::new(),
            })
        }
        None => {
            let rec = state.store.upsert_pending(&request).map_err(store_err)?;
            let request_id = rec.request_id.clone().unwrap_or_default();
            tracing::info!(device = %device.id, %request_id, ip = %peer.ip, "pairing requested; approve with `homarus devices approve {request_id}`");
            state.broadcast(
                "device.pair.requested",
                &crate::methods::device_json(&rec),
                &[homarus_protocol::Scope::PAIRING],
            );
            Err(refuse(
                ErrorCode::NotPaired,
                format!("pairing required: approve request {request_id} (homarus devices approve {request_id})"),
                json!({"code": "PAIRING_REQUIRED", "requestId": request_id, "deviceId": device.id}),
            ))
        }
    }
}

/// Build the `hello-ok` payload for an accepted session.
pub fn hello_ok(state: &GatewayState, session: &Session, conn_id: &str) -> Value {
    let cfg = state.config();
    let admin = session.scopes.iter().any(|s| s == homarus_protocol::Scope::ADMIN);
    let mut snapshot = json!({
        "presence": crate::methods::presence_list(state),
        "health": crate::methods::health_payload(state, 0),
        "stateVersion": {"presence": state.presence_version.load(std::sync::atomic::Ordering::Relaxed), "health": 1},
        "uptimeMs": state.uptime_ms(),
        "appliedConfigHash": format!("sha256:{}", cfg.hash),
        "sessionDefaults": {"defaultAgentId": "main", "mainKey": "main", "mainSessionKey": "agent:main:main", "scope": "per-sender"},
    });
    if admin {
        snapshot["configPath"] = json!(state.opts.config_path.display().to_string());
        snapshot["stateDir"] = json!(state.opts.state_dir.display().to_string());
        snapshot["authMode"] = json!(state.auth().mode_name());
    }
    let mut auth = json!({"method": session.auth_method, "role": session.role, "scopes": session.scopes});
    if let Some((token, issued)) = &session.issued_token {
        auth["deviceToken"] = json!(token);
        auth["issuedAtMs"] = json!(issued);
    }
    json!({
        "type": "hello-ok",
        "protocol": PROTOCOL_VERSION,
        "server": {"version": state.opts.version, "bootId": state.boot_id, "connId": conn_id},
        "features": {"methods": crate::state::IMPLEMENTED_METHODS, "events": crate::state::EMITTED_EVENTS},
        "snapshot": snapshot,
        "auth": auth,
        "policy": {
            "maxPayload": homarus_protocol::MAX_PAYLOAD_BYTES,
            "maxBufferedBytes": homarus_protocol::MAX_BUFFERED_BYTES,
            "tickIntervalMs": state.opts.tick_interval.as_millis() as u64,
            "attachments": {"maxBytes": homarus_protocol::ATTACHMENT_MAX_BYTES, "maxImageBytes": homarus_protocol::ATTACHMENT_MAX_IMAGE_BYTES},
        },
    })
}
