//! IRC end to end against a real server (miniircd): the gateway's account registers and joins, a
//! simulated user (a raw IRC client) pairs by DM, is answered, and a channel mention is answered in
//! the channel, a long reply split into lines that fit IRC's limit.
mod common;
mod peers;

use std::time::Duration;

use common::*;
use homarus_mockllm::{MockLlm, Reply};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A raw IRC client for the simulated user.
struct IrcUser {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl IrcUser {
    async fn connect(port: u16, nick: &str) -> Self {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (r, writer) = tcp.into_split();
        let mut u = IrcUser { reader: BufReader::new(r), writer };
        u.send(&format!("NICK {nick}")).await;
        u.send(&format!("USER {nick} 0 * :{nick}")).await;
        u.expect(|l| l.contains(" 001 ")).await;
        u
    }

    async fn send(&mut self, line: &str) {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    }

    /// Read lines (answering PING) until one matches; every line read is returned.
    async fn expect(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("no matching line; saw {seen:?}"))
                .unwrap();
            assert!(n > 0, "server closed; saw {seen:?}");
            let line = line.trim_end().to_string();
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}")).await;
                continue;
            }
            let done = pred(&line);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test]
async fn miniircd_pairing_dm_and_channel_mention() {
    let Some(dir) = peers::peers_dir() else { return };
    let server = peers::miniircd(&dir);
    let mock = MockLlm::start().await.unwrap();
    let config = format!(
        r##"{{
          models: {{providers: {{local: {{baseUrl: "{}", apiKey: "sk-test", api: "openai-completions",
                     models: [{{id: "mock-model", contextWindow: 120000, maxTokens: 1024}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "local/mock-model"}}}}}},
          channels: {{irc: {{host: "127.0.0.1", port: {}, tls: false, nick: "homarus", channels: ["#test"],
                            groups: {{"#test": {{requireMention: true, allowFrom: ["*"]}}}}}}}}
        }}"##,
        mock.openai_base_url(),
        server.port
    );
    let gw = TestGateway::start_with(Some(&config)).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let st = c.until("channels.status", json!({}), |v| v["channelAccounts"]["irc"][0]["connected"] == true).await;
    assert_eq!(st["channelAccounts"]["irc"][0]["bot"], "homarus");

    let mut alice = IrcUser::connect(server.port, "alice").await;
    alice.send("JOIN #test").await;
    // The bot is in the channel (joined after registering).
    alice.send("NAMES #test").await;
    let names = alice.expect(|l| l.contains(" 353 ") || l.contains(" 366 ")).await;
    let _ = names;
    alice.send("PRIVMSG homarus :hello there").await;
    let lines = alice.expect(|l| l.contains("PRIVMSG alice :Pairing code:")).await;
    let code_line = lines.last().unwrap();
    let code = code_line.rsplit("Pairing code:").next().unwrap().trim().to_string();
    let list = c.call("channels.pairing.list", json!({"channel": "irc"})).await;
    let sender = list["requests"][0]["id"].as_str().unwrap().to_string();
    assert!(sender.starts_with("alice!"), "IRC senders are nick!user@host: {sender}");
    c.call("channels.pairing.approve", json!({"channel": "irc", "code": code})).await;

    mock.push([Reply::Text("Hello **alice**, nice to meet you.".into())]);
    alice.send("PRIVMSG homarus :hello again").await;
    alice.expect(|l| l.ends_with("PRIVMSG alice :Hello alice, nice to meet you.")).await;

    // In the channel: no mention, no answer; a mention gets a long reply split into lines.
    alice.send("PRIVMSG #test :just talking here").await;
    let long = (1..=60).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    mock.push_matching("status?", Reply::Text(format!("{long} END")));
    alice.send("PRIVMSG #test :homarus: status?").await;
    let lines = alice.expect(|l| l.contains("PRIVMSG #test :") && l.ends_with("END")).await;
    let parts: Vec<&String> = lines.iter().filter(|l| l.contains("PRIVMSG #test :")).collect();
    assert!(parts.len() >= 2, "split into several lines: {parts:?}");
    assert!(parts.iter().all(|l| l.len() <= 512), "{parts:?}");
    let joined: String = parts.iter().map(|l| l.split("PRIVMSG #test :").nth(1).unwrap()).collect::<Vec<_>>().join(" ");
    assert_eq!(joined, format!("{long} END"));
    let asked: Vec<String> = mock.requests().iter().map(|r| r["messages"].to_string()).collect();
    assert_eq!(asked.len(), 2);
    assert!(!asked.iter().any(|r| r.contains("just talking")));
    let sessions = c.call("sessions.list", json!({})).await;
    assert!(sessions["sessions"].as_array().unwrap().iter().any(|s| s["key"] == "agent:main:irc:channel:#test"));
}
