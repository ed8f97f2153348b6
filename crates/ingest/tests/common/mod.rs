//! Test support for ingest's tests: a dispatcher that keeps every batch and confirms it at once.
#![allow(dead_code, unreachable_pub)]

use std::sync::Mutex;

use record::{Ack, AckWaiter, Batch, Dispatch, Refusal};

/// Keeps every batch and confirms it at once.
#[derive(Default)]
pub struct Keep(pub Mutex<Vec<Batch>>);

impl Dispatch for Keep {
    fn admissible(&self, _bytes: usize) -> Result<(), Refusal> {
        Ok(())
    }

    fn try_submit(&self, batch: Batch) -> Result<AckWaiter, Refusal> {
        self.0.lock().unwrap().push(batch);
        let (parts, waiter) = Ack::split(1);
        parts.into_iter().for_each(|p| p.complete());
        Ok(waiter)
    }

    fn ready(&self) -> bool {
        true
    }
}
