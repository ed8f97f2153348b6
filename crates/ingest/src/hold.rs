//! The edge's budget of request-body bytes (`max_held_body_bytes`), counted in KiB places of a
//! semaphore, and reading a body within it. A request takes its places before its body is read
//! and gives them back when it is answered, so however many connections send at once, the
//! bodies in memory stay bounded. A request that finds no room waits for it, its body left
//! unread in the socket (the client sees TCP back-pressure, not an error), up to a bound; then
//! it is a `503`.
//!
//! A body that declares its length takes that much room. One that does not (chunked) takes
//! [`UNDECLARED_FIRST_BYTES`] and more as it arrives, doubling, and gives back what its buffer
//! does not use once read. When there is no room to grow, it gives back what it holds and waits
//! for the whole of its new room: a body that waited while holding room could block a request
//! ahead of it in the queue that needs that room. One such body waits at a time (the bytes it
//! read so far, at most one budget, are uncounted meanwhile); another is a `503` at once.
//!
//! A request's places never pass the whole budget: a body larger than it takes all of it, and
//! is never refused for want of more room than the budget has.
//!
//! A gzip body's inflated bytes, while it is decoded, count in a second budget of the same
//! kind and size ([`Held::block_for`]). Only bodies in a decode slot take from that one, so a
//! body waiting there waits only on others being decoded, which wait on nothing; from the
//! first budget, they would wait on requests that hold room and wait for a decode slot.

use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::decode::PaddedBody;
use crate::IngestError;

/// The room a body without a `Content-Length` takes before it is read.
pub(crate) const UNDECLARED_FIRST_BYTES: usize = 64 * 1024;

/// The budget: a semaphore of KiB places and how many it has in all.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    places: Arc<Semaphore>,
    size: u32,
    /// Taken by the one chunked body that may wait for room to grow.
    growing: Arc<Mutex<()>>,
}

impl Held {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> Held {
        let size = u32::try_from(bytes.div_ceil(1024).clamp(1, Semaphore::MAX_PERMITS))
            .unwrap_or(u32::MAX);
        let places = Arc::new(Semaphore::new(size as usize));
        Held { places, size, growing: Arc::default() }
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

    /// Grows `room` to the places of `bytes` (at most the whole budget): at once when there is
    /// room; else, if no other body is waiting to grow, by giving back `room` and waiting for
    /// the whole of it until `deadline`; `Overloaded` otherwise (`room` then may hold nothing).
    async fn grow(
        &self,
        room: &mut OwnedSemaphorePermit,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(), IngestError> {
        let lacking = (self.places_of(bytes) as usize).saturating_sub(room.num_permits());
        if lacking == 0 {
            return Ok(());
        }
        let lacking = lacking as u32;
        let more = match Arc::clone(&self.places).try_acquire_many_owned(lacking) {
            Ok(more) => more,
            Err(_) => {
                let _turn = self.growing.try_lock().map_err(|_| IngestError::Overloaded)?;
                drop(room.split(room.num_permits()));
                let places = Arc::clone(&self.places).acquire_many_owned(self.places_of(bytes));
                match tokio::time::timeout_at(deadline, places).await {
                    Ok(Ok(more)) => more,
                    _ => return Err(IngestError::Overloaded),
                }
            }
        };
        room.merge(more);
        Ok(())
    }

    /// Gives back the places of `room` beyond those of `bytes`.
    fn trim(&self, room: &mut OwnedSemaphorePermit, bytes: usize) {
        let keep = self.places_of(bytes) as usize;
        if room.num_permits() > keep {
            drop(room.split(room.num_permits() - keep));
        }
    }

    /// Takes the places of `bytes` now, or `Overloaded` at once. A body larger than the whole
    /// budget takes all of it: it waits for nothing else to be held, and is never refused for
    /// ever.
    pub(crate) fn hold(&self, bytes: usize) -> Result<OwnedSemaphorePermit, IngestError> {
        self.take(self.places_of(bytes))
    }

    /// [`Self::wait_for`] from a thread of the blocking pool (never a runtime worker, where
    /// blocking on the runtime panics).
    pub(crate) fn block_for(
        &self,
        bytes: usize,
        wait: std::time::Duration,
    ) -> Result<OwnedSemaphorePermit, IngestError> {
        if let Ok(permit) = self.hold(bytes) {
            return Ok(permit);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| IngestError::Overloaded)?;
        runtime.block_on(self.wait_for(bytes, wait))
    }

    fn take(&self, places: u32) -> Result<OwnedSemaphorePermit, IngestError> {
        Arc::clone(&self.places).try_acquire_many_owned(places).map_err(|_| IngestError::Overloaded)
    }
}

/// The body's `Content-Length`, when it has a valid one.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads the body into a padded buffer by `deadline`, failing as soon as it passes `max` bytes.
/// A body that declared no length grows its `room` in `held` as it arrives (see the module's
/// docs).
pub(crate) async fn read_body(
    mut body: Incoming,
    (declared, max): (Option<usize>, usize),
    (held, room): (&Held, &mut OwnedSemaphorePermit),
    deadline: Instant,
) -> Result<PaddedBody, IngestError> {
    let mut buf = PaddedBody::with_capacity(declared.unwrap_or(UNDECLARED_FIRST_BYTES).min(max));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| IngestError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            let len = buf.len() + data.len();
            if len > max {
                return Err(IngestError::BodyTooLarge { limit: max });
            }
            let room_bytes = room.num_permits().saturating_mul(1024);
            if declared.is_none() && len > room_bytes {
                let grown = len.max(room_bytes.saturating_mul(2)).min(max);
                held.grow(room, grown, deadline).await?;
            }
            buf.extend_from_slice(&data);
        }
    }
    if declared.is_none() {
        held.trim(room, buf.capacity());
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

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    #[test]
    fn room_grows_never_past_the_whole_budget_and_gives_back_what_it_did_not_use() {
        runtime().block_on(async {
            let held = Held::new(4096);
            let later = Instant::now() + std::time::Duration::from_secs(60);
            let mut room = held.hold(1024).unwrap();
            held.grow(&mut room, 2048, later).await.unwrap();
            assert_eq!(room.num_permits(), 2);
            held.grow(&mut room, 1500, later).await.unwrap();
            assert_eq!(room.num_permits(), 2, "room never shrinks while the body is read");
            held.grow(&mut room, 1 << 30, later).await.unwrap();
            assert_eq!(room.num_permits(), 4, "the whole budget, no more");
            held.trim(&mut room, 1500);
            assert_eq!(room.num_permits(), 2, "what the body did not use is given back");
            assert_eq!(held.hold(2048).unwrap().num_permits(), 2);
        });
    }

    #[test]
    fn one_body_at_a_time_waits_to_grow_and_only_until_its_deadline() {
        runtime().block_on(async {
            let held = Held::new(4096);
            let (mut first, mut second) = (held.hold(1024).unwrap(), held.hold(1024).unwrap());
            let others = held.hold(2048).unwrap();
            let later = Instant::now() + std::time::Duration::from_secs(60);
            // The first waits for room to grow; while it does, the second is refused at once
            // and keeps what it had.
            let waiting = {
                let held = held.clone();
                tokio::spawn(
                    async move { held.grow(&mut first, 3072, later).await.map(|()| first) },
                )
            };
            tokio::task::yield_now().await;
            assert!(matches!(
                held.grow(&mut second, 2048, later).await,
                Err(IngestError::Overloaded)
            ));
            assert_eq!(second.num_permits(), 1);
            drop(others);
            let first = waiting.await.unwrap().unwrap();
            assert_eq!(first.num_permits(), 3, "room made while it waits is its");
            // Not enough left: the next wait gives back what it had and ends at its deadline.
            let soon = Instant::now() + std::time::Duration::from_millis(20);
            assert!(matches!(
                held.grow(&mut second, 2048, soon).await,
                Err(IngestError::Overloaded)
            ));
            assert_eq!(second.num_permits(), 0);
            assert_eq!(held.hold(1024).unwrap().num_permits(), 1, "its place is free again");
            drop(first);
        });
    }

    #[test]
    fn a_blocking_thread_waits_for_room_and_gives_up_after_its_bound() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let held = Held::new(2048);
        let all = held.hold(1 << 30).unwrap();
        let block_for = |bytes, wait| {
            let held = held.clone();
            runtime.spawn_blocking(move || held.block_for(bytes, wait))
        };
        let refused = block_for(1024, std::time::Duration::from_millis(20));
        assert!(matches!(runtime.block_on(refused).unwrap(), Err(IngestError::Overloaded)));
        // Room made while it waits: the waiter gets it, and a body larger than the whole
        // budget takes all of it.
        let waiter = block_for(1 << 30, std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "it waits while the budget is held");
        drop(all);
        assert_eq!(runtime.block_on(waiter).unwrap().unwrap().num_permits(), 2);
        assert_eq!(held.block_for(1, std::time::Duration::ZERO).unwrap().num_permits(), 1);
    }

    #[test]
    fn a_request_waits_for_room_and_gives_up_after_its_bound() {
        runtime().block_on(async {
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
