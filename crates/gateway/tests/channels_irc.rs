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

/// Serve one IRC registration on `listener` the way a SASL-capable network does, recording every
/// line the client sent; answers PING and closes the connection after `close_after` lines.
async fn fake_ircd_session(listener: &tokio::net::TcpListener, close_after: Option<&str>) -> Vec<String> {
    let (tcp, _) = listener.accept().await.unwrap();
    let (r, mut w) = tcp.into_split();
    let mut reader = BufReader::new(r);
    let mut seen = Vec::new();
    // Registration completes after CAP END when the client started capability negotiation.
    let (mut negotiating, mut user_seen) = (false, false);
    let welcome = ":srv 001 homarus :Welcome\r\nPING :check-1".to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut line = String::new();
        let n = match tokio::time::timeout_at(deadline, reader.read_line(&mut line)).await {
            Ok(Ok(n)) => n,
            _ => break,
        };
        if n == 0 {
            break;
        }
        let line = line.trim_end().to_string();
        seen.push(line.clone());
        let reply: Option<String> = match line.as_str() {
            "CAP REQ :sasl" => {
                negotiating = true;
                Some(":srv CAP * ACK :sasl".into())
            }
            "CAP END" => {
                negotiating = false;
                user_seen.then(|| welcome.clone())
            }
            "AUTHENTICATE PLAIN" => Some("AUTHENTICATE +".into()),
            l if l.starts_with("AUTHENTICATE ") => {
                use base64::Engine;
                let b = base64::engine::general_purpose::STANDARD.decode(&l[13..]).unwrap();
                if b == b"botacct\0botacct\0sasl-pw" {
                    Some(":srv 903 homarus :SASL authentication successful".into())
                } else {
                    Some(":srv 904 homarus :SASL authentication failed".into())
                }
            }
            l if l.starts_with("USER ") => {
                user_seen = true;
                (!negotiating).then(|| welcome.clone())
            }
            _ => None,
        };
        if let Some(r) = reply {
            w.write_all(format!("{r}\r\n").as_bytes()).await.unwrap();
        }
        if close_after.is_some_and(|c| line.starts_with(c)) {
            break;
        }
    }
    seen
}

#[tokio::test]
async fn sasl_nickserv_ping_and_reconnect_after_the_server_drops() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = format!(
        r##"{{channels: {{irc: {{host: "127.0.0.1", port: {port}, tls: false, nick: "homarus", channels: ["#ops"],
                                sasl: {{account: "botacct", password: "sasl-pw"}},
                                nickserv: {{password: "ns-pw"}}}}}}}}"##
    );
    let gw = TestGateway::start_with(Some(&config)).await;
    // First connection: SASL, registration, NickServ, JOIN, PONG; then the server drops it.
    let first = fake_ircd_session(&listener, Some("PONG")).await;
    let pos =
        |needle: &str| first.iter().position(|l| l == needle).unwrap_or_else(|| panic!("{needle} missing: {first:?}"));
    assert!(pos("CAP REQ :sasl") < pos("NICK homarus"), "{first:?}");
    assert!(pos("CAP END") < pos("PRIVMSG NickServ :IDENTIFY ns-pw"));
    assert!(pos("PRIVMSG NickServ :IDENTIFY ns-pw") < pos("JOIN #ops"));
    assert_eq!(first.last().unwrap(), "PONG :check-1");
    // It comes back on its own, with backoff.
    let second = fake_ircd_session(&listener, Some("PONG")).await;
    assert!(second.contains(&"JOIN #ops".to_string()), "{second:?}");
    let (mut c, _) = connect_cli(&gw.url()).await;
    let st = c.call("channels.status", json!({})).await;
    let acc = &st["channelAccounts"]["irc"][0];
    assert_eq!(acc["running"], true);
    assert!(acc["lastStartAt"].as_i64().is_some());
}

#[tokio::test]
async fn tls_connection_to_miniircd() {
    let Some(dir) = peers::peers_dir() else { return };
    let (server, cert) = peers::miniircd_tls(&dir);
    // The only test in this binary that needs it; the channel trusts SSL_CERT_FILE besides the web roots.
    std::env::set_var("SSL_CERT_FILE", &cert);
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Text("secure hello".into())]);
    let config = format!(
        r##"{{
          models: {{providers: {{local: {{baseUrl: "{}", apiKey: "sk-test", api: "openai-completions",
                     models: [{{id: "mock-model", contextWindow: 120000, maxTokens: 1024}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "local/mock-model"}}}}}},
          channels: {{irc: {{host: "127.0.0.1", port: {}, tls: true, nick: "homarus", dmPolicy: "open", allowFrom: ["*"]}}}}
        }}"##,
        mock.openai_base_url(),
        server.port
    );
    let gw = TestGateway::start_with(Some(&config)).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    c.until("channels.status", json!({}), |v| v["channelAccounts"]["irc"][0]["connected"] == true).await;
    // The simulated user speaks TLS too.
    let tcp = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)).connect(name, tcp).await.unwrap();
    let (r, mut w) = tokio::io::split(tls);
    let mut reader = BufReader::new(r);
    w.write_all(b"NICK tina\r\nUSER tina 0 * :tina\r\n").await.unwrap();
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut sent = false;
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout_at(deadline, reader.read_line(&mut line)).await.expect("a reply in time").unwrap();
        assert!(n > 0, "closed; saw {got}");
        if let Some(t) = line.trim_end().strip_prefix("PING ") {
            w.write_all(format!("PONG {t}\r\n").as_bytes()).await.unwrap();
        }
        if line.contains(" 001 ") && !sent {
            w.write_all(b"PRIVMSG homarus :hello over tls\r\n").await.unwrap();
            sent = true;
        }
        got.push_str(&line);
        if line.contains("PRIVMSG tina :secure hello") {
            break;
        }
    }
}
