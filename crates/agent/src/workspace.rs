//! The agent workspace: the files that shape the system prompt (`AGENTS.md`, `SOUL.md`, `USER.md`,
//! `IDENTITY.md`, `TOOLS.md`, `MEMORY.md`, `memory/<today and yesterday>.md`), created from
//! templates on first use, and the system prompt built from them.
use std::path::{Path, PathBuf};

use chrono::{Duration, Local};

/// Per-file cap on injected bootstrap content, in characters (`agents.defaults.bootstrapMaxChars`).
pub const DEFAULT_BOOTSTRAP_MAX_CHARS: usize = 20_000;
/// Cap on all injected files together.
pub const TOTAL_BOOTSTRAP_MAX_CHARS: usize = 150_000;

/// Files injected in this order.
const BOOTSTRAP_FILES: &[&str] = &["AGENTS.md", "SOUL.md", "IDENTITY.md", "USER.md", "TOOLS.md", "MEMORY.md"];

const TEMPLATES: &[(&str, &str)] = &[
    (
        "AGENTS.md",
        "# AGENTS.md\n\nThis folder is your workspace. Files here persist between conversations.\n\n\
         - Read `MEMORY.md` and today's `memory/<date>.md` for context you saved earlier.\n\
         - Write down what you should remember: durable facts in `MEMORY.md`, the day's notes in `memory/<date>.md`.\n\
         - Ask before doing anything destructive or anything that leaves this machine.\n",
    ),
    (
        "SOUL.md",
        "# SOUL.md\n\nBe direct, warm and precise. Say what you did and what you did not do. \
         Prefer short answers; expand when asked.\n",
    ),
    ("IDENTITY.md", "# IDENTITY.md\n\n- Name: (pick one with your human)\n- Emoji: 🦞\n"),
    ("USER.md", "# USER.md\n\nWhat you know about your human: name, time zone, preferences. Keep it current.\n"),
    (
        "TOOLS.md",
        "# TOOLS.md\n\nNotes about local tools and conventions (hosts, paths, commands). The tool list itself \
         comes from the gateway.\n",
    ),
];

/// One injected file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapFile {
    /// Name shown in the prompt (`AGENTS.md`, `memory/2026-11-26.md`).
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Content after the cap.
    pub content: String,
    /// Whether the cap cut it.
    pub truncated: bool,
}

/// Create the workspace and its template files when missing (never overwrites).
pub fn ensure_workspace(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("memory"))?;
    for (name, text) in TEMPLATES {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(path, text)?;
        }
    }
    Ok(())
}

fn cut(text: String, max: usize) -> (String, bool) {
    if text.chars().count() <= max {
        return (text, false);
    }
    let kept: String = text.chars().take(max).collect();
    (format!("{kept}\n[… truncated at {max} characters]"), true)
}

/// The files to inject, each capped at `max_chars`, all together at [`TOTAL_BOOTSTRAP_MAX_CHARS`].
pub fn load_bootstrap(dir: &Path, max_chars: usize) -> Vec<BootstrapFile> {
    let today = Local::now().date_naive();
    let daily = [today - Duration::days(1), today].map(|d| format!("memory/{}.md", d.format("%Y-%m-%d")));
    let mut out = Vec::new();
    let mut total = 0;
    for name in BOOTSTRAP_FILES.iter().map(|s| s.to_string()).chain(daily) {
        let path = dir.join(&name);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        if text.trim().is_empty() {
            continue;
        }
        let budget = max_chars.min(TOTAL_BOOTSTRAP_MAX_CHARS.saturating_sub(total));
        if budget == 0 {
            break;
        }
        let (content, truncated) = cut(text, budget);
        total += content.chars().count();
        out.push(BootstrapFile { name, path, content, truncated });
    }
    out
}

/// What the system prompt is built from.
#[derive(Debug, Clone)]
pub struct PromptContext<'a> {
    /// Agent id.
    pub agent_id: &'a str,
    /// Workspace folder.
    pub workspace: &'a Path,
    /// Names of the tools offered.
    pub tools: &'a [String],
    /// `provider/model`.
    pub model: &'a str,
    /// Injected files.
    pub files: &'a [BootstrapFile],
    /// Extra text (`extraSystemPrompt`, plugin additions).
    pub extra: Option<&'a str>,
}

/// The system prompt.
pub fn system_prompt(ctx: &PromptContext<'_>) -> String {
    let mut p = String::new();
    p.push_str("You are a personal assistant running inside Homarus, an always-on agent gateway.\n\n");
    p.push_str("## Tooling\n");
    if ctx.tools.is_empty() {
        p.push_str("No tools are available in this run.\n");
    } else {
        p.push_str(&format!("Tools available: {}.\n", ctx.tools.join(", ")));
    }
    p.push_str(&format!(
        "\n## Workspace\nYour working directory is {}. Relative paths resolve there.\n",
        ctx.workspace.display()
    ));
    p.push_str(&format!(
        "\n## Runtime\nagent={} model={} time={}\n",
        ctx.agent_id,
        ctx.model,
        Local::now().format("%Y-%m-%d %H:%M %Z")
    ));
    p.push_str(
        "\n## Silent replies\nWhen nothing needs saying (for example a heartbeat with nothing to report), reply with \
         exactly NO_REPLY (or HEARTBEAT_OK for heartbeats) and nothing else.\n",
    );
    if let Some(extra) = ctx.extra.filter(|e| !e.trim().is_empty()) {
        p.push_str(&format!("\n{extra}\n"));
    }
    if !ctx.files.is_empty() {
        p.push_str("\n# Project Context\nThe following workspace files were loaded:\n");
        for f in ctx.files {
            p.push_str(&format!("\n## {}\n{}\n", f.name, f.content));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_once_then_files_in_the_prompt_with_caps() {
        let dir = tempfile::tempdir().unwrap();
        ensure_workspace(dir.path()).unwrap();
        std::fs::write(dir.path().join("SOUL.md"), "custom soul").unwrap();
        ensure_workspace(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("SOUL.md")).unwrap(), "custom soul", "never overwritten");
        let today = Local::now().date_naive().format("%Y-%m-%d").to_string();
        std::fs::write(dir.path().join(format!("memory/{today}.md")), "x".repeat(100)).unwrap();
        let files = load_bootstrap(dir.path(), 50);
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names[0], "AGENTS.md");
        assert!(names.contains(&format!("memory/{today}.md").as_str()), "{names:?}");
        let daily = files.iter().find(|f| f.name.starts_with("memory/")).unwrap();
        assert!(daily.truncated);
        let prompt = system_prompt(&PromptContext {
            agent_id: "main",
            workspace: dir.path(),
            tools: &["read".into()],
            model: "local/m",
            files: &files,
            extra: None,
        });
        assert!(prompt.contains("## SOUL.md\ncustom soul"));
        assert!(prompt.contains("Tools available: read."));
    }
}
