//! The built-in tools against real files, a real shell and a real HTTP server on loopback.
use std::time::{Duration, Instant};

use homarus_agent::tools::run_builtin;
use homarus_agent::ToolContext;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn ctx(dir: &std::path::Path) -> ToolContext {
    ToolContext {
        workspace: dir.to_path_buf(),
        exec_timeout: Duration::from_secs(10),
        http: reqwest::Client::new(),
        memory_db: dir.join(".memory.sqlite"),
    }
}

#[tokio::test]
async fn files_read_write_and_edit_in_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let cancel = CancellationToken::new();
    let out =
        run_builtin("write", &json!({"path": "a/b.txt", "content": "one\ntwo\nthree\n"}), &c, &cancel).await.unwrap();
    assert!(!out.is_error, "{}", out.text);
    let out = run_builtin("read", &json!({"path": "a/b.txt", "offset": 2, "limit": 1}), &c, &cancel).await.unwrap();
    assert_eq!(out.text, "two");
    let out =
        run_builtin("edit", &json!({"path": "a/b.txt", "oldText": "two", "newText": "2"}), &c, &cancel).await.unwrap();
    assert!(!out.is_error);
    assert_eq!(std::fs::read_to_string(dir.path().join("a/b.txt")).unwrap(), "one\n2\nthree\n");
    let out =
        run_builtin("edit", &json!({"path": "a/b.txt", "oldText": "e", "newText": "E"}), &c, &cancel).await.unwrap();
    assert!(out.is_error && out.text.contains("occurs 3 times"), "{}", out.text);
    let out = run_builtin("read", &json!({"path": "nope.txt"}), &c, &cancel).await.unwrap();
    assert!(out.is_error && out.text.contains("nope.txt"), "{}", out.text);
    let out = run_builtin("read", &json!({}), &c, &cancel).await.unwrap();
    assert_eq!(out.text, "missing string argument \"path\"");
    assert!(run_builtin("no_such_tool", &json!({}), &c, &cancel).await.is_none());
}

#[tokio::test]
async fn exec_reports_exit_code_and_output_and_kills_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let cancel = CancellationToken::new();
    let out = run_builtin("exec", &json!({"command": "pwd; echo oops >&2"}), &c, &cancel).await.unwrap();
    assert!(!out.is_error);
    assert!(
        out.text.contains("exit code: 0")
            && out.text.contains(&dir.path().display().to_string())
            && out.text.contains("oops"),
        "{}",
        out.text
    );
    let started = Instant::now();
    let marker = format!("sleep {}", 3000 + std::process::id() % 1000);
    let cmd = format!("{marker} & {marker}");
    let out = run_builtin("exec", &json!({"command": cmd, "timeout": 1}), &c, &cancel).await.unwrap();
    assert!(out.is_error && out.text.contains("timed out after 1 s"), "{}", out.text);
    assert!(started.elapsed() < Duration::from_secs(10));
    // The whole process group is gone, the background `sleep` included (and nothing else was hit:
    // this test process is still here to check).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = std::process::Command::new("pgrep").args(["-f", &marker]).output().unwrap();
        if left.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still running: {}", String::from_utf8_lossy(&left.stdout));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let big =
        run_builtin("exec", &json!({"command": "head -c 200000 /dev/zero | tr '\\0' x"}), &c, &cancel).await.unwrap();
    assert!(big.text.len() < 60_000 && big.text.contains("truncated"), "output is capped: {}", big.text.len());
}

#[tokio::test]
async fn web_fetch_reads_a_page_as_text() {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/page", get(|| async { axum::response::Html("<html><head><script>x()</script></head><body><h1>Lobsters</h1><p>are &amp; crustaceans</p></body></html>") }))
        .route("/missing", get(|| async { (axum::http::StatusCode::NOT_FOUND, "gone") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let cancel = CancellationToken::new();
    let out = run_builtin("web_fetch", &json!({"url": format!("http://{addr}/page")}), &c, &cancel).await.unwrap();
    assert!(!out.is_error);
    assert_eq!(out.text, "HTTP 200\nLobsters\nare & crustaceans");
    let out = run_builtin("web_fetch", &json!({"url": format!("http://{addr}/missing")}), &c, &cancel).await.unwrap();
    assert!(out.is_error && out.text.starts_with("HTTP 404"), "{}", out.text);
    let out = run_builtin("web_fetch", &json!({"url": "file:///etc/passwd"}), &c, &cancel).await.unwrap();
    assert!(out.is_error && out.text.contains("only http and https"), "{}", out.text);
    server.abort();
}
