//! The edge's budget of request-body bytes (`max_held_body_bytes`), counted in KiB places of a
//! semaphore, and reading a body within it. A request takes its places before its body is read
//! and gives them back when it is answered, so however many connections send at once, the
//! bodies in memory stay bounded. A request that finds no room waits for it, its body left
//! unread in the socket (the client sees TCP back-pressure, not an error), up to a bound; then
//! it is a `503`.
//!
//! A body that declares its length takes that much room. One that does not (chunked) takes
//! [`UNDECLARED_FIRST_BYTES`] and more as it arrives, doubling; when there is no room to grow it
//! is a `503` at once, so that it never waits while holding places that others wait for.

use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::decode::PaddedBody;
use crate::IngestError;

/// The room a body without a `Content-Length` takes before it is read.
pub(crate) const UNDECLARED_FIRST_BYTES: usize = 64 * 1024;

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

    /// Room for a body that declares `declared` bytes, or for the first bytes of one that
    /// declares none (of at most `max`), waiting up to `wait` for it.
    pub(crate) async fn room_for(
        &self,
        declared: Option<usize>,
        max: usize,
        wait: std::time::Duration,
    ) -> Result<OwnedSemaphorePermit, IngestError> {
        self.wait_for(declared.unwrap_or(UNDECLARED_FIRST_BYTES.min(max)), wait).await
    }

    /// Grows `room` to the places of `bytes` (at most the whole budget), taking what it lacks
    /// now or `Overloaded` at once.
    fn grow(&self, room: &mut OwnedSemaphorePermit, bytes: usize) -> Result<(), IngestError> {
        let lacking = (self.places_of(bytes) as usize).saturating_sub(room.num_permits());
        if lacking > 0 {
            let more = Arc::clone(&self.places)
                .try_acquire_many_owned(lacking as u32)
                .map_err(|_| IngestError::Overloaded)?;
            room.merge(more);
        }
        Ok(())
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

/// The body's `Content-Length`, when it has a valid one.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads the body into a padded buffer, failing as soon as it passes `max` bytes. A body that
/// declared no length grows its `room` in `held` as it arrives (see the module's docs).
pub(crate) async fn read_body(
    mut body: Incoming,
    declared: Option<usize>,
    max: usize,
    (held, room): (&Held, &mut OwnedSemaphorePermit),
) -> Result<PaddedBody, IngestError> {
    let mut buf = PaddedBody::with_capacity(declared.unwrap_or(UNDECLARED_FIRST_BYTES).min(max));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| IngestError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            let len = buf.len() + data.len();
            if len > max {
                return Err(IngestError::BodyTooLarge { limit: max });
            }
            if declared.is_none() && len > room.num_permits() * 1024 {
                held.grow(room, len.max(2 * room.num_permits() * 1024).min(max))?;
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
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
    fn room_grows_while_there_is_some_and_never_past_the_whole_budget() {
        let held = Held::new(4096);
        let mut room = held.hold(1024).unwrap();
        held.grow(&mut room, 2048).unwrap();
        assert_eq!(room.num_permits(), 2);
        held.grow(&mut room, 1500).unwrap();
        assert_eq!(room.num_permits(), 2, "room never shrinks while the body is read");
        let other = held.hold(1024).unwrap();
        assert!(matches!(held.grow(&mut room, 4096), Err(IngestError::Overloaded)));
        assert_eq!(room.num_permits(), 2, "a refused growth takes nothing");
        drop(other);
        held.grow(&mut room, 1 << 30).unwrap();
        assert_eq!(room.num_permits(), 4, "the whole budget, no more");
        drop(room);
        assert_eq!(held.hold(4096).unwrap().num_permits(), 4, "all of it given back");
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
