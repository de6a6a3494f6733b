//! One WebSocket connection, from `connect.challenge` to close.
//!
//! The connection owns two tasks: this one (reads frames, runs requests, sends ticks and pings,
//! reacts to shutdown) and a writer that drains the [`Outbound`] queue into the socket. The writer
//! is joined before the connection ends, and the `_done` sender is dropped last, which is how
//! [`crate::RunningGateway::close`] knows every connection has finished.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{interval_at, Instant};

use homarus_protocol::{
    parse_client_frame, EventFrame, FrameError, ResponseFrame, CLOSE_POLICY_VIOLATION, CLOSE_SERVICE_RESTART,
    MAX_BUFFERED_BYTES, MAX_PREAUTH_PAYLOAD_BYTES,
};

use crate::handshake::{self, Peer, Session};
use crate::methods::{self, CallContext};
use crate::outbound::{Outbound, Outgoing};
use crate::state::{now_ms, ClientHandle, GatewayState, ShutdownNotice};

/// How long the writer gets to flush a final close frame.
const WRITER_FLUSH: Duration = Duration::from_secs(1);

/// Serve one upgraded socket until it closes or the gateway shuts down.
pub async fn serve(
    state: Arc<GatewayState>,
    socket: WebSocket,
    peer: SocketAddr,
    mut shutdown: broadcast::Receiver<ShutdownNotice>,
    _done: mpsc::Sender<()>,
) {
    let (sink, mut stream) = socket.split();
    let (outbound, rx) = Outbound::new(MAX_BUFFERED_BYTES);
    let writer = tokio::spawn(write_loop(sink, rx, outbound.clone()));
    let conn_id = uuid::Uuid::new_v4().to_string();

    let nonce = uuid::Uuid::new_v4().to_string();
    let challenge = json!({"nonce": nonce, "ts": now_ms()});
    let _ = outbound.send_text(EventFrame::to_json("connect.challenge", &challenge, None));

    let peer_info = Peer { ip: peer.ip(), nonce };
    let handshake =
        tokio::time::timeout(state.opts.handshake_timeout, await_connect(&state, &mut stream, &outbound, &peer_info));
    let session = tokio::select! {
        r = handshake => match r {
            Ok(Some(session)) => Some(session),
            Ok(None) => None,
            Err(_) => {
                tracing::debug!(%peer, "handshake timed out");
                outbound.close(CLOSE_POLICY_VIOLATION, "handshake timeout");
                None
            }
        },
        notice = shutdown.recv() => {
            let reason = notice.map(|n| n.reason).unwrap_or_else(|_| "gateway stopping".into());
            outbound.close(CLOSE_SERVICE_RESTART, &reason);
            None
        }
    };

    if let Some(session) = session {
        let n = state.next_conn_id();
        let hello = handshake::hello_ok(&state, &session, &conn_id);
        let _ = outbound.send_text(ResponseFrame::ok_json(&session.connect_request_id, &hello));
        register(&state, n, &session, peer, &outbound);
        run_session(&state, &session, &mut stream, &outbound, &mut shutdown).await;
        unregister(&state, n);
    }
    // Give the writer a moment to flush the close frame, then make sure it is gone: a writer stuck
    // on a full socket would otherwise keep the connection open for good. A slow client gets no grace.
    let mut writer = writer;
    let grace = if outbound.is_slow() { Duration::ZERO } else { WRITER_FLUSH };
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        writer.abort();
    }
}

fn register(state: &GatewayState, n: u64, session: &Session, peer: SocketAddr, outbound: &Outbound) {
    let c = &session.params.client;
    let mut presence = json!({
        "host": c.display_name.clone().unwrap_or_else(|| c.id.clone()),
        "clientId": c.id,
        "ip": peer.ip().to_string(),
        "version": c.version,
        "platform": c.platform,
        "mode": c.mode,
        "reason": "connect",
        "roles": [session.role],
        "scopes": session.scopes,
        "ts": now_ms(),
        "onlineSince": now_ms(),
    });
    if let Some(f) = &c.device_family {
        presence["deviceFamily"] = json!(f);
    }
    if let Some(i) = &c.instance_id {
        presence["instanceId"] = json!(i);
    }
    if let Some(d) = &session.device_id {
        presence["deviceId"] = json!(d);
    }
    let handle = ClientHandle { presence, scopes: session.scopes.clone(), outbound: outbound.clone() };
    state.clients.lock().unwrap_or_else(|p| p.into_inner()).insert(n, handle);
    state.presence_version.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn unregister(state: &GatewayState, n: u64) {
    state.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&n);
    state.presence_version.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Read frames until a valid `connect` succeeds (Some) or the client is refused (None).
async fn await_connect(
    state: &GatewayState,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    outbound: &Outbound,
    peer: &Peer,
) -> Option<Session> {
    loop {
        let msg = match stream.next().await {
            Some(Ok(m)) => m,
            _ => return None,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                outbound.close(CLOSE_POLICY_VIOLATION, "invalid handshake: binary frames are not supported");
                return None;
            }
            Message::Close(_) => return None,
        };
        if text.len() > MAX_PREAUTH_PAYLOAD_BYTES {
            outbound.close(homarus_protocol::CLOSE_TOO_BIG, "pre-auth frame too large");
            return None;
        }
        let frame = match parse_client_frame(text.as_str()) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(ip = %peer.ip, error = %e, "invalid handshake frame");
                outbound.close(CLOSE_POLICY_VIOLATION, "invalid handshake: first frame must be a connect request");
                return None;
            }
        };
        if frame.method != "connect" {
            let err = homarus_protocol::ErrorShape::invalid("invalid handshake: first request must be connect");
            let _ = outbound.send_text(ResponseFrame::err_json(&frame.id, &err));
            outbound.close(CLOSE_POLICY_VIOLATION, "invalid handshake: first request must be connect");
            return None;
        }
        return match handshake::accept(state, frame.params.as_ref(), peer) {
            Ok(mut session) => {
                session.connect_request_id = frame.id;
                Some(session)
            }
            Err(refusal) => {
                tracing::info!(ip = %peer.ip, code = ?refusal.error.code, message = %refusal.error.message, "connect refused");
                let _ = outbound.send_text(ResponseFrame::err_json(&frame.id, &refusal.error));
                outbound.close(refusal.close_code, truncate_reason(&refusal.error.message));
                None
            }
        };
    }
}

/// Close reasons are limited to 123 bytes by the WebSocket protocol.
fn truncate_reason(s: &str) -> &str {
    if s.len() <= 120 {
        return s;
    }
    let mut end = 120;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

async fn run_session(
    state: &Arc<GatewayState>,
    session: &Session,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    outbound: &Outbound,
    shutdown: &mut broadcast::Receiver<ShutdownNotice>,
) {
    let tick_every = state.opts.tick_interval;
    let mut tick = interval_at(Instant::now() + tick_every, tick_every);
    let ping_every = state.opts.ping_interval;
    let mut ping = interval_at(Instant::now() + ping_every, ping_every);
    let ctx = CallContext { scopes: &session.scopes, role: &session.role, responder: None };
    loop {
        tokio::select! {
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        outbound.close(CLOSE_POLICY_VIOLATION, "binary frames are not supported");
                        return;
                    }
                    // Closed by the client, or a transport error (including frames over maxPayload).
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                };
                if !handle_request(state, &ctx, text.as_str(), outbound).await {
                    return;
                }
            }
            _ = tick.tick() => {
                let _ = outbound.send_event("tick", &json!({"ts": now_ms()}));
            }
            _ = ping.tick() => {
                let _ = outbound.send_ping();
            }
            notice = shutdown.recv() => {
                let notice = notice.unwrap_or(ShutdownNotice { reason: "gateway stopping".into(), restart_expected_ms: None });
                let mut payload = json!({"reason": notice.reason});
                if let Some(ms) = notice.restart_expected_ms {
                    payload["restartExpectedMs"] = json!(ms);
                }
                let _ = outbound.send_event("shutdown", &payload);
                outbound.close(CLOSE_SERVICE_RESTART, "service restart");
                return;
            }
            _ = outbound.slow() => {
                tracing::warn!(client = %session.params.client.id, "dropping slow client: more than maxBufferedBytes queued");
                return;
            }
        }
    }
}

/// Run one request frame. Returns false when the connection must close.
async fn handle_request(state: &Arc<GatewayState>, ctx: &CallContext<'_>, text: &str, outbound: &Outbound) -> bool {
    let frame = match parse_client_frame(text) {
        Ok(f) => f,
        Err(FrameError::NotJson(_)) => {
            outbound.close(CLOSE_POLICY_VIOLATION, "invalid frame: not JSON");
            return false;
        }
        Err(e @ FrameError::Invalid(_)) => {
            // Answer on the request id when there is one; otherwise the frame cannot be answered.
            let id = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
                .filter(|id| !id.is_empty());
            let Some(id) = id else {
                outbound.close(CLOSE_POLICY_VIOLATION, "invalid frame");
                return false;
            };
            let _ =
                outbound.send_text(ResponseFrame::err_json(&id, &homarus_protocol::ErrorShape::invalid(e.to_string())));
            return true;
        }
    };
    let responder = methods::Responder::new(&frame.id, outbound.clone());
    let ctx = CallContext { responder: Some(&responder), ..*ctx };
    let outcome = methods::dispatch(state, &ctx, &frame.method, frame.params.as_ref()).await;
    if responder.already_sent() && outcome.is_ok() {
        return true;
    }
    let text = match &outcome {
        Ok(payload) => ResponseFrame::ok_json(&frame.id, payload),
        Err(err) => ResponseFrame::err_json(&frame.id, err),
    };
    outbound.send_text(text).is_ok()
}

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Outgoing>, outbound: Outbound) {
    while let Some(item) = rx.recv().await {
        let result = match item {
            Outgoing::Text(text) => {
                let n = text.len();
                let r = sink.send(Message::Text(text.into())).await;
                outbound.written(n);
                r
            }
            Outgoing::Ping => sink.send(Message::Ping(Default::default())).await,
            Outgoing::Close(code, reason) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                let _ = sink.close().await;
                return;
            }
        };
        if result.is_err() {
            return;
        }
    }
    // The connection ended without a close frame queued (client closed, or slow): close politely.
    let _ = sink.close().await;
}
