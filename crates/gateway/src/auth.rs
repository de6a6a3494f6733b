//! Shared-secret checks and failed-auth rate limiting.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use homarus_config::RateLimitConfig;

/// 32 random bytes, hex: tokens for the gateway and for paired devices. Hex rather than base64url
/// because a token starting with `-` would be read as a flag by `--token <value>` on any CLI.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256, used to store device tokens without keeping the token.
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compare two secrets in time independent of where they differ. Both sides are hashed first so the
/// length of the expected secret does not leak either.
pub fn secrets_equal(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// Upper bound on tracked addresses, so a flood of sources cannot grow memory without bound.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

#[derive(Debug)]
struct Entry {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// Why an HTTP request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Too many failures from the address; retry after this long.
    LockedOut(Duration),
    /// The secret was missing or wrong.
    WrongSecret,
}

impl AuthRefusal {
    /// The HTTP status: 429 with `Retry-After`, or 401.
    pub fn status_and_retry(self) -> (axum::http::StatusCode, Option<u64>) {
        match self {
            AuthRefusal::LockedOut(wait) => (axum::http::StatusCode::TOO_MANY_REQUESTS, Some(wait.as_secs().max(1))),
            AuthRefusal::WrongSecret => (axum::http::StatusCode::UNAUTHORIZED, None),
        }
    }
}

/// Counts failed authentications per client address and locks an address out after too many.
#[derive(Debug, Default)]
pub struct AuthRateLimiter {
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl AuthRateLimiter {
    /// If `ip` is locked out now, how long until it may retry.
    pub fn locked_for(&self, ip: IpAddr, cfg: &RateLimitConfig) -> Option<Duration> {
        if cfg.exempt_loopback && ip.is_loopback() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let until = entries.get(&ip)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Record a failure; returns the lockout if this failure triggered one.
    pub fn record_failure(&self, ip: IpAddr, cfg: &RateLimitConfig) -> Option<Duration> {
        if cfg.exempt_loopback && ip.is_loopback() {
            return None;
        }
        let now = Instant::now();
        let window = Duration::from_millis(cfg.window_ms);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_TRACKED_ADDRESSES && !entries.contains_key(&ip) {
            entries.retain(|_, e| e.locked_until.is_some_and(|u| u > now));
            if entries.len() >= MAX_TRACKED_ADDRESSES {
                return None;
            }
        }
        let e = entries.entry(ip).or_insert(Entry { failures: Vec::new(), locked_until: None });
        e.failures.retain(|t| now.duration_since(*t) < window);
        e.failures.push(now);
        if e.failures.len() >= cfg.max_attempts.max(1) as usize {
            let lock = Duration::from_millis(cfg.lockout_ms);
            e.locked_until = Some(now + lock);
            e.failures.clear();
            return Some(lock);
        }
        None
    }

    /// Admit an HTTP request whose secret check gave `secret_ok`: refused while `ip` is locked out,
    /// and a wrong secret counts as a failure (loopback per `cfg.exemptLoopback`, as for the socket).
    pub fn admit(&self, ip: IpAddr, cfg: &RateLimitConfig, secret_ok: bool) -> Result<(), AuthRefusal> {
        if let Some(wait) = self.locked_for(ip, cfg) {
            return Err(AuthRefusal::LockedOut(wait));
        }
        if secret_ok {
            return Ok(());
        }
        self.record_failure(ip, cfg);
        Err(AuthRefusal::WrongSecret)
    }

    /// Forget an address after a success.
    pub fn record_success(&self, ip: IpAddr) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_chars_and_never_look_like_a_flag() {
        for _ in 0..256 {
            let t = random_token();
            assert_eq!(t.len(), 64);
            assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
        }
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn secrets_compare() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("", "abc"));
    }

    #[test]
    fn locks_after_max_attempts_and_exempts_loopback() {
        let cfg = RateLimitConfig { max_attempts: 3, window_ms: 60_000, lockout_ms: 1_000, exempt_loopback: true };
        let lim = AuthRateLimiter::default();
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(lim.record_failure(remote, &cfg).is_none());
        assert!(lim.record_failure(remote, &cfg).is_none());
        assert!(lim.record_failure(remote, &cfg).is_some());
        assert!(lim.locked_for(remote, &cfg).is_some());
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..10 {
            assert!(lim.record_failure(lo, &cfg).is_none());
        }
        assert!(lim.locked_for(lo, &cfg).is_none());
    }
}
