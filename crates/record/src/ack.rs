//! End-to-end acknowledgement: a batch completes when every sink holding part of it confirms.
//!
//! The pipeline splits one [`Ack`] into an [`AckPart`] per sink; each sink completes its part
//! after its write is durable (or failed). The ingest edge awaits the [`AckWaiter`] and only then
//! answers the client. A part that is dropped without being completed counts as a failure, so a
//! crashed or stopped sink can never turn into a false `200`.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Why a sink could not confirm its part of a batch. Both fields are bounded, static codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkFailure {
    /// The sink that failed (`file`, `dead_letter`, ...).
    pub sink: &'static str,
    /// A bounded error code (`io`, `disk_full`, `shutdown`, `dropped`, ...).
    pub code: &'static str,
}

impl fmt::Display for SinkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sink {} failed: {}", self.sink, self.code)
    }
}

impl std::error::Error for SinkFailure {}

struct Shared {
    pending: AtomicUsize,
    first_failure: Mutex<Option<SinkFailure>>,
    done: Mutex<Option<oneshot::Sender<Result<(), SinkFailure>>>>,
}

impl Shared {
    fn finish_one(&self, outcome: Result<(), SinkFailure>) {
        if let Err(failure) = outcome {
            let mut first = self.first_failure.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(failure);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let result = match *self.first_failure.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(failure) => Err(failure),
                None => Ok(()),
            };
            if let Some(tx) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
                // The waiter may be gone (client hung up): nothing to tell then.
                let _ = tx.send(result);
            }
        }
    }
}

/// Creates the parts of one batch's acknowledgement.
#[derive(Debug)]
pub struct Ack;

impl Ack {
    /// `parts` acknowledgement parts (one per sink holding part of the batch) and the waiter.
    ///
    /// With `parts == 0` the waiter resolves at once with success.
    pub fn split(parts: usize) -> (Vec<AckPart>, AckWaiter) {
        let (tx, rx) = oneshot::channel();
        if parts == 0 {
            let _ = tx.send(Ok(()));
            return (Vec::new(), AckWaiter { rx });
        }
        let shared = Arc::new(Shared {
            pending: AtomicUsize::new(parts),
            first_failure: Mutex::new(None),
            done: Mutex::new(Some(tx)),
        });
        let parts = (0..parts).map(|_| AckPart { shared: Some(Arc::clone(&shared)) }).collect();
        (parts, AckWaiter { rx })
    }
}

/// One sink's share of a batch acknowledgement.
pub struct AckPart {
    shared: Option<Arc<Shared>>,
}

impl AckPart {
    /// Confirms that this sink's part is durably written.
    pub fn complete(mut self) {
        if let Some(shared) = self.shared.take() {
            shared.finish_one(Ok(()));
        }
    }

    /// Reports that this sink could not write its part.
    pub fn fail(mut self, failure: SinkFailure) {
        if let Some(shared) = self.shared.take() {
            shared.finish_one(Err(failure));
        }
    }
}

impl Drop for AckPart {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.finish_one(Err(SinkFailure { sink: "unknown", code: "dropped" }));
        }
    }
}

impl fmt::Debug for AckPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckPart").field("pending", &self.shared.is_some()).finish()
    }
}

/// Resolves when every part of a batch's acknowledgement is in.
#[derive(Debug)]
pub struct AckWaiter {
    rx: oneshot::Receiver<Result<(), SinkFailure>>,
}

impl AckWaiter {
    /// Waits for the outcome: `Ok` only if every sink confirmed its part.
    pub async fn wait(self) -> Result<(), SinkFailure> {
        match self.rx.await {
            Ok(result) => result,
            Err(_) => Err(SinkFailure { sink: "pipeline", code: "dropped" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_ok_only_after_every_part_completes() {
        let (mut parts, waiter) = Ack::split(2);
        let mut waiter = Box::pin(waiter.wait());
        parts.pop().unwrap().complete();
        assert!(futures_poll_once(&mut waiter).is_none());
        parts.pop().unwrap().complete();
        assert_eq!(waiter.await, Ok(()));
    }

    #[tokio::test]
    async fn first_failure_wins() {
        let (mut parts, waiter) = Ack::split(3);
        parts.pop().unwrap().fail(SinkFailure { sink: "file", code: "io" });
        parts.pop().unwrap().complete();
        parts.pop().unwrap().fail(SinkFailure { sink: "dead_letter", code: "io" });
        assert_eq!(waiter.wait().await, Err(SinkFailure { sink: "file", code: "io" }));
    }

    #[tokio::test]
    async fn dropped_part_is_a_failure() {
        let (parts, waiter) = Ack::split(1);
        drop(parts);
        assert_eq!(waiter.wait().await.unwrap_err().code, "dropped");
    }

    #[tokio::test]
    async fn zero_parts_resolve_at_once() {
        let (parts, waiter) = Ack::split(0);
        assert!(parts.is_empty());
        assert_eq!(waiter.wait().await, Ok(()));
    }

    fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
