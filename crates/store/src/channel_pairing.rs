//! DM pairing for chat channels: pending requests (a code per unknown sender, expiring) and the
//! senders approved per channel account. The first sender approved on a channel with no owner yet is
//! marked owner (the fallback for `commands.ownerAllowFrom`).
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::{Store, StoreError};

pub(crate) const CHANNEL_PAIRING_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS channel_pairing_requests (
    channel         TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    code            TEXT NOT NULL UNIQUE,
    meta            TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    last_seen_at_ms INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (channel, account_id, sender_id)
);
CREATE TABLE IF NOT EXISTS channel_pairing_allow_entries (
    channel        TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    sender_id      TEXT NOT NULL,
    owner          INTEGER NOT NULL DEFAULT 0,
    meta           TEXT NOT NULL,
    approved_at_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, account_id, sender_id)
);
";

/// A pending pairing request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelPairingRequest {
    /// Channel id.
    pub channel: String,
    /// Account id.
    pub account_id: String,
    /// The sender asking for access.
    pub id: String,
    /// The code.
    pub code: String,
    /// Sender name, chat, … as the channel gave them.
    pub meta: Value,
    /// Created (ms).
    pub created_at: i64,
    /// Last message from the sender (ms).
    pub last_seen_at: i64,
    /// Expires (ms).
    pub expires_at: i64,
}

/// What happened to a pairing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingAsk {
    /// A new request: tell the sender this code.
    Created(String),
    /// The sender already has a live code: do not message them again.
    Pending(String),
    /// The account has its maximum of pending requests: ignore the sender until one ends.
    Full,
}

/// An approved sender.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAllowEntry {
    /// Channel id.
    pub channel: String,
    /// Account id.
    pub account_id: String,
    /// The sender.
    pub sender_id: String,
    /// A command owner.
    pub owner: bool,
    /// Approved (ms).
    pub approved_at: i64,
}

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChannelPairingRequest> {
    let meta: String = r.get(4)?;
    Ok(ChannelPairingRequest {
        channel: r.get(0)?,
        account_id: r.get(1)?,
        id: r.get(2)?,
        code: r.get(3)?,
        meta: serde_json::from_str(&meta).unwrap_or(Value::Null),
        created_at: r.get(5)?,
        last_seen_at: r.get(6)?,
        expires_at: r.get(7)?,
    })
}

const REQUEST_COLS: &str = "channel, account_id, sender_id, code, meta, created_at_ms, last_seen_at_ms, expires_at_ms";

impl Store {
    /// Ask for access for `sender` (at most `max_pending` live requests per channel account).
    pub fn channel_pairing_ask(
        &self,
        (channel, account, sender): (&str, &str, &str),
        meta: &Value,
        now: i64,
        ttl_ms: i64,
        max_pending: usize,
        new_code: impl Fn() -> String,
    ) -> Result<PairingAsk, StoreError> {
        let conn = self.conn();
        conn.execute("DELETE FROM channel_pairing_requests WHERE expires_at_ms <= ?1", params![now])?;
        let existing: Option<String> = conn
            .query_row(
                "SELECT code FROM channel_pairing_requests WHERE channel = ?1 AND account_id = ?2 AND sender_id = ?3",
                params![channel, account, sender],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(code) = existing {
            conn.execute(
                "UPDATE channel_pairing_requests SET last_seen_at_ms = ?4 WHERE channel = ?1 AND account_id = ?2 AND sender_id = ?3",
                params![channel, account, sender, now],
            )?;
            return Ok(PairingAsk::Pending(code));
        }
        let pending: i64 = conn.query_row(
            "SELECT COUNT(*) FROM channel_pairing_requests WHERE channel = ?1 AND account_id = ?2",
            params![channel, account],
            |r| r.get(0),
        )?;
        if pending as usize >= max_pending {
            return Ok(PairingAsk::Full);
        }
        // A code collision is astronomically rare; try a few.
        for _ in 0..5 {
            let code = new_code();
            let inserted = conn.execute(
                &format!("INSERT OR IGNORE INTO channel_pairing_requests ({REQUEST_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)"),
                params![channel, account, sender, code, meta.to_string(), now, now + ttl_ms],
            )?;
            if inserted == 1 {
                return Ok(PairingAsk::Created(code));
            }
        }
        Ok(PairingAsk::Full)
    }

    /// Live requests, optionally of one channel (and account).
    pub fn channel_pairing_list(
        &self,
        channel: Option<&str>,
        account: Option<&str>,
        now: i64,
    ) -> Result<Vec<ChannelPairingRequest>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REQUEST_COLS} FROM channel_pairing_requests WHERE expires_at_ms > ?1
             AND (?2 IS NULL OR channel = ?2) AND (?3 IS NULL OR account_id = ?3) ORDER BY created_at_ms"
        ))?;
        let rows = stmt.query_map(params![now, channel, account], request_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Approve a live code of `channel`: the sender is allowed to DM from now on. The first approval
    /// on a channel without an owner makes the sender its owner. `None` when no live request has it.
    pub fn channel_pairing_approve(
        &self,
        channel: &str,
        code: &str,
        account: Option<&str>,
        now: i64,
    ) -> Result<Option<(ChannelPairingRequest, bool)>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let req = tx
            .query_row(
                &format!(
                    "SELECT {REQUEST_COLS} FROM channel_pairing_requests WHERE channel = ?1 AND code = ?2
                     AND expires_at_ms > ?3 AND (?4 IS NULL OR account_id = ?4)"
                ),
                params![channel, code, now, account],
                request_row,
            )
            .optional()?;
        let Some(req) = req else { return Ok(None) };
        let has_owner: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM channel_pairing_allow_entries WHERE channel = ?1 AND owner = 1)",
            params![channel],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO channel_pairing_allow_entries (channel, account_id, sender_id, owner, meta, approved_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![req.channel, req.account_id, req.id, !has_owner, req.meta.to_string(), now],
        )?;
        tx.execute("DELETE FROM channel_pairing_requests WHERE code = ?1", params![code])?;
        tx.commit()?;
        Ok(Some((req, !has_owner)))
    }

    /// Dismiss a request without approving it (the sender may ask again).
    pub fn channel_pairing_reject(
        &self,
        channel: &str,
        code: &str,
    ) -> Result<Option<ChannelPairingRequest>, StoreError> {
        let conn = self.conn();
        let req = conn
            .query_row(
                &format!("SELECT {REQUEST_COLS} FROM channel_pairing_requests WHERE channel = ?1 AND code = ?2"),
                params![channel, code],
                request_row,
            )
            .optional()?;
        if req.is_some() {
            conn.execute("DELETE FROM channel_pairing_requests WHERE code = ?1", params![code])?;
        }
        Ok(req)
    }

    /// Senders approved on a channel account.
    pub fn channel_allowed(&self, channel: &str, account: &str) -> Result<Vec<ChannelAllowEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT channel, account_id, sender_id, owner, approved_at_ms FROM channel_pairing_allow_entries
             WHERE channel = ?1 AND account_id = ?2 ORDER BY approved_at_ms",
        )?;
        let rows = stmt.query_map(params![channel, account], |r| {
            Ok(ChannelAllowEntry {
                channel: r.get(0)?,
                account_id: r.get(1)?,
                sender_id: r.get(2)?,
                owner: r.get(3)?,
                approved_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn pairing_lifecycle() {
        let s = Store::open_in_memory().unwrap();
        let n = Cell::new(0);
        let code = || {
            n.set(n.get() + 1);
            format!("CODE{:04}", n.get())
        };
        let meta = serde_json::json!({"name": "alice"});
        let ask = |sender: &str, now: i64| {
            s.channel_pairing_ask(("telegram", "default", sender), &meta, now, 1000, 3, code).unwrap()
        };
        assert_eq!(ask("1", 0), PairingAsk::Created("CODE0001".into()));
        assert_eq!(ask("1", 10), PairingAsk::Pending("CODE0001".into()));
        assert!(matches!(ask("2", 10), PairingAsk::Created(_)));
        assert!(matches!(ask("3", 10), PairingAsk::Created(_)));
        assert_eq!(ask("4", 10), PairingAsk::Full);
        assert_eq!(s.channel_pairing_list(Some("telegram"), None, 10).unwrap().len(), 3);
        // approve: the first approval is the owner
        let (req, owner) = s.channel_pairing_approve("telegram", "CODE0001", None, 20).unwrap().unwrap();
        assert_eq!((req.id.as_str(), owner), ("1", true));
        assert!(s.channel_pairing_approve("telegram", "CODE0001", None, 20).unwrap().is_none());
        let (_, owner) = s.channel_pairing_approve("telegram", "CODE0002", None, 20).unwrap().unwrap();
        assert!(!owner);
        let allowed = s.channel_allowed("telegram", "default").unwrap();
        assert_eq!(
            allowed.iter().map(|a| (a.sender_id.as_str(), a.owner)).collect::<Vec<_>>(),
            vec![("1", true), ("2", false)]
        );
        // expiry frees a slot
        assert!(s.channel_pairing_list(None, None, 2000).unwrap().is_empty());
        assert!(matches!(ask("4", 2000), PairingAsk::Created(_)));
        assert!(s.channel_pairing_reject("telegram", "CODE0004").unwrap().is_some());
        assert!(s.channel_pairing_list(None, None, 2000).unwrap().is_empty());
    }
}
