//! Finding `HOOK.md` hooks and deciding which ones load.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use homarus_config::InternalHooksConfig;

use super::bus::NativeHandler;

/// Every internal event name (families and actions).
pub const INTERNAL_EVENTS: &[&str] = &[
    "command",
    "command:new",
    "command:reset",
    "command:stop",
    "session",
    "session:auto-reset",
    "session:patch",
    "session:compact:before",
    "session:compact:after",
    "agent",
    "agent:bootstrap",
    "gateway",
    "gateway:startup",
    "gateway:shutdown",
    "gateway:pre-restart",
    "message",
    "message:received",
    "message:transcribed",
    "message:preprocessed",
    "message:sent",
];

/// Where a hook came from, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookSource {
    /// Shipped with Homarus.
    Bundled,
    /// `hooks.internal.load.extraDirs`.
    Extra,
    /// `<stateDir>/hooks/`.
    Managed,
    /// `<workspace>/hooks/`: may only add new names, and loads only when enabled by name.
    Workspace,
}

impl HookSource {
    /// `bundled`, `extra` or `managed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bundled => "bundled",
            Self::Extra => "extra",
            Self::Managed => "managed",
            Self::Workspace => "workspace",
        }
    }
}

/// What a hook needs on the host to be eligible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Every one of these programs on `PATH`.
    pub bins: Vec<String>,
    /// At least one of these programs on `PATH`.
    pub any_bins: Vec<String>,
    /// Every one of these environment variables set (or given in the hook's `env`).
    pub env: Vec<String>,
    /// One of these OS names (`linux`, `macos`/`darwin`, `windows`/`win32`), if set.
    pub os: Vec<String>,
}

/// How a hook runs.
#[derive(Clone)]
pub enum HookHandlerKind {
    /// An executable, run in the hook folder.
    Exec {
        /// argv.
        argv: Vec<String>,
    },
    /// A handler built into Homarus.
    Native(Arc<dyn NativeHandler>),
}

impl std::fmt::Debug for HookHandlerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exec { argv } => write!(f, "Exec({argv:?})"),
            Self::Native(_) => f.write_str("Native"),
        }
    }
}

/// One internal hook.
#[derive(Debug, Clone)]
pub struct InternalHook {
    /// Its name (config key under `hooks.internal.entries`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// Events (families or exact) it listens to.
    pub events: Vec<String>,
    /// Where it came from.
    pub source: HookSource,
    /// Its folder (none for bundled native hooks).
    pub dir: Option<PathBuf>,
    /// Host requirements.
    pub requires: Requirements,
    /// How it runs.
    pub handler: HookHandlerKind,
}

impl InternalHook {
    /// Why it cannot run on this host (`env` from its config counts), or `None` when eligible.
    pub fn missing_requirements(&self, extra_env: &BTreeMap<String, String>) -> Option<String> {
        let on_path = |bin: &str| {
            std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        };
        let mut missing = Vec::new();
        for b in &self.requires.bins {
            if !on_path(b) {
                missing.push(format!("program `{b}`"));
            }
        }
        if !self.requires.any_bins.is_empty() && !self.requires.any_bins.iter().any(|b| on_path(b)) {
            missing.push(format!("one of {:?}", self.requires.any_bins));
        }
        for e in &self.requires.env {
            if std::env::var_os(e).is_none() && !extra_env.contains_key(e) {
                missing.push(format!("environment variable {e}"));
            }
        }
        let os = std::env::consts::OS;
        let names: &[&str] = match os {
            "macos" => &["macos", "darwin"],
            "windows" => &["windows", "win32"],
            "linux" => &["linux"],
            _ => &[],
        };
        if !self.requires.os.is_empty() && !self.requires.os.iter().any(|o| names.contains(&o.as_str())) {
            missing.push(format!("os {:?} (this is {os})", self.requires.os));
        }
        (!missing.is_empty()).then(|| format!("missing {}", missing.join(", ")))
    }
}

#[derive(serde::Deserialize)]
struct FrontMatter {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    metadata: Value,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
}

/// Parse one hook folder.
fn read_hook(dir: &Path, source: HookSource) -> Result<InternalHook, String> {
    let path = dir.join("HOOK.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body = text.strip_prefix("---").ok_or_else(|| format!("{}: no front matter (--- … ---)", path.display()))?;
    let end = body.find("\n---").ok_or_else(|| format!("{}: front matter is not closed with ---", path.display()))?;
    let fm: FrontMatter =
        serde_yaml_ng::from_str(&body[..end]).map_err(|e| format!("{}: front matter: {e}", path.display()))?;
    let meta = fm.metadata.get("homarus").or_else(|| fm.metadata.get("openclaw")).cloned().unwrap_or(Value::Null);
    let name = fm.name.or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_default();
    let events = strings(&meta["events"]);
    if events.is_empty() {
        return Err(format!("{}: metadata.openclaw.events is empty", path.display()));
    }
    for e in &events {
        if !INTERNAL_EVENTS.contains(&e.as_str()) {
            return Err(format!("{}: unknown event `{e}`", path.display()));
        }
    }
    let argv = match strings(&meta["command"]) {
        argv if !argv.is_empty() => argv,
        _ => {
            let file = ["handler", "handler.sh", "handler.py"].iter().map(|f| dir.join(f)).find(|p| p.is_file());
            match file {
                Some(f) => vec![f.display().to_string()],
                None if dir.join("handler.js").is_file() || dir.join("handler.ts").is_file() => {
                    return Err(format!(
                        "{}: JavaScript handlers are not supported by Homarus; use an executable `handler` (any language) or metadata.homarus.command",
                        path.display()
                    ))
                }
                None => return Err(format!("{}: no handler (an executable `handler`, `handler.sh` or `handler.py`)", path.display())),
            }
        }
    };
    let req = &meta["requires"];
    Ok(InternalHook {
        name,
        description: fm.description.unwrap_or_default(),
        events,
        source,
        dir: Some(dir.to_path_buf()),
        requires: Requirements {
            bins: strings(&req["bins"]),
            any_bins: strings(&req["anyBins"]),
            env: strings(&req["env"]),
            os: strings(&meta["os"]),
        },
        handler: HookHandlerKind::Exec { argv },
    })
}

/// Discover hooks: `bundled` first, then each root in order (a hook folder, or a folder of hook
/// folders). A later hook with the same name replaces an earlier one. Returns hooks and problems.
pub fn discover_internal_hooks(
    bundled: Vec<InternalHook>,
    roots: &[(HookSource, PathBuf)],
) -> (Vec<InternalHook>, Vec<String>) {
    let mut hooks: Vec<InternalHook> = bundled;
    let mut problems = Vec::new();
    let add = |h: InternalHook, hooks: &mut Vec<InternalHook>| match hooks.iter().position(|x| x.name == h.name) {
        Some(i) => hooks[i] = h,
        None => hooks.push(h),
    };
    for (source, root) in roots {
        let dirs: Vec<PathBuf> = if root.join("HOOK.md").is_file() {
            vec![root.clone()]
        } else {
            let mut d: Vec<PathBuf> = std::fs::read_dir(root)
                .map(|es| es.flatten().map(|e| e.path()).filter(|p| p.join("HOOK.md").is_file()).collect())
                .unwrap_or_default();
            d.sort();
            d
        };
        for dir in dirs {
            match read_hook(&dir, *source) {
                Ok(h) if *source == HookSource::Workspace && hooks.iter().any(|x| x.name == h.name) => problems.push(
                    format!("{}: a workspace hook cannot replace the existing hook {}; ignored", dir.display(), h.name),
                ),
                Ok(h) => add(h, &mut hooks),
                Err(e) => problems.push(e),
            }
        }
    }
    (hooks, problems)
}

/// Which hooks load under `hooks.internal`: off when `enabled` is false; when entries name hooks
/// (not `enabled: false`), exactly those; when `enabled` is true or extra folders are set, every hook
/// found in folders; otherwise none. Bundled hooks load only when an entry names them, workspace hooks
/// only with `enabled: true`. An entry with `enabled: false` always disables.
pub fn select_internal_hooks(hooks: &[InternalHook], cfg: &InternalHooksConfig) -> Vec<InternalHook> {
    if cfg.enabled == Some(false) {
        return Vec::new();
    }
    let named: Vec<&str> =
        cfg.entries.iter().filter(|(_, e)| e.enabled != Some(false)).map(|(n, _)| n.as_str()).collect();
    let open = named.is_empty() && (cfg.enabled == Some(true) || !cfg.load.extra_dirs.is_empty());
    hooks
        .iter()
        .filter(|h| cfg.entries.get(&h.name).and_then(|e| e.enabled) != Some(false))
        // Bundled hooks have side effects a user opts into one by one (an entry names them); workspace
        // hooks come with the workspace's content, so they run only when enabled explicitly.
        .filter(|h| match h.source {
            HookSource::Bundled => cfg.entries.contains_key(&h.name),
            HookSource::Workspace => cfg.entries.get(&h.name).and_then(|e| e.enabled) == Some(true),
            _ => true,
        })
        .filter(|h| open || named.contains(&h.name.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook_dir(root: &Path, name: &str, front: &str, handler: Option<&str>) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("HOOK.md"), format!("---\n{front}\n---\n# {name}\n")).unwrap();
        if let Some(h) = handler {
            std::fs::write(d.join(h), "#!/bin/sh\n").unwrap();
        }
        d
    }

    #[test]
    fn discovery_precedence_problems_and_selection() {
        let extra = tempfile::tempdir().unwrap();
        let managed = tempfile::tempdir().unwrap();
        hook_dir(
            extra.path(),
            "a",
            "name: a\nmetadata:\n  { \"openclaw\": { \"events\": [\"command:new\"] } }",
            Some("handler"),
        );
        hook_dir(
            managed.path(),
            "a",
            "name: a\ndescription: managed wins\nmetadata: {openclaw: {events: [gateway:startup]}}",
            Some("handler.sh"),
        );
        hook_dir(managed.path(), "js", "metadata: {openclaw: {events: [command]}}", Some("handler.js"));
        hook_dir(managed.path(), "bad", "metadata: {openclaw: {events: [nope:event]}}", Some("handler"));
        hook_dir(managed.path(), "cmd", "metadata: {homarus: {events: [command], command: [python3, h.py], requires: {bins: [definitely-not-installed-xyz]}, os: [linux, darwin]}}", None);
        let roots =
            vec![(HookSource::Extra, extra.path().to_path_buf()), (HookSource::Managed, managed.path().to_path_buf())];
        let (hooks, problems) = discover_internal_hooks(Vec::new(), &roots);
        let names: Vec<_> = hooks.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a", "cmd"]);
        assert_eq!(hooks[0].description, "managed wins");
        assert_eq!(hooks[0].source, HookSource::Managed);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("JavaScript handlers are not supported")));
        assert!(problems.iter().any(|p| p.contains("unknown event `nope:event`")));
        assert!(hooks[1].missing_requirements(&BTreeMap::new()).unwrap().contains("definitely-not-installed-xyz"));

        let cfg = |v: Value| -> InternalHooksConfig { serde_json::from_value(v).unwrap() };
        assert!(select_internal_hooks(&hooks, &cfg(serde_json::json!({}))).is_empty(), "off unless selected");
        assert_eq!(select_internal_hooks(&hooks, &cfg(serde_json::json!({"enabled": true}))).len(), 2);
        let only_a = select_internal_hooks(&hooks, &cfg(serde_json::json!({"enabled": true, "entries": {"a": {}}})));
        assert_eq!(only_a.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["a"]);
        let not_a = select_internal_hooks(
            &hooks,
            &cfg(serde_json::json!({"enabled": true, "entries": {"a": {"enabled": false}}})),
        );
        assert_eq!(not_a.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["cmd"]);
        assert!(
            select_internal_hooks(&hooks, &cfg(serde_json::json!({"enabled": false, "entries": {"a": {}}}))).is_empty()
        );
    }

    #[test]
    fn workspace_hooks_only_add_names_and_load_only_when_enabled_by_name() {
        let managed = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        hook_dir(managed.path(), "a", "metadata: {openclaw: {events: [command]}}", Some("handler"));
        hook_dir(ws.path(), "a", "description: hijack\nmetadata: {openclaw: {events: [command]}}", Some("handler"));
        hook_dir(ws.path(), "mine", "metadata: {openclaw: {events: [command]}}", Some("handler"));
        let roots =
            vec![(HookSource::Managed, managed.path().to_path_buf()), (HookSource::Workspace, ws.path().to_path_buf())];
        let (hooks, problems) = discover_internal_hooks(Vec::new(), &roots);
        assert_eq!(
            hooks.iter().map(|h| (h.name.as_str(), h.source)).collect::<Vec<_>>(),
            [("a", HookSource::Managed), ("mine", HookSource::Workspace)]
        );
        assert!(problems.iter().any(|p| p.contains("cannot replace the existing hook a")), "{problems:?}");
        let cfg = |v: Value| -> InternalHooksConfig { serde_json::from_value(v).unwrap() };
        let open = select_internal_hooks(&hooks, &cfg(serde_json::json!({"enabled": true})));
        assert_eq!(open.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["a"], "workspace hooks stay off");
        let named = select_internal_hooks(&hooks, &cfg(serde_json::json!({"entries": {"mine": {"enabled": true}}})));
        assert_eq!(named.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["mine"]);
    }
}
