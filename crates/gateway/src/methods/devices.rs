//! `device.pair.*`: list, approve, reject and remove device pairings.
use serde::Deserialize;
use serde_json::{json, Value};

use homarus_protocol::{ErrorShape, Scope};
use homarus_store::{DeviceRecord, DeviceStatus};

use super::store_error;
use crate::state::{now_ms, GatewayState};

/// A device as clients see it (never its token).
pub fn device_json(d: &DeviceRecord) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Some(ts) = v.get("updatedAtMs").cloned() {
        v["ts"] = ts;
    }
    v
}

/// `device.pair.list` → `{pending, paired}`.
pub fn list(state: &GatewayState) -> Result<Value, ErrorShape> {
    let all = state.store.devices().map_err(store_error)?;
    let (pending, paired): (Vec<_>, Vec<_>) = all.iter().partition(|d| d.status == DeviceStatus::Pending);
    Ok(json!({
        "pending": pending.into_iter().map(device_json).collect::<Vec<_>>(),
        "paired": paired.into_iter().map(device_json).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RequestIdParams {
    request_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DeviceIdParams {
    device_id: String,
}

fn pending(state: &GatewayState, request_id: &str) -> Result<DeviceRecord, ErrorShape> {
    state
        .store
        .pending_by_request(request_id)
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid(format!("unknown pairing request: {request_id} (see device.pair.list)")))
}

/// `device.pair.approve {requestId}`. The device receives its token on its next connect.
pub fn approve(state: &GatewayState, p: RequestIdParams) -> Result<Value, ErrorShape> {
    let d = pending(state, &p.request_id)?;
    if d.role != "operator" {
        return Err(ErrorShape::invalid(format!("role {} cannot be approved by this gateway", d.role)));
    }
    let paired = state
        .store
        .pair(None, &d.device_id, "manual", None, now_ms())
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::invalid("pairing request vanished; list again"))?;
    tracing::info!(device = %d.device_id, request = %p.request_id, "device pairing approved");
    let device = device_json(&paired);
    state.broadcast(
        "device.pair.resolved",
        &json!({"requestId": p.request_id, "deviceId": d.device_id, "decision": "approved", "ts": now_ms()}),
        &[Scope::PAIRING],
    );
    Ok(json!({"requestId": p.request_id, "device": device}))
}

/// `device.pair.reject {requestId}`.
pub fn reject(state: &GatewayState, p: RequestIdParams) -> Result<Value, ErrorShape> {
    let d = pending(state, &p.request_id)?;
    state.store.remove_device(&d.device_id).map_err(store_error)?;
    tracing::info!(device = %d.device_id, request = %p.request_id, "device pairing rejected");
    state.broadcast(
        "device.pair.resolved",
        &json!({"requestId": p.request_id, "deviceId": d.device_id, "decision": "rejected", "ts": now_ms()}),
        &[Scope::PAIRING],
    );
    Ok(json!({"requestId": p.request_id, "deviceId": d.device_id}))
}

/// `device.pair.remove {deviceId}`.
pub fn remove(state: &GatewayState, p: DeviceIdParams) -> Result<Value, ErrorShape> {
    if !state.store.remove_device(&p.device_id).map_err(store_error)? {
        return Err(ErrorShape::invalid(format!("unknown device: {}", p.device_id)));
    }
    Ok(json!({"deviceId": p.device_id, "removed": true}))
}
