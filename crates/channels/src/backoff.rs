//! Reconnect backoff: exponential from 1 s to 60 s with jitter, reset after a healthy connection.
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Reconnect delays for one account.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { attempt: 0, base: Duration::from_secs(1), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// A backoff with these bounds (tests use short ones).
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { attempt: 0, base, max }
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The connection worked: start again from the base delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay (doubling, capped, ±20 % jitter).
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        let d = exp.min(self.max);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        d.mul_f64(jitter)
    }

    /// Sleep the next delay; `false` when `shutdown` came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let d = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let d: Vec<f64> = (0..6).map(|_| b.next_delay().as_secs_f64()).collect();
        assert!(d[0] >= 0.8 && d[0] <= 1.2);
        assert!(d[1] >= 1.6 && d[1] <= 2.4);
        assert!(d[5] >= 8.0 && d[5] <= 12.0);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }
}
