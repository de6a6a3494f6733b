//! Durable gateway state in one SQLite file (WAL mode).
//!
//! It holds paired devices, pending pairing requests and session entries (whose transcripts are
//! append-only JSONL files next to it) and the task ledger; later issues add cron rows. Invariant: a write the gateway acknowledges is committed before the call returns
//! (every mutation is one implicit transaction, `synchronous=FULL`).
mod channel_pairing;
mod cron;
mod devices;
mod sessions;
mod tasks;
mod transcript;

pub use channel_pairing::{ChannelAllowEntry, ChannelPairingRequest, PairingAsk};
pub use cron::{CronRunsPage, RUNS_KEPT_PER_JOB};
pub use devices::{DeviceRecord, DeviceStatus, NewPairingRequest};
pub use sessions::SessionRow;
pub use tasks::{TaskQuery, TaskRecord, TaskStatus};
pub use transcript::{
    append_entries, archive_transcript, create_transcript, iso_timestamp, read_transcript, Transcript,
    TRANSCRIPT_VERSION,
};

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The folder holding the database could not be created.
    #[error("state database folder {path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The state database. Cheap operations run inline under a mutex: each is a single indexed row
/// read or write, far below a millisecond, and they happen on rare paths (device pairing).
pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    device_id      TEXT PRIMARY KEY,
    public_key     TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'paired')),
    request_id     TEXT UNIQUE,
    role           TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    client_mode    TEXT NOT NULL,
    platform       TEXT,
    device_family  TEXT,
    display_name   TEXT,
    remote_ip      TEXT,
    approved_via   TEXT,
    token_hash     TEXT,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    approved_at_ms INTEGER
);
";

impl Store {
    /// Open (or create) the database at `path`, in WAL mode, with the file mode 0600.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Io { path: dir.display().to_string(), source })?;
        }
        let conn = Connection::open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Self::init(conn)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(sessions::SESSIONS_SCHEMA)?;
        conn.execute_batch(tasks::TASKS_SCHEMA)?;
        conn.execute_batch(channel_pairing::CHANNEL_PAIRING_SCHEMA)?;
        conn.execute_batch(cron::CRON_SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (it has its own journal).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}
