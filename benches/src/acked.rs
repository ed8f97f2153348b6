//! What a load generator saw acknowledged, as a multiset of record digests, and the check a
//! reader of the sink's output makes against it: `loadgen --acked-out` writes an [`Acked`] as
//! JSON, `topic-check` consumes the Kafka topic and counts each acknowledged record it finds.
//!
//! Records are compared by identity, not only counted: each record's bytes are digested (the
//! corpus repeats records across batches, so the digests form a multiset, and each request's
//! nonce record makes every batch distinct), and an acknowledged record is missing when the
//! topic holds fewer copies of its bytes than were acknowledged. Extra copies are allowed: a
//! batch answered 503 (or still in flight when the run ended) may have been produced, and a
//! client retry is at least once.
//!
//! ```
//! use spillway_benches::acked::{digest, Acked};
//! let mut acked = Acked::default();
//! acked.add_batch([digest(b"a"), digest(b"b")]);
//! let consumed = [(digest(b"a"), 2)].into_iter().collect();
//! assert_eq!(acked.missing(&consumed), 1);
//! ```

use std::collections::HashMap;

use serde_json::{json, Value};

/// A record's digest: 64-bit FNV-1a of its bytes (stable across builds and processes, unlike
/// std's hasher; a collision among a run's few thousand distinct records is negligible).
pub fn digest(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The acknowledged records: how many batches and records, and how often each digest.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Acked {
    /// Batches answered 2xx.
    pub batches: u64,
    /// Records in them.
    pub records: u64,
    /// Each record digest and how many acknowledged records had it.
    pub counts: HashMap<u64, u64>,
}

impl Acked {
    /// Counts one acknowledged batch of records with these digests.
    pub fn add_batch(&mut self, digests: impl IntoIterator<Item = u64>) {
        self.batches += 1;
        for d in digests {
            self.records += 1;
            *self.counts.entry(d).or_default() += 1;
        }
    }

    /// As JSON: `{"batches", "records", "digests": [[digest, count], ...]}`.
    pub fn to_json(&self) -> Value {
        let digests: Vec<[u64; 2]> = self.counts.iter().map(|(d, n)| [*d, *n]).collect();
        json!({"batches": self.batches, "records": self.records, "digests": digests})
    }

    /// Back from [`Acked::to_json`]'s form.
    pub fn from_json(value: &Value) -> Result<Acked, String> {
        let number = |key: &str| value[key].as_u64().ok_or_else(|| format!("no `{key}`"));
        let (batches, records) = (number("batches")?, number("records")?);
        let mut counts = HashMap::new();
        for pair in value["digests"].as_array().ok_or("no `digests`")? {
            match (pair[0].as_u64(), pair[1].as_u64()) {
                (Some(d), Some(n)) => *counts.entry(d).or_default() += n,
                _ => return Err(format!("bad digest entry {pair}")),
            }
        }
        Ok(Acked { batches, records, counts })
    }

    /// How many acknowledged records `consumed` (digest -> copies found) lacks.
    pub fn missing(&self, consumed: &HashMap<u64, u64>) -> u64 {
        self.counts
            .iter()
            .map(|(d, n)| n.saturating_sub(consumed.get(d).copied().unwrap_or(0)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record acknowledged twice (a corpus record in two batches) must be found twice: one
    /// copy in the topic does not cover both.
    #[test]
    fn each_acknowledged_copy_must_be_found() {
        let mut acked = Acked::default();
        acked.add_batch([digest(b"r1"), digest(b"nonce-1")]);
        acked.add_batch([digest(b"r1"), digest(b"nonce-2")]);
        let mut consumed: HashMap<u64, u64> =
            [(digest(b"r1"), 1), (digest(b"nonce-1"), 1), (digest(b"nonce-2"), 1)].into();
        assert_eq!(acked.missing(&consumed), 1);
        consumed.insert(digest(b"r1"), 3); // extras (a 503'd batch that was produced) are fine
        assert_eq!(acked.missing(&consumed), 0);
        consumed.remove(&digest(b"nonce-2"));
        assert_eq!(acked.missing(&consumed), 1, "a missing batch's nonce is missing");
    }

    #[test]
    fn survives_its_json_form() {
        let mut acked = Acked::default();
        acked.add_batch([u64::MAX, 1, 1]);
        assert_eq!(Acked::from_json(&acked.to_json()), Ok(acked));
        assert!(Acked::from_json(&json!({"batches": 1})).is_err());
    }
}
