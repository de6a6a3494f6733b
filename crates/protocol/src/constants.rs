//! Numbers fixed by the protocol; clients rely on them, so they are not configuration.

/// The protocol version this gateway speaks.
pub const PROTOCOL_VERSION: u32 = 4;
/// The oldest protocol an operator client may use.
pub const MIN_CLIENT_PROTOCOL_VERSION: u32 = 4;
/// The oldest protocol a `node` role or a `probe` mode client may use.
pub const MIN_PROBE_PROTOCOL_VERSION: u32 = 3;
/// Largest frame accepted before `connect` succeeds.
pub const MAX_PREAUTH_PAYLOAD_BYTES: usize = 64 * 1024;
/// Largest frame accepted after the handshake (`policy.maxPayload`).
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;
/// Most bytes queued towards one client before it is dropped (`policy.maxBufferedBytes`).
pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
/// Interval of the `tick` event (`policy.tickIntervalMs`).
pub const TICK_INTERVAL_MS: u64 = 30_000;
/// How long a client has to complete the handshake.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 15_000;
/// How far a device signature's `signedAt` may be from the server clock.
pub const DEVICE_SIGNATURE_MAX_SKEW_MS: i64 = 10 * 60 * 1000;
/// Attachment limits advertised in `policy.attachments`.
pub const ATTACHMENT_MAX_BYTES: u64 = 19_464_192;
/// Image attachment limit advertised in `policy.attachments`.
pub const ATTACHMENT_MAX_IMAGE_BYTES: u64 = 6_291_456;
/// Idempotency cache lifetime.
pub const DEDUPE_TTL_MS: u64 = 5 * 60 * 1000;
/// Idempotency cache capacity.
pub const DEDUPE_MAX: usize = 1000;
/// `restartExpectedMs` announced on an in-process restart (SIGUSR1).
pub const RESTART_EXPECTED_MS: u64 = 1500;
/// WebSocket close code sent to every client on shutdown or restart.
pub const CLOSE_SERVICE_RESTART: u16 = 1012;
/// WebSocket close code for a policy violation (bad handshake, auth failure).
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// WebSocket close code for a protocol version mismatch.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// WebSocket close code for a frame larger than allowed.
pub const CLOSE_TOO_BIG: u16 = 1009;
