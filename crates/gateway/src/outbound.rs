//! The bounded queue from the gateway to one client.
//!
//! Every frame to a client goes through [`Outbound`]: it counts queued bytes and, when a client reads
//! too slowly (`policy.maxBufferedBytes` exceeded or the queue full), marks it slow so the connection
//! drops it instead of letting memory grow. Event `seq` numbers are assigned under the same lock as
//! the enqueue, so they reach the client in increasing order.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use homarus_protocol::EventFrame;

/// Most frames queued to one client, whatever their size.
const MAX_QUEUED_FRAMES: usize = 4096;

/// What the writer task sends.
#[derive(Debug)]
pub enum Outgoing {
    /// A text frame; its byte count is released when written.
    Text(String),
    /// A WebSocket ping.
    Ping,
    /// A close frame; the writer stops after it.
    Close(u16, String),
}

/// The sending half, shared by the connection and broadcasters.
#[derive(Clone)]
pub struct Outbound {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Outgoing>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    seq: Mutex<u64>,
    slow: AtomicBool,
    slow_notify: Notify,
}

/// The client is not keeping up and will be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowConsumer;

impl Outbound {
    /// A queue allowing `max_bytes` in flight; returns the receiving end for the writer task.
    pub fn new(max_bytes: usize) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_FRAMES);
        let inner = Inner {
            tx,
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            seq: Mutex::new(0),
            slow: AtomicBool::new(false),
            slow_notify: Notify::new(),
        };
        (Self { inner: Arc::new(inner) }, rx)
    }

    fn mark_slow(&self) -> SlowConsumer {
        if !self.inner.slow.swap(true, Ordering::SeqCst) {
            self.inner.slow_notify.notify_one();
        }
        SlowConsumer
    }

    fn enqueue(&self, item: Outgoing, bytes: usize) -> Result<(), SlowConsumer> {
        if self.inner.slow.load(Ordering::Relaxed) {
            return Err(SlowConsumer);
        }
        let queued = self.inner.queued_bytes.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if queued > self.inner.max_bytes {
            return Err(self.mark_slow());
        }
        self.inner.tx.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => self.mark_slow(),
            // The writer is gone: the connection is closing anyway.
            mpsc::error::TrySendError::Closed(_) => SlowConsumer,
        })
    }

    /// Queue a text frame (a response, or an event without `seq`).
    pub fn send_text(&self, text: String) -> Result<(), SlowConsumer> {
        let n = text.len();
        self.enqueue(Outgoing::Text(text), n)
    }

    /// Queue an event with the next per-connection `seq`.
    pub fn send_event(&self, event: &str, payload: &Value) -> Result<(), SlowConsumer> {
        let mut seq = self.inner.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        let text = EventFrame::to_json(event, payload, Some(*seq));
        self.send_text(text)
    }

    /// Queue a ping.
    pub fn send_ping(&self) -> Result<(), SlowConsumer> {
        self.enqueue(Outgoing::Ping, 0)
    }

    /// Queue a close frame. Uses the channel's spare capacity; if the queue is full the connection
    /// is dropped without one, which the client sees as an abnormal close.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.inner.tx.try_send(Outgoing::Close(code, reason.to_string()));
    }

    /// The writer calls this after a text frame has been written.
    pub fn written(&self, bytes: usize) {
        self.inner.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
    }

    /// Whether the client has been marked slow.
    pub fn is_slow(&self) -> bool {
        self.inner.slow.load(Ordering::SeqCst)
    }

    /// Resolves once the client has been marked slow.
    pub async fn slow(&self) {
        if self.inner.slow.load(Ordering::SeqCst) {
            return;
        }
        self.inner.slow_notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn seq_increases_and_a_slow_reader_is_marked() {
        let (out, mut rx) = Outbound::new(100);
        out.send_event("tick", &json!({"ts":1})).unwrap();
        let Some(Outgoing::Text(a)) = rx.recv().await else { panic!() };
        out.written(a.len()); // as the writer does after sending
        out.send_event("tick", &json!({"ts":2})).unwrap();
        let Some(Outgoing::Text(b)) = rx.recv().await else { panic!() };
        out.written(b.len());
        assert!(a.contains("\"seq\":1") && b.contains("\"seq\":2"), "{a} {b}");
        // Nothing is drained now: the byte budget runs out and the reader is flagged.
        let mut result = Ok(());
        for _ in 0..10 {
            result = out.send_text("x".repeat(30));
        }
        assert_eq!(result, Err(SlowConsumer));
        tokio::time::timeout(std::time::Duration::from_secs(1), out.slow()).await.unwrap();
    }
}
