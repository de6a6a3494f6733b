//! IRC over TCP or TLS: registration (server password, SASL PLAIN, NickServ), joining the configured
//! channels, channel messages and private messages, replies split to IRC's line limit, and flood
//! control (a burst, then one line per interval). Senders are identified as `nick!user@host`.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::format::{chunk, render, Markup};
use crate::{
    now_ms, set_status, AccountIo, AccountTask, Channel, ChannelError, ChannelSettings, ChatKind, InboundMessage,
    Outbound, OutboundRequest, Receipt,
};

/// The `irc` channel.
pub struct Irc;

const ID: &str = "irc";
/// Longest line read from the server; longer lines are cut (hostile servers).
const MAX_LINE: usize = 8 * 1024;
/// Bytes of text per PRIVMSG (the 512-byte line also carries the prefix the server adds).
const DEFAULT_LINE_BYTES: usize = 350;
/// Lines sent at once before the flood limiter spaces them.
const FLOOD_BURST: u32 = 5;
/// Interval between lines after the burst.
const FLOOD_INTERVAL: Duration = Duration::from_millis(500);
/// Give up a connection attempt or registration after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

impl Channel for Irc {
    fn id(&self) -> &'static str {
        ID
    }

    fn text_limit(&self) -> usize {
        DEFAULT_LINE_BYTES
    }

    fn normalize_id(&self, raw: &str) -> String {
        let raw = raw.trim();
        raw.strip_prefix("irc:").unwrap_or(raw).to_lowercase()
    }

    /// Legacy keys `irc:#channel` (a channel) and `irc:<nick>` (a private chat).
    fn legacy_chat_kind(&self, scoped_key: &str) -> Option<ChatKind> {
        let id = scoped_key.strip_prefix("irc:")?;
        Some(if id.starts_with(['#', '&']) { ChatKind::Channel } else { ChatKind::Direct })
    }

    fn start(&self, io: AccountIo) -> Result<AccountTask, ChannelError> {
        let s = &io.settings;
        let host = s.host.clone().or_else(|| env_default(&io.account_id, "IRC_HOST")).ok_or_else(|| {
            ChannelError::Config(format!("channels.{ID}.host is required (account {})", io.account_id))
        })?;
        let nick = s.nick.clone().or_else(|| env_default(&io.account_id, "IRC_NICK")).ok_or_else(|| {
            ChannelError::Config(format!("channels.{ID}.nick is required (account {})", io.account_id))
        })?;
        if nick.contains([' ', '\r', '\n']) {
            return Err(ChannelError::Config(format!("channels.{ID}.nick {nick:?} is not a valid nick")));
        }
        let tls = s.tls.unwrap_or(true);
        let port = s.port.unwrap_or(if tls { 6697 } else { 6667 });
        let conf = Arc::new(Conf { host, port, tls, nick, settings: s.clone() });
        Ok(Box::pin(run(conf, io)))
    }
}

fn env_default(account: &str, var: &str) -> Option<String> {
    (account == "default").then(|| std::env::var(var).ok()).flatten().filter(|v| !v.is_empty())
}

struct Conf {
    host: String,
    port: u16,
    tls: bool,
    nick: String,
    settings: ChannelSettings,
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

async fn connect(conf: &Conf) -> Result<Box<dyn Conn>, String> {
    let addr = format!("{}:{}", conf.host, conf.port);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    if !conf.tls {
        return Ok(Box::new(tcp));
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Also trust the certificates in SSL_CERT_FILE (a private network's CA, a self-signed test server).
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        match CertificateDer::pem_file_iter(&path) {
            Ok(certs) => {
                for cert in certs.flatten() {
                    if let Err(e) = roots.add(cert) {
                        tracing::warn!(channel = ID, error = %e, "a certificate in SSL_CERT_FILE was not usable");
                    }
                }
            }
            Err(e) => tracing::warn!(channel = ID, error = %e, "cannot read SSL_CERT_FILE"),
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(conf.host.clone()).map_err(|e| format!("{}: {e}", conf.host))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {addr}: {e}"))?;
    Ok(Box::new(tls))
}

async fn run(conf: Arc<Conf>, mut io: AccountIo) {
    set_status(&io.status, |s| {
        s.running = true;
        s.last_start_at = Some(now_ms());
        s.bot = Some(conf.nick.clone());
    });
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let outcome = match connect(&conf).await {
            Ok(conn) => session(&conf, conn, &mut io, &mut backoff).await,
            Err(e) => Err(e),
        };
        set_status(&io.status, |s| s.connected = false);
        if io.shutdown.is_cancelled() {
            break;
        }
        let e = outcome.err().unwrap_or_else(|| "the server closed the connection".into());
        set_status(&io.status, |s| {
            s.restart_pending = true;
            s.reconnect_attempts = backoff.attempts() + 1;
            s.last_error = Some(e.clone());
        });
        tracing::warn!(channel = ID, account = %io.account_id, error = %e, "IRC connection lost; reconnecting");
        // Nothing can be sent while disconnected: refuse what is queued rather than hold it.
        crate::refuse_pending(&mut io, ID);
        if !backoff.wait(&io.shutdown).await {
            break;
        }
    }
    crate::refuse_pending(&mut io, ID);
    set_status(&io.status, |s| {
        s.running = false;
        s.connected = false;
    });
}

/// One parsed line: `:prefix COMMAND params… :trailing`.
#[derive(Debug, PartialEq)]
struct Line {
    prefix: Option<String>,
    command: String,
    params: Vec<String>,
}

fn parse_line(raw: &str) -> Option<Line> {
    let mut rest = raw.trim_end_matches(['\r', '\n']);
    // IRCv3 tags are ignored.
    if rest.starts_with('@') {
        rest = rest.split_once(' ')?.1;
    }
    let prefix = if let Some(p) = rest.strip_prefix(':') {
        let (p, r) = p.split_once(' ')?;
        rest = r;
        Some(p.to_string())
    } else {
        None
    };
    let (head, trailing) = match rest.split_once(" :") {
        Some((h, t)) => (h, Some(t)),
        None => (rest, None),
    };
    let mut parts = head.split(' ').filter(|s| !s.is_empty());
    let command = parts.next()?.to_ascii_uppercase();
    let mut params: Vec<String> = parts.map(str::to_string).collect();
    if let Some(t) = trailing {
        params.push(t.to_string());
    }
    Some(Line { prefix, command, params })
}

/// Strip CR, LF and NUL so text can never inject a command.
fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')).collect()
}

struct Writer {
    conn: tokio::io::WriteHalf<Box<dyn Conn>>,
    sent_in_burst: u32,
    last: Instant,
}

impl Writer {
    async fn raw(&mut self, line: &str) -> Result<(), String> {
        let line = format!("{}\r\n", sanitize(line));
        self.conn.write_all(line.as_bytes()).await.map_err(|e| format!("write failed: {e}"))
    }

    /// Send with flood control: a burst, then one line per interval.
    async fn throttled(&mut self, line: &str) -> Result<(), String> {
        if self.last.elapsed() > FLOOD_INTERVAL * FLOOD_BURST {
            self.sent_in_burst = 0;
        }
        if self.sent_in_burst >= FLOOD_BURST {
            tokio::time::sleep_until(self.last + FLOOD_INTERVAL).await;
        }
        self.sent_in_burst += 1;
        self.last = Instant::now();
        self.raw(line).await
    }
}

async fn session(conf: &Conf, conn: Box<dyn Conn>, io: &mut AccountIo, backoff: &mut Backoff) -> Result<(), String> {
    let (read, write) = tokio::io::split(conn);
    let mut reader = BufReader::new(read);
    let mut w = Writer { conn: write, sent_in_burst: 0, last: Instant::now() };
    let s = &conf.settings;
    let mut nick = conf.nick.clone();
    let sasl = s.sasl.as_ref().filter(|x| x.password.is_some());
    if sasl.is_some() {
        w.raw("CAP REQ :sasl").await?;
    }
    if let Some(pw) = s.password.clone().or_else(|| env_default(&io.account_id, "IRC_PASSWORD")) {
        w.raw(&format!("PASS {pw}")).await?;
    }
    let user = s.username.clone().unwrap_or_else(|| nick.clone());
    let realname = s.realname.clone().unwrap_or_else(|| "Homarus".into());
    w.raw(&format!("NICK {nick}")).await?;
    w.raw(&format!("USER {user} 0 * :{realname}")).await?;
    let registered_by = Instant::now() + CONNECT_TIMEOUT;
    let mut registered = false;
    let mut buf = Vec::with_capacity(512);
    let line_bytes = s.text_chunk_limit.map(|n| n as usize).unwrap_or(DEFAULT_LINE_BYTES).clamp(32, 400);
    loop {
        buf.clear();
        let read_line = async {
            let mut limited = (&mut reader).take(MAX_LINE as u64);
            limited.read_until(b'\n', &mut buf).await
        };
        let req: Option<OutboundRequest>;
        tokio::select! {
            _ = io.shutdown.cancelled() => {
                let _ = w.raw("QUIT :shutting down").await;
                return Ok(());
            }
            _ = tokio::time::sleep_until(registered_by), if !registered => {
                return Err("registration with the server timed out".into());
            }
            r = io.outbound.recv(), if registered => {
                let Some(r) = r else { return Ok(()) };
                req = Some(r);
            }
            n = read_line => {
                let n = n.map_err(|e| format!("read failed: {e}"))?;
                if n == 0 {
                    return Err("the server closed the connection".into());
                }
                req = None;
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(line) = parse_line(&text) {
                    handle_line(conf, io, &mut w, &line, &mut nick, &mut registered, backoff).await?;
                }
            }
        }
        if let Some(req) = req {
            let result = perform(&mut w, req.op, line_bytes).await;
            if result.is_ok() {
                set_status(&io.status, |s| s.last_outbound_at = Some(now_ms()));
            }
            let failed = result.as_ref().err().map(|e| e.to_string());
            let _ = req.reply.send(result);
            if let Some(e) = failed.filter(|e| e.contains("write failed")) {
                return Err(e);
            }
        }
    }
}

async fn handle_line(
    conf: &Conf,
    io: &mut AccountIo,
    w: &mut Writer,
    line: &Line,
    nick: &mut String,
    registered: &mut bool,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let s = &conf.settings;
    match line.command.as_str() {
        "PING" => w.raw(&format!("PONG :{}", line.params.last().map(String::as_str).unwrap_or(""))).await?,
        "CAP" if line.params.get(1).map(String::as_str) == Some("ACK") => w.raw("AUTHENTICATE PLAIN").await?,
        "CAP" if line.params.get(1).map(String::as_str) == Some("NAK") => {
            return Err("the server does not support SASL".into());
        }
        "AUTHENTICATE" if line.params.first().map(String::as_str) == Some("+") => {
            let sasl = s.sasl.clone().unwrap_or_default();
            let account = sasl.account.or(s.username.clone()).unwrap_or_else(|| conf.nick.clone());
            let payload = format!("{account}\0{account}\0{}", sasl.password.unwrap_or_default());
            w.raw(&format!("AUTHENTICATE {}", base64::engine::general_purpose::STANDARD.encode(payload))).await?;
        }
        "903" => w.raw("CAP END").await?,
        "904" | "905" | "906" => return Err("SASL authentication failed".into()),
        "433" if !*registered => {
            // Nick in use: try another.
            nick.push('_');
            w.raw(&format!("NICK {nick}")).await?;
        }
        "001" => {
            *registered = true;
            backoff.reset();
            if let Some(ns) = s.nickserv.as_ref().filter(|n| n.enabled != Some(false)) {
                if let Some(pw) = &ns.password {
                    let service = ns.service.clone().unwrap_or_else(|| "NickServ".into());
                    w.raw(&format!("PRIVMSG {service} :IDENTIFY {pw}")).await?;
                }
            }
            for chan in s.channels.iter().flatten() {
                w.throttled(&format!("JOIN {chan}")).await?;
            }
            set_status(&io.status, |st| {
                st.connected = true;
                st.restart_pending = false;
                st.reconnect_attempts = 0;
                st.last_error = None;
                st.bot = Some(nick.clone());
            });
        }
        "PRIVMSG" => {
            if let Some(msg) = inbound(io, line, nick) {
                set_status(&io.status, |st| st.last_inbound_at = Some(now_ms()));
                if io.inbound.send(msg).await.is_err() {
                    return Err("the gateway stopped taking messages".into());
                }
            }
        }
        "ERROR" => return Err(format!("server error: {}", line.params.join(" "))),
        _ => {}
    }
    Ok(())
}

fn inbound(io: &AccountIo, line: &Line, nick: &str) -> Option<InboundMessage> {
    let prefix = line.prefix.as_deref()?;
    let sender_nick = prefix.split('!').next().unwrap_or(prefix);
    if !prefix.contains('!') || sender_nick.eq_ignore_ascii_case(nick) {
        return None;
    }
    let target = line.params.first()?;
    let mut text = line.params.get(1)?.clone();
    if let Some(ctcp) = text.strip_prefix('\u{1}') {
        // Only /me (ACTION) is a message; other CTCP requests are ignored.
        let ctcp = ctcp.trim_end_matches('\u{1}');
        text = format!("* {sender_nick} {}", ctcp.strip_prefix("ACTION ")?);
    }
    let text = crate::clip(&text, crate::MAX_INBOUND_TEXT).to_string();
    let is_channel = target.starts_with(['#', '&', '+', '!']);
    let lower = text.to_lowercase();
    let n = nick.to_lowercase();
    let mentioned = lower.starts_with(&format!("{n}:"))
        || lower.starts_with(&format!("{n},"))
        || lower.split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-').any(|w| w == n);
    Some(InboundMessage {
        channel: ID.into(),
        account_id: io.account_id.clone(),
        chat: if is_channel { ChatKind::Channel } else { ChatKind::Direct },
        chat_id: if is_channel { target.clone() } else { sender_nick.to_string() },
        chat_title: is_channel.then(|| target.clone()),
        sender_id: prefix.to_string(),
        sender_name: Some(sender_nick.to_string()),
        text,
        message_id: None,
        thread_id: None,
        reply_to: None,
        mentioned: is_channel && mentioned,
        media: vec![],
        native_command: None,
        timestamp_ms: now_ms(),
    })
}

/// Split rendered text into PRIVMSG payloads of at most `max` bytes (at char boundaries).
fn split_lines(text: &str, max: usize) -> VecDeque<String> {
    let mut out = VecDeque::new();
    for piece in chunk(text, max) {
        for line in render(&piece, Markup::Plain).lines() {
            let mut rest = line.trim_end();
            while !rest.is_empty() {
                let part = crate::clip(rest, max);
                let cut = if part.len() < rest.len() {
                    part.rfind(' ').filter(|&i| i > max / 3).unwrap_or(part.len())
                } else {
                    part.len()
                };
                out.push_back(rest[..cut].to_string());
                rest = rest[cut..].trim_start();
            }
        }
    }
    out
}

async fn perform(w: &mut Writer, op: Outbound, max: usize) -> Result<Receipt, ChannelError> {
    match op {
        Outbound::Send { target, text, .. } => {
            let to = sanitize(&target.chat_id);
            if to.is_empty() || to.contains(' ') {
                return Err(ChannelError::Refused { channel: ID.into(), message: format!("bad target {to:?}") });
            }
            let lines = split_lines(&text, max);
            if lines.is_empty() {
                return Err(ChannelError::Empty);
            }
            for l in &lines {
                w.throttled(&format!("PRIVMSG {to} :{l}"))
                    .await
                    .map_err(|e| ChannelError::Transport { channel: ID.into(), message: e })?;
            }
            Ok(Receipt { message_ids: vec![] })
        }
        Outbound::Edit { .. } => Err(ChannelError::Unsupported("IRC cannot edit messages".into())),
        Outbound::Typing { .. } => Ok(Receipt::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let l = parse_line(":bob!b@127.0.0.1 PRIVMSG #test :hello there\r\n").unwrap();
        assert_eq!(l.prefix.as_deref(), Some("bob!b@127.0.0.1"));
        assert_eq!(
            (l.command.as_str(), l.params.clone()),
            ("PRIVMSG", vec!["#test".to_string(), "hello there".into()])
        );
        let l = parse_line("@time=x :srv 001 bot :Welcome").unwrap();
        assert_eq!(l.command, "001");
        assert_eq!(parse_line("PING :abc").unwrap().params, vec!["abc"]);
        assert!(parse_line("").is_none());
    }

    #[test]
    fn splits_long_text_and_blocks_injection() {
        let text = format!("{}\n**second** line", "word ".repeat(200));
        let lines = split_lines(&text, 100);
        assert!(lines.iter().all(|l| l.len() <= 100 && !l.contains('\n')));
        assert_eq!(lines.back().unwrap(), "second line");
        assert_eq!(sanitize("hi\r\nQUIT :x"), "hiQUIT :x");
    }
}
