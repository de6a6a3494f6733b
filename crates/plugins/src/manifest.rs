//! `homarus.plugin.json` and plugin discovery.
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The manifest file name.
pub const MANIFEST_FILE: &str = "homarus.plugin.json";

/// A plugin manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginManifest {
    /// Unique id (`plugins.entries.<id>`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
    /// Optional version.
    #[serde(default)]
    pub version: Option<String>,
    /// argv to start, run with the plugin folder as working directory.
    pub command: Vec<String>,
    /// Hooks it subscribes to.
    #[serde(default)]
    pub hooks: Vec<HookSubscription>,
    /// JSON Schema of `plugins.entries.<id>.config` (informational).
    #[serde(default)]
    pub config_schema: Option<Value>,
}

/// A hook subscription: a name, or `{name, priority?, timeoutMs?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum HookSubscription {
    /// Just the hook name.
    Name(String),
    /// With priority and budget.
    Detailed {
        /// Hook name.
        name: String,
        /// Higher runs first for decision hooks.
        #[serde(default)]
        priority: i32,
        /// Budget per call in ms.
        #[serde(default, rename = "timeoutMs")]
        timeout_ms: Option<u64>,
    },
}

impl HookSubscription {
    /// The hook name.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(n) | Self::Detailed { name: n, .. } => n,
        }
    }

    /// The priority (0 by default).
    pub fn priority(&self) -> i32 {
        match self {
            Self::Name(_) => 0,
            Self::Detailed { priority, .. } => *priority,
        }
    }

    /// The manifest's budget, if any.
    pub fn timeout_ms(&self) -> Option<u64> {
        match self {
            Self::Name(_) => None,
            Self::Detailed { timeout_ms, .. } => *timeout_ms,
        }
    }
}

/// A plugin found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// Its manifest.
    pub manifest: PluginManifest,
    /// Its folder.
    pub dir: PathBuf,
}

fn read_manifest(dir: &Path) -> Result<PluginManifest, String> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m: PluginManifest = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if m.id.trim().is_empty() {
        return Err(format!("{}: `id` must not be empty", path.display()));
    }
    if m.command.is_empty() || m.command[0].trim().is_empty() {
        return Err(format!("{}: `command` must name a program", path.display()));
    }
    for h in &m.hooks {
        if homarus_hooks::hook_spec(h.name()).is_none() {
            return Err(format!("{}: unknown hook `{}`", path.display(), h.name()));
        }
    }
    Ok(m)
}

/// Find plugins in `roots`: each root is a plugin folder itself or a folder of plugin folders.
/// Returns the plugins (first one wins for a repeated id) and the problems found, described.
pub fn discover(roots: &[PathBuf]) -> (Vec<Discovered>, Vec<String>) {
    let mut found: Vec<Discovered> = Vec::new();
    let mut problems = Vec::new();
    let mut consider = |dir: &Path, found: &mut Vec<Discovered>| match read_manifest(dir) {
        Ok(manifest) => {
            if let Some(first) = found.iter().find(|d| d.manifest.id == manifest.id) {
                problems.push(format!(
                    "plugin id `{}` found twice: {} is ignored, {} is used",
                    manifest.id,
                    dir.display(),
                    first.dir.display()
                ));
            } else {
                found.push(Discovered { manifest, dir: dir.to_path_buf() });
            }
        }
        Err(e) => problems.push(e),
    };
    for root in roots {
        if root.join(MANIFEST_FILE).is_file() {
            consider(root, &mut found);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(root) else { continue };
        let mut dirs: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.join(MANIFEST_FILE).is_file()).collect();
        dirs.sort();
        for d in dirs {
            consider(&d, &mut found);
        }
    }
    (found, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), body).unwrap();
    }

    #[test]
    fn discovers_folders_and_reports_bad_manifests() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("a"),
            r#"{"id":"a","name":"A","command":["python3","a.py"],"hooks":["session_end",{"name":"session_start","priority":5,"timeoutMs":100}]}"#,
        );
        write(&root.path().join("b"), r#"{"id":"b","name":"B","command":[],"hooks":[]}"#);
        write(&root.path().join("c"), r#"{"id":"c","name":"C","command":["x"],"hooks":["no_such_hook"]}"#);
        write(&root.path().join("d"), r#"{"id":"a","name":"dup","command":["x"]}"#);
        let single = tempfile::tempdir().unwrap();
        write(single.path(), r#"{"id":"solo","name":"S","command":["x"]}"#);
        let (found, problems) =
            discover(&[root.path().to_path_buf(), single.path().to_path_buf(), "/nonexistent".into()]);
        let ids: Vec<_> = found.iter().map(|d| d.manifest.id.as_str()).collect();
        assert_eq!(ids, ["a", "solo"]);
        assert_eq!(found[0].manifest.hooks[1].priority(), 5);
        assert_eq!(found[0].manifest.hooks[1].timeout_ms(), Some(100));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("`command` must name a program")));
        assert!(problems.iter().any(|p| p.contains("unknown hook `no_such_hook`")));
        assert!(problems.iter().any(|p| p.contains("found twice")));
    }
}
