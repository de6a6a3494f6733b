//! Runs the real `homarus` binary as a daemon on an ephemeral loopback port; stops it by PID.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_homarus");

pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub token: String,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Daemon {
    /// Start `homarus gateway --port 0 <extra>` in a fresh state folder and wait for its
    /// "listening on" line (the readiness signal).
    pub fn start(extra: &[&str], config: Option<&str>) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), extra, config)
    }

    /// Like [`Daemon::start`], in an existing state folder (a restart).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str], config: Option<&str>) -> Self {
        if let Some(c) = config {
            std::fs::write(dir.path().join("homarus.json"), c).unwrap();
        }
        let mut child = Command::new(BIN)
            .args(["gateway", "--port", "0"])
            .args(extra)
            .env("HOMARUS_STATE_DIR", dir.path())
            .env_remove("HOMARUS_CONFIG_PATH")
            .env_remove("HOMARUS_GATEWAY_TOKEN")
            .env("HOME", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Self { child, dir, url: String::new(), token: String::new(), lines: rx, seen: Vec::new() };
        d.url = d.wait_for_url();
        d.token = std::fs::read_to_string(d.dir.path().join("gateway-token"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        d
    }

    /// Next stdout line, waiting at most 15 s.
    pub fn next_line(&mut self) -> Option<String> {
        let line = self.lines.recv_timeout(Duration::from_secs(15)).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    pub fn wait_for_url(&mut self) -> String {
        while let Some(line) = self.next_line() {
            if let Some(url) = line.strip_prefix("homarus gateway listening on ") {
                return url.to_string();
            }
        }
        panic!("gateway did not report readiness; stdout: {:?}", self.seen);
    }

    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Run `homarus <args>` against this gateway's state folder.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("HOMARUS_STATE_DIR", self.dir.path())
            .env_remove("HOMARUS_CONFIG_PATH")
            .env_remove("HOMARUS_GATEWAY_TOKEN")
            .env_remove("HOMARUS_GATEWAY_URL")
            .output()
            .unwrap()
    }
}

impl Daemon {
    /// `homarus gateway call <method> --params <params> --json` against this gateway; the payload.
    pub fn call_json(&self, method: &str, params: &str) -> serde_json::Value {
        let out = self.cli(&[
            "gateway",
            "call",
            method,
            "--params",
            params,
            "--json",
            "--url",
            &self.url,
            "--token",
            &self.token,
        ]);
        assert!(out.status.success(), "{method}: {}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    /// `kill -9` the gateway and hand back its state folder.
    pub fn kill_9(mut self) -> tempfile::TempDir {
        self.signal(9);
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `homarus <args>` with `state_dir` as its state folder (no gateway needed).
pub fn run_in(state_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("HOMARUS_STATE_DIR", state_dir).env_remove("HOMARUS_CONFIG_PATH").output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A scripted LLM server (real OpenAI wire format over HTTP/SSE) on its own runtime, for tests
/// that drive the `homarus` binary; and a config that points the main agent at it.
pub struct MockModel {
    pub server: homarus_mockllm::MockLlm,
    _rt: tokio::runtime::Runtime,
}

impl MockModel {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let server = rt.block_on(homarus_mockllm::MockLlm::start()).unwrap();
        Self { server, _rt: rt }
    }

    /// `models` + `agents` config text for this server.
    pub fn config(&self) -> String {
        format!(
            r#"{{"models":{{"providers":{{"local":{{"baseUrl":"{}","apiKey":"sk-test","api":"openai-completions","models":[{{"id":"mock-model","name":"Mock Model","reasoning":false,"input":["text"],"cost":{{"input":0,"output":0,"cacheRead":0,"cacheWrite":0}},"contextWindow":120000,"maxTokens":1024}}]}}}}}},"agents":{{"defaults":{{"model":{{"primary":"local/mock-model"}}}}}}}}"#,
            self.server.openai_base_url()
        )
    }
}
