//! The idempotency cache: a side-effecting request repeated with the same `idempotencyKey` within
//! 5 minutes gets the first response again instead of running twice. Bounded to 1000 keys.
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use homarus_protocol::ErrorShape;

/// A cached outcome.
pub type CachedOutcome = Result<Value, ErrorShape>;

/// Entries by key, plus keys in insertion order for eviction.
type Entries = (HashMap<String, (Instant, CachedOutcome)>, VecDeque<String>);

/// Time- and size-bounded map from `method:idempotencyKey` to the response sent.
pub struct IdempotencyCache {
    ttl: Duration,
    max: usize,
    inner: Mutex<Entries>,
}

impl IdempotencyCache {
    /// A cache with this lifetime and capacity.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self { ttl, max, inner: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    /// The cached outcome for `key`, if fresh.
    pub fn get(&self, key: &str) -> Option<CachedOutcome> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (at, outcome) = guard.0.get(key)?;
        (at.elapsed() < self.ttl).then(|| outcome.clone())
    }

    /// Remember `outcome` for `key`, evicting expired and then oldest entries beyond capacity.
    pub fn put(&self, key: String, outcome: CachedOutcome) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        while let Some(front) = order.front() {
            let expired = map.get(front).is_none_or(|(at, _)| at.elapsed() >= self.ttl);
            if expired || map.len() >= self.max {
                let k = order.pop_front().unwrap_or_default();
                map.remove(&k);
            } else {
                break;
            }
        }
        if map.insert(key.clone(), (Instant::now(), outcome)).is_none() {
            order.push_back(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replays_and_bounds() {
        let c = IdempotencyCache::new(Duration::from_secs(60), 2);
        c.put("a".into(), Ok(json!(1)));
        assert_eq!(c.get("a"), Some(Ok(json!(1))));
        c.put("b".into(), Ok(json!(2)));
        c.put("c".into(), Ok(json!(3)));
        assert_eq!(c.get("a"), None, "oldest evicted at capacity");
        assert_eq!(c.get("c"), Some(Ok(json!(3))));
        let short = IdempotencyCache::new(Duration::ZERO, 10);
        short.put("x".into(), Ok(json!(1)));
        assert_eq!(short.get("x"), None, "expired");
    }
}
