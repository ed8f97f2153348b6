//! `SeenIds`: the record ids the edge acknowledged recently, per drain, so that a log or audit
//! record Vercel delivers again (the same `id`, in a new batch) is counted and not stored twice.
//! Vercel's signatures carry no timestamp and its retries may regroup records, which the sinks'
//! batch-digest window cannot see.
//!
//! Bounded twice: at most `capacity` ids (about 60 bytes each), none older than `window`. An id
//! is remembered only once its batch is acknowledged, so a record whose first delivery failed
//! is stored when it comes again. Two deliveries of one id at the same moment may both be
//! stored: delivery stays at least once, and `id` remains the key downstream de-duplicates on.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use record::{Batch, DataType};

/// The types whose records have an `id` to de-duplicate on.
pub(crate) fn has_ids(data_type: DataType) -> bool {
    matches!(data_type, DataType::Logs | DataType::AuditLog)
}

struct Inner {
    set: HashSet<u128>,
    order: VecDeque<(Instant, u128)>,
}

/// The recently acknowledged ids.
pub(crate) struct SeenIds {
    capacity: usize,
    window: Duration,
    inner: Mutex<Inner>,
}

impl SeenIds {
    /// A memory of up to `capacity` ids for `window`; `None` when `capacity` is 0 (off).
    pub(crate) fn new(capacity: usize, window: Duration) -> Option<SeenIds> {
        (capacity > 0).then(|| SeenIds {
            capacity,
            window,
            inner: Mutex::new(Inner { set: HashSet::new(), order: VecDeque::new() }),
        })
    }

    /// Removes from `batch` the records whose id was acknowledged within the window (or comes
    /// twice in the batch); returns the keys of the records kept, to [`SeenIds::remember`] once
    /// the batch is acknowledged, and how many were removed.
    pub(crate) fn drop_seen(&self, batch: &mut Batch) -> (Vec<u128>, usize) {
        let seed = xxhash_rust::xxh3::xxh3_64(batch.drain.as_bytes())
            ^ xxhash_rust::xxh3::xxh3_64(batch.data_type.as_str().as_bytes());
        // Hashed before the lock is taken; a set for the batch's own repeats, so a body of
        // hundreds of thousands of small records costs as many lookups, not their square.
        let keys: Vec<Option<u128>> = (batch.records.iter())
            .map(|r| r.id().map(|id| xxhash_rust::xxh3::xxh3_128_with_seed(id.as_bytes(), seed)))
            .collect();
        let mut kept = HashSet::with_capacity(keys.len());
        let before = batch.records.len();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.expire(&mut inner, Instant::now());
        let mut keys = keys.into_iter();
        batch.records.retain(|_| match keys.next().flatten() {
            None => true,
            Some(key) => !inner.set.contains(&key) && kept.insert(key),
        });
        drop(inner);
        let kept = kept.into_iter().collect();
        (kept, before - batch.records.len())
    }

    /// Remembers the ids of an acknowledged batch.
    pub(crate) fn remember(&self, keys: Vec<u128>) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if inner.set.insert(key) {
                inner.order.push_back((now, key));
            }
        }
        while inner.order.len() > self.capacity {
            if let Some((_, key)) = inner.order.pop_front() {
                inner.set.remove(&key);
            }
        }
    }

    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some(&(at, key)) = inner.order.front() {
            if now.duration_since(at) < self.window {
                break;
            }
            inner.order.pop_front();
            inner.set.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use record::{FieldSpan, Record, RecordMeta};

    use super::*;

    fn batch(ids: &[&str]) -> Batch {
        let records = ids
            .iter()
            .map(|id| {
                let line = Bytes::from(format!(r#"{{"id":"{id}"}}"#));
                let meta = RecordMeta {
                    id: FieldSpan::new(7, id.len() as u32, false),
                    ..RecordMeta::default()
                };
                Record::new(line, meta)
            })
            .collect();
        Batch {
            drain: Arc::from("default"),
            data_type: DataType::Logs,
            received_at_ms: 0,
            records,
            body: Bytes::new(),
            rejects: Vec::new(),
            pinned_bytes: 0,
            digest: 0,
        }
    }

    fn ids(batch: &Batch) -> Vec<String> {
        batch.records.iter().map(|r| r.id().unwrap().into_owned()).collect()
    }

    #[test]
    fn only_acknowledged_ids_are_dropped_and_each_batch_keeps_one_of_each() {
        let seen = SeenIds::new(100, Duration::from_secs(60)).unwrap();
        let mut first = batch(&["a", "b", "a"]);
        let (keys, dropped) = seen.drop_seen(&mut first);
        assert_eq!((ids(&first), dropped), (vec!["a".to_owned(), "b".to_owned()], 1));
        // Not acknowledged yet: a retry keeps everything.
        let mut retry = batch(&["a", "b"]);
        assert_eq!(seen.drop_seen(&mut retry).1, 0);
        seen.remember(keys);
        let mut again = batch(&["b", "c"]);
        assert_eq!(seen.drop_seen(&mut again).1, 1);
        assert_eq!(ids(&again), ["c"]);
    }

    #[test]
    fn the_memory_is_bounded_by_count_and_age() {
        let seen = SeenIds::new(2, Duration::from_secs(60)).unwrap();
        let (keys, _) = seen.drop_seen(&mut batch(&["a", "b", "c"]));
        seen.remember(keys);
        // "a" fell out when "c" came in: at most two are kept.
        assert_eq!(seen.drop_seen(&mut batch(&["a", "b", "c"])).1, 2);
        let brief = SeenIds::new(10, Duration::ZERO).unwrap();
        let (keys, _) = brief.drop_seen(&mut batch(&["a"]));
        brief.remember(keys);
        assert_eq!(brief.drop_seen(&mut batch(&["a"])).1, 0, "older than the window");
        assert!(SeenIds::new(0, Duration::from_secs(1)).is_none(), "0 turns it off");
    }
}
