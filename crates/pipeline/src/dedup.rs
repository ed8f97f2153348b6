//! A sink's memory of the batches it recently made durable, so that a client's retry of a batch
//! that failed elsewhere (another sink, or the ack timeout) is not written twice here.
//!
//! Vercel retries a failed delivery with the same bytes, so the batch digest (computed by the
//! edge: a 128-bit hash of the verified signature, or of the decoded body when unsigned)
//! identifies it. The window is bounded: a retry that comes after `capacity` other batches is
//! written again, which at-least-once allows.

use std::collections::{HashSet, VecDeque};

/// The last `capacity` batch digests a sink wrote.
#[derive(Debug)]
pub(crate) struct DedupWindow {
    seen: HashSet<u128>,
    order: VecDeque<u128>,
    capacity: usize,
}

impl DedupWindow {
    pub(crate) fn new(capacity: usize) -> DedupWindow {
        DedupWindow {
            seen: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Whether `digest` was written recently. A zero digest (unknown) never matches.
    pub(crate) fn contains(&self, digest: u128) -> bool {
        digest != 0 && self.seen.contains(&digest)
    }

    /// Remembers `digest` as written, forgetting the oldest past capacity.
    pub(crate) fn insert(&mut self, digest: u128) {
        if digest == 0 || self.capacity == 0 || !self.seen.insert(digest) {
            return;
        }
        self.order.push_back(digest);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_bounded_number_of_batches() {
        let mut w = DedupWindow::new(2);
        w.insert(1);
        w.insert(2);
        assert!(w.contains(1) && w.contains(2));
        w.insert(3);
        assert!(!w.contains(1) && w.contains(2) && w.contains(3));
        w.insert(0);
        assert!(!w.contains(0));
    }
}
