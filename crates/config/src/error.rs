//! Configuration errors. Each names the key path and, when known, `file:line:col`.
use std::fmt;
use std::path::PathBuf;

use crate::locate::Pos;

/// Why a configuration could not be loaded, validated or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid JSON5.
    #[error("{file}{}: {message}", fmt_pos(*pos))]
    Syntax {
        /// File name as shown to the user.
        file: String,
        /// Where the parser stopped.
        pos: Option<Pos>,
        /// The parser's reason.
        message: String,
    },
    /// A value is of the wrong type, out of range, or an unknown key.
    #[error("{}: {message}{}", if key.is_empty() { "(root)" } else { key }, at(file, *pos))]
    Invalid {
        /// Dotted key path, e.g. `gateway.port`.
        key: String,
        /// What was expected and found.
        message: String,
        /// File name as shown to the user.
        file: String,
        /// Where the key or value is.
        pos: Option<Pos>,
    },
}

fn fmt_pos(pos: Option<Pos>) -> String {
    pos.map(|p| format!(":{}:{}", p.line, p.col)).unwrap_or_default()
}

fn at(file: &str, pos: Option<Pos>) -> String {
    if file.is_empty() {
        return String::new();
    }
    format!(" at {file}{}", fmt_pos(pos))
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl ConfigError {
    /// The dotted key path the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
