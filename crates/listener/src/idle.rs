//! An HTTP/2 connection's idle bound. hyper closes an HTTP/1.1 connection that sends no request
//! within the header timeout, but keeps an HTTP/2 one open for as long as its client answers
//! pings, which every HTTP/2 client does by itself: an idle one would hold its place among
//! `max_connections` for ever. [`Idle`] counts a connection's requests in flight and resolves
//! [`Idle::expired`] once it has had none for the bound.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// One connection's requests in flight, and since when it has had none.
pub(crate) struct Idle {
    state: Mutex<(usize, Instant)>,
}

/// A request in flight, until dropped.
pub(crate) struct Busy(Arc<Idle>);

impl Idle {
    pub(crate) fn new() -> Arc<Idle> {
        Arc::new(Idle { state: Mutex::new((0, Instant::now())) })
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn busy(self: &Arc<Idle>) -> Busy {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0 += 1;
        Busy(Arc::clone(self))
    }

    /// Resolves once no request has been in flight for `bound`.
    pub(crate) async fn expired(&self, bound: Duration) {
        loop {
            let wait = {
                let (in_flight, since) = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
                match (in_flight, bound.checked_sub(since.elapsed())) {
                    (0, None) => return,
                    (0, Some(left)) if left.is_zero() => return,
                    (0, Some(left)) => left,
                    _ => bound,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 -= 1;
        if state.0 == 0 {
            state.1 = Instant::now();
        }
    }
}
