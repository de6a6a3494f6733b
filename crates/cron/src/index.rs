//! The due-job index: jobs ordered by next run, so a scheduler tick costs O(due · log n), not O(n).
use std::collections::{BTreeSet, HashMap};

/// Next run per job, ordered.
#[derive(Debug, Default)]
pub struct DueIndex {
    by_time: BTreeSet<(i64, String)>,
    next_of: HashMap<String, i64>,
}

impl DueIndex {
    /// Set (or clear, with `None`) the next run of `id`.
    pub fn set(&mut self, id: &str, next: Option<i64>) {
        if let Some(old) = self.next_of.remove(id) {
            self.by_time.remove(&(old, id.to_string()));
        }
        if let Some(t) = next {
            self.next_of.insert(id.to_string(), t);
            self.by_time.insert((t, id.to_string()));
        }
    }

    /// Remove and return every job due at `now_ms` (with its slot), earliest first.
    pub fn pop_due(&mut self, now_ms: i64) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        while let Some((t, id)) = self.by_time.first().cloned() {
            if t > now_ms {
                break;
            }
            self.by_time.pop_first();
            self.next_of.remove(&id);
            out.push((id, t));
        }
        out
    }

    /// The earliest next run.
    pub fn earliest(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Jobs scheduled.
    pub fn len(&self) -> usize {
        self.next_of.len()
    }

    /// No job scheduled.
    pub fn is_empty(&self) -> bool {
        self.next_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_and_reschedules() {
        let mut ix = DueIndex::default();
        ix.set("a", Some(30));
        ix.set("b", Some(10));
        ix.set("c", Some(20));
        ix.set("c", Some(40));
        ix.set("d", None);
        assert_eq!(ix.earliest(), Some(10));
        assert_eq!(ix.pop_due(30), vec![("b".to_string(), 10), ("a".to_string(), 30)]);
        assert_eq!((ix.len(), ix.earliest()), (1, Some(40)));
        ix.set("c", None);
        assert!(ix.is_empty());
    }
}
