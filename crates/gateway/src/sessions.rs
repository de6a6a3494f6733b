//! The session service: creating, resetting, deleting and patching sessions, each a store row plus
//! an append-only transcript under `<stateDir>/agents/<agentId>/sessions/`.
//!
//! Invariant: a row always points at an existing transcript; a reset or delete archives the old
//! transcript (`<file>.reset.<time>` / `<file>.deleted.<time>`) before the row changes.
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use homarus_protocol::session_key::{derive_chat_type, explicit_session_key, normalize_agent_id, DEFAULT_AGENT_ID};
use homarus_protocol::ErrorShape;
use homarus_store::{archive_transcript, create_transcript, SessionRow, Store};

use crate::methods::store_error;

/// Fields of `sessions.patch` that are not preferences.
const PATCH_CONTROL_FIELDS: &[&str] = &["key", "agentId", "label"];

/// Sessions over the store.
pub struct SessionService<'a> {
    store: &'a Store,
    state_dir: &'a std::path::Path,
}

/// What a reset or delete did to the old session.
#[derive(Debug, Clone)]
pub struct Retired {
    /// The session as it was.
    pub previous: SessionRow,
    /// Where its transcript was archived, if it existed.
    pub archived: Option<PathBuf>,
}

impl<'a> SessionService<'a> {
    /// A service over `store`, keeping transcripts under `state_dir`.
    pub fn new(store: &'a Store, state_dir: &'a std::path::Path) -> Self {
        Self { store, state_dir }
    }

    fn transcript_path(&self, agent_id: &str, session_id: &str) -> PathBuf {
        self.state_dir.join("agents").join(agent_id).join("sessions").join(format!("{session_id}.jsonl"))
    }

    fn new_transcript(&self, agent_id: &str, session_id: &str, now: i64) -> Result<String, ErrorShape> {
        let path = self.transcript_path(agent_id, session_id);
        create_transcript(&path, session_id, &self.state_dir.display().to_string(), now).map_err(store_error)?;
        Ok(path.display().to_string())
    }

    /// The session with `key`.
    pub fn get(&self, key: &str) -> Result<SessionRow, ErrorShape> {
        self.store
            .session(key)
            .map_err(store_error)?
            .ok_or_else(|| ErrorShape::invalid(format!("unknown session: {key}")))
    }

    /// The session with `key`, refused when `expected` (a client's `expectedSessionId`) no longer
    /// matches: the session was reset or replaced since the caller looked.
    pub fn get_expected(&self, key: &str, expected: Option<&str>) -> Result<SessionRow, ErrorShape> {
        let row = self.get(key)?;
        match expected {
            Some(e) if e != row.session_id => Err(ErrorShape::invalid(format!(
                "session {key} changed: expected session id {e}, current {}",
                row.session_id
            ))
            .with_details(json!({"code": "SESSION_ID_MISMATCH", "sessionId": row.session_id}))),
            _ => Ok(row),
        }
    }

    /// Create a session (or adopt the existing one with that key: `created` is then false).
    pub fn create(
        &self,
        key: Option<&str>,
        agent_id: Option<&str>,
        label: Option<&str>,
        display_name: Option<&str>,
        created_via: &str,
        now: i64,
    ) -> Result<(SessionRow, bool), ErrorShape> {
        let agent = normalize_agent_id(
            agent_id.or_else(|| key.and_then(homarus_protocol::session_key::agent_id_of)).unwrap_or(DEFAULT_AGENT_ID),
        );
        let session_id = uuid::Uuid::new_v4().to_string();
        let key = key.map(|k| k.trim().to_lowercase()).unwrap_or_else(|| explicit_session_key(&agent, &session_id));
        if let Some(existing) = self.store.session(&key).map_err(store_error)? {
            return Ok((existing, false));
        }
        let file = self.new_transcript(&agent, &session_id, now)?;
        let row = SessionRow {
            // A key with no group/channel marker is a direct conversation (the main session, operator
            // sessions), as OpenClaw records it.
            chat_type: match derive_chat_type(&key, &classifiers()) {
                homarus_protocol::session_key::ChatType::Unknown => "direct".to_string(),
                t => t.as_str().to_string(),
            },
            key,
            session_id,
            agent_id: agent,
            session_file: file,
            created_via: created_via.to_string(),
            created_at_ms: now,
            updated_at_ms: now,
            session_started_at_ms: now,
            last_interaction_at_ms: None,
            message_count: 0,
            label: label.map(str::to_string),
            display_name: display_name.map(str::to_string),
            prefs: Map::new(),
        };
        if !self.store.insert_session(&row).map_err(store_error)? {
            // Another request created it between our read and insert: adopt theirs.
            let _ = std::fs::remove_file(&row.session_file);
            return Ok((self.get(&row.key)?, false));
        }
        Ok((row, true))
    }

    /// Start a fresh session id under the same key, keeping preferences; the old transcript is
    /// archived with `reason` (`reset`).
    pub fn reset(&self, key: &str, now: i64) -> Result<(SessionRow, Retired), ErrorShape> {
        let previous = self.get(key)?;
        let archived =
            archive_transcript(std::path::Path::new(&previous.session_file), "reset", now).map_err(store_error)?;
        let session_id = uuid::Uuid::new_v4().to_string();
        let mut row = previous.clone();
        row.session_file = self.new_transcript(&row.agent_id, &session_id, now)?;
        row.session_id = session_id;
        row.session_started_at_ms = now;
        row.updated_at_ms = now;
        row.last_interaction_at_ms = None;
        row.message_count = 0;
        self.store.update_session(&row).map_err(store_error)?;
        Ok((row, Retired { previous, archived }))
    }

    /// Delete a session; its transcript is archived (`deleted`), or removed when `keep_transcript` is false.
    pub fn delete(&self, key: &str, keep_transcript: bool, now: i64) -> Result<Retired, ErrorShape> {
        let previous = self.get(key)?;
        let path = std::path::Path::new(&previous.session_file);
        let archived = if keep_transcript {
            archive_transcript(path, "deleted", now).map_err(store_error)?
        } else {
            let _ = std::fs::remove_file(path);
            None
        };
        self.store.delete_session(key).map_err(store_error)?;
        Ok(Retired { previous, archived })
    }

    /// Apply a `sessions.patch`: `label` to its column, every other field to the preferences
    /// (`null` clears). `expectedSessionId` guards against patching a session that was reset meanwhile.
    pub fn patch(&self, params: &Map<String, Value>, now: i64) -> Result<SessionRow, ErrorShape> {
        let key = params.get("key").and_then(Value::as_str).unwrap_or_default();
        let mut row = self.get_expected(key, params.get("expectedSessionId").and_then(Value::as_str))?;
        for (field, value) in params {
            if PATCH_CONTROL_FIELDS.contains(&field.as_str()) || field.starts_with("expected") {
                continue;
            }
            if value.is_null() {
                row.prefs.remove(field);
            } else {
                row.prefs.insert(field.clone(), value.clone());
            }
        }
        match params.get("label") {
            Some(Value::String(l)) => row.label = Some(l.clone()),
            Some(Value::Null) => row.label = None,
            _ => {}
        }
        row.updated_at_ms = now;
        self.store.update_session(&row).map_err(store_error)?;
        Ok(row)
    }
}

/// A session entry as clients see it.
pub fn entry_json(row: &SessionRow) -> Value {
    let mut v = json!({
        "key": row.key,
        "sessionId": row.session_id,
        "agentId": row.agent_id,
        "kind": row.chat_type,
        "chatType": row.chat_type,
        "createdVia": row.created_via,
        "createdAt": row.created_at_ms,
        "updatedAt": row.updated_at_ms,
        "sessionStartedAt": row.session_started_at_ms,
        "lastInteractionAt": row.last_interaction_at_ms,
        "messageCount": row.message_count,
        "sessionFile": row.session_file,
        "isMain": row.key == homarus_protocol::session_key::main_session_key(&row.agent_id, None),
    });
    if let Some(l) = &row.label {
        v["label"] = json!(l);
    }
    if let Some(d) = &row.display_name {
        v["displayName"] = json!(d);
    }
    if let Some(obj) = v.as_object_mut() {
        for (k, val) in &row.prefs {
            obj.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    v
}

/// The built-in channels' classifiers of their legacy session keys (built once).
pub fn classifiers() -> Vec<&'static dyn homarus_protocol::session_key::LegacyChatTypeClassifier> {
    static ALL: std::sync::LazyLock<Vec<homarus_channels::LegacyKeys>> =
        std::sync::LazyLock::new(homarus_channels::legacy_classifiers);
    ALL.iter().map(|c| c as &dyn homarus_protocol::session_key::LegacyChatTypeClassifier).collect()
}
