//! The edge's budget of request-body bytes (`max_held_body_bytes`), counted in KiB places of a
//! semaphore: a request takes its places before its body is read and gives them back when it is
//! answered, so however many connections send at once, the bodies in memory stay bounded. A
//! request that finds no room waits for it, its body left unread in the socket (the client sees
//! TCP back-pressure, not an error), up to a bound; then it is a `503`.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::IngestError;

/// The budget: a semaphore of KiB places and how many it has in all.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    places: Arc<Semaphore>,
    size: u32,
}

impl Held {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> Held {
        let size = u32::try_from(bytes.div_ceil(1024).clamp(1, Semaphore::MAX_PERMITS))
            .unwrap_or(u32::MAX);
        Held { places: Arc::new(Semaphore::new(size as usize)), size }
    }

    /// Takes the places of `bytes`, waiting up to `wait` for them; `Overloaded` after that.
    pub(crate) async fn wait_for(
        &self,
        bytes: usize,
        wait: std::time::Duration,
    ) -> Result<OwnedSemaphorePermit, IngestError> {
        if let Ok(permit) = self.hold(bytes) {
            return Ok(permit);
        }
        let places = Arc::clone(&self.places).acquire_many_owned(self.places_of(bytes));
        match tokio::time::timeout(wait, places).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(IngestError::Overloaded),
        }
    }

    fn places_of(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX).min(self.size)
    }

    /// Takes the places of `bytes` now, or `Overloaded` at once. A body larger than the whole
    /// budget takes all of it: it waits for nothing else to be held, and is never refused for
    /// ever.
    pub(crate) fn hold(&self, bytes: usize) -> Result<OwnedSemaphorePermit, IngestError> {
        Arc::clone(&self.places)
            .try_acquire_many_owned(self.places_of(bytes))
            .map_err(|_| IngestError::Overloaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_until_dropped_and_a_huge_body_takes_them_all() {
        let held = Held::new(4096);
        let a = held.hold(3000).unwrap();
        assert!(held.hold(2000).is_err(), "only 1 KiB is left");
        let b = held.hold(1).unwrap();
        drop((a, b));
        let all = held.hold(1 << 30).unwrap();
        assert_eq!(all.num_permits(), 4);
        assert!(held.hold(1).is_err());
    }

    #[test]
    fn a_request_waits_for_room_and_gives_up_after_its_bound() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let held = Held::new(2048);
            let all = held.hold(2048).unwrap();
            let wait = std::time::Duration::from_millis(20);
            assert!(matches!(held.wait_for(1024, wait).await, Err(IngestError::Overloaded)));
            // Room made while it waits: the waiter gets it.
            let waiter = {
                let held = held.clone();
                tokio::spawn(async move {
                    held.wait_for(1024, std::time::Duration::from_secs(60)).await
                })
            };
            tokio::task::yield_now().await;
            drop(all);
            assert_eq!(waiter.await.unwrap().unwrap().num_permits(), 1);
        });
    }
}
