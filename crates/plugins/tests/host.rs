//! A real plugin process (Python) driven through the hook runner: decisions, crash and restart.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homarus_config::PluginsConfig;
use homarus_hooks::HookRunner;
use homarus_plugins::PluginHost;
use serde_json::json;

fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flaky");
    for f in ["homarus.plugin.json", "flaky.py"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

async fn wait_running(host: &PluginHost) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while host.statuses()[0].state != "running" {
        assert!(Instant::now() < deadline, "plugin not running: {:?}", host.statuses());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn decisions_come_from_the_plugin_and_a_crash_is_restarted() {
    let dir = fixture_copy();
    let runner = Arc::new(HookRunner::new());
    let host = PluginHost::start(&[dir.path().to_path_buf()], &PluginsConfig::default(), runner.clone(), "test");
    assert!(host.problems().is_empty(), "{:?}", host.problems());
    assert!(runner.has_handlers("message_sending"));

    // Calls made before the process is ready wait for it.
    let out = runner.run_decision("message_sending", &json!({"content": "hi"}), &json!({})).await;
    assert_eq!(out.decisions, vec![("flaky".to_string(), json!({"content": "hi!"}))]);
    let out = runner.run_decision("message_sending", &json!({"content": "HI"}), &json!({})).await;
    assert_eq!(out.blocked, Some(("flaky".into(), "no shouting".into())));

    // The plugin dies mid-call: the call fails at once (not at its budget), and it comes back.
    let started = Instant::now();
    let errors = runner.run_observation("session_end", &json!({"crash": true}), &json!({})).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    wait_running(&host).await;
    let s = &host.statuses()[0];
    assert!(s.restarts >= 1 && s.last_error.as_deref().is_some_and(|e| e.contains("exited")), "{s:?}");
    let out = runner.run_decision("message_sending", &json!({"content": "back"}), &json!({})).await;
    assert_eq!(out.decisions[0].1, json!({"content": "back!"}));
    let starts = std::fs::read_to_string(dir.path().join("starts.txt")).unwrap();
    assert_eq!(starts.lines().count(), 2);

    host.stop().await;
    assert!(!runner.has_handlers("message_sending"), "stopping unregisters the plugin's hooks");
}

#[tokio::test]
async fn disabled_plugins_do_not_start() {
    let dir = fixture_copy();
    let runner = Arc::new(HookRunner::new());
    let cfg: PluginsConfig = serde_json::from_value(json!({"entries": {"flaky": {"enabled": false}}})).unwrap();
    let host = PluginHost::start(&[dir.path().to_path_buf()], &cfg, runner.clone(), "test");
    assert!(host.statuses().is_empty());
    assert!(!runner.has_handlers("message_sending"));
    let cfg: PluginsConfig = serde_json::from_value(json!({"allow": ["other"]})).unwrap();
    assert!(PluginHost::start(&[dir.path().to_path_buf()], &cfg, runner, "test").statuses().is_empty());
}

#[tokio::test]
async fn conversation_and_prompt_hooks_need_the_plugins_permission() {
    let dir = fixture_copy();
    std::fs::write(
        dir.path().join("homarus.plugin.json"),
        r#"{"id": "flaky", "name": "Flaky", "command": ["python3", "flaky.py"], "hooks": ["llm_output", "before_prompt_build", "session_end"]}"#,
    )
    .unwrap();
    let runner = Arc::new(HookRunner::new());
    let cfg: PluginsConfig =
        serde_json::from_value(json!({"entries": {"flaky": {"hooks": {"allowPromptInjection": false}}}})).unwrap();
    let host = PluginHost::start(&[dir.path().to_path_buf()], &cfg, runner.clone(), "test");
    assert!(!runner.has_handlers("llm_output"));
    assert!(!runner.has_handlers("before_prompt_build"));
    assert!(runner.has_handlers("session_end"));
    let problems = host.problems().join("\n");
    assert!(problems.contains("hook llm_output sees conversation content and needs plugins.entries.flaky.hooks.allowConversationAccess: true"), "{problems}");
    assert!(problems.contains("allowPromptInjection: false"), "{problems}");
    host.stop().await;

    let runner = Arc::new(HookRunner::new());
    let cfg: PluginsConfig =
        serde_json::from_value(json!({"entries": {"flaky": {"hooks": {"allowConversationAccess": true}}}})).unwrap();
    let host = PluginHost::start(&[dir.path().to_path_buf()], &cfg, runner.clone(), "test");
    assert!(runner.has_handlers("llm_output") && runner.has_handlers("before_prompt_build"));
    host.stop().await;
}
