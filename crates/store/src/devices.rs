//! Paired devices and pending pairing requests.
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::{Store, StoreError};

/// Whether a device is waiting for approval or paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// Waiting for `device.pair.approve`.
    Pending,
    /// Approved; may connect.
    Paired,
}

/// One device row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRecord {
    /// Hex SHA-256 of the public key.
    pub device_id: String,
    /// Base64url raw public key.
    pub public_key: String,
    /// Pending or paired.
    pub status: DeviceStatus,
    /// Id of the pending request (pending rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Role the device connects as.
    pub role: String,
    /// Scopes requested (pending) or approved (paired).
    pub scopes: Vec<String>,
    /// `client.id` at request time.
    pub client_id: String,
    /// `client.mode` at request time.
    pub client_mode: String,
    /// Client platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Client device family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    /// Client display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Address the request came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    /// `silent` (loopback auto-approval) or `manual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_via: Option<String>,
    /// SHA-256 (hex) of the device token; the token itself is never stored.
    #[serde(skip)]
    pub token_hash: Option<String>,
    /// First seen.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
    /// When approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at_ms: Option<i64>,
}

/// What a connecting, unknown device asks for.
#[derive(Debug, Clone)]
pub struct NewPairingRequest {
    /// Device id.
    pub device_id: String,
    /// Public key.
    pub public_key: String,
    /// New request id.
    pub request_id: String,
    /// Role.
    pub role: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// `client.id`.
    pub client_id: String,
    /// `client.mode`.
    pub client_mode: String,
    /// Platform.
    pub platform: Option<String>,
    /// Device family.
    pub device_family: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Remote address.
    pub remote_ip: Option<String>,
    /// Now, ms since epoch.
    pub now_ms: i64,
}

const COLUMNS: &str = "device_id, public_key, status, request_id, role, scopes, client_id, client_mode, platform, \
     device_family, display_name, remote_ip, approved_via, token_hash, created_at_ms, updated_at_ms, approved_at_ms";

fn row_to_record(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let status: String = row.get(2)?;
    let scopes: String = row.get(5)?;
    Ok(DeviceRecord {
        device_id: row.get(0)?,
        public_key: row.get(1)?,
        status: if status == "paired" { DeviceStatus::Paired } else { DeviceStatus::Pending },
        request_id: row.get(3)?,
        role: row.get(4)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        client_id: row.get(6)?,
        client_mode: row.get(7)?,
        platform: row.get(8)?,
        device_family: row.get(9)?,
        display_name: row.get(10)?,
        remote_ip: row.get(11)?,
        approved_via: row.get(12)?,
        token_hash: row.get(13)?,
        created_at_ms: row.get(14)?,
        updated_at_ms: row.get(15)?,
        approved_at_ms: row.get(16)?,
    })
}

fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// The device with this id, if known.
    pub fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE device_id = ?1");
        Ok(conn.query_row(&sql, [device_id], row_to_record).optional()?)
    }

    /// Every device, pending first, newest first.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM devices ORDER BY status DESC, updated_at_ms DESC");
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], row_to_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record (or refresh) a pending request for an unknown device. A repeated request from the same
    /// device supersedes the previous one with the new request id.
    pub fn upsert_pending(&self, req: &NewPairingRequest) -> Result<DeviceRecord, StoreError> {
        {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO devices (device_id, public_key, status, request_id, role, scopes, client_id, client_mode,
                     platform, device_family, display_name, remote_ip, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
                 ON CONFLICT(device_id) DO UPDATE SET public_key = ?2, request_id = ?3, role = ?4, scopes = ?5,
                     client_id = ?6, client_mode = ?7, platform = ?8, device_family = ?9, display_name = ?10,
                     remote_ip = ?11, updated_at_ms = ?12
                 WHERE status = 'pending'",
                params![
                    req.device_id,
                    req.public_key,
                    req.request_id,
                    req.role,
                    scopes_json(&req.scopes),
                    req.client_id,
                    req.client_mode,
                    req.platform,
                    req.device_family,
                    req.display_name,
                    req.remote_ip,
                    req.now_ms
                ],
            )?;
        }
        self.device(&req.device_id)?.ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Mark a device paired. `token_hash` is the hash of the token issued now, or `None` when the
    /// token is issued on the device's next connect (manual approval). Works for a pending request (by
    /// device id) or directly for a new device (silent loopback pairing, `req` given).
    pub fn pair(
        &self,
        req: Option<&NewPairingRequest>,
        device_id: &str,
        approved_via: &str,
        token_hash: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        if let Some(req) = req {
            self.upsert_pending(req)?;
        }
        let changed = self.conn().execute(
            "UPDATE devices SET status = 'paired', request_id = NULL, approved_via = ?2, token_hash = ?3,
                 approved_at_ms = ?4, updated_at_ms = ?4
             WHERE device_id = ?1",
            params![device_id, approved_via, token_hash, now_ms],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        self.device(device_id)
    }

    /// The pending device with this request id.
    pub fn pending_by_request(&self, request_id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE request_id = ?1 AND status = 'pending'");
        Ok(conn.query_row(&sql, [request_id], row_to_record).optional()?)
    }

    /// Delete a device row (reject a pending request or remove a paired device).
    pub fn remove_device(&self, device_id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute("DELETE FROM devices WHERE device_id = ?1", [device_id])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, request: &str) -> NewPairingRequest {
        NewPairingRequest {
            device_id: id.into(),
            public_key: "pk".into(),
            request_id: request.into(),
            role: "operator".into(),
            scopes: vec!["operator.read".into()],
            client_id: "openclaw-tui".into(),
            client_mode: "ui".into(),
            platform: Some("linux".into()),
            device_family: None,
            display_name: None,
            remote_ip: Some("10.0.0.2".into()),
            now_ms: 1,
        }
    }

    #[test]
    fn pending_then_paired_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        {
            let store = Store::open(&path).unwrap();
            store.upsert_pending(&req("d1", "r1")).unwrap();
            let again = store.upsert_pending(&req("d1", "r2")).unwrap();
            assert_eq!(again.request_id.as_deref(), Some("r2"), "a retry supersedes the request id");
            assert!(store.pending_by_request("r1").unwrap().is_none());
            let d = store.pending_by_request("r2").unwrap().unwrap();
            let paired = store.pair(None, &d.device_id, "manual", Some("hash"), 5).unwrap().unwrap();
            assert_eq!(paired.status, DeviceStatus::Paired);
        }
        let store = Store::open(&path).unwrap();
        let d = store.device("d1").unwrap().unwrap();
        assert_eq!(d.status, DeviceStatus::Paired);
        assert_eq!(d.token_hash.as_deref(), Some("hash"));
        assert_eq!(d.scopes, vec!["operator.read".to_string()]);
        // A paired device is not downgraded by a later pending upsert.
        store.upsert_pending(&req("d1", "r3")).unwrap();
        assert_eq!(store.device("d1").unwrap().unwrap().status, DeviceStatus::Paired);
        assert!(store.remove_device("d1").unwrap());
        assert!(store.devices().unwrap().is_empty());
    }
}
