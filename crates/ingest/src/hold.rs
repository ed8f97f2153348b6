//! The edge's budget of request-body bytes (`max_held_body_bytes`), counted in KiB places of a
//! semaphore, and reading a body within it. A request takes its places before its body is read
//! and gives them back when it is answered, so however many connections send at once, the
//! bodies in memory stay bounded. A request that finds no room waits for it, its body left
//! unread in the socket (the client sees TCP back-pressure, not an error), up to a bound; then
//! it is a `503`.
//!
//! A body that declares its length takes that much room. One that does not (chunked) takes an
//! eighth of the budget (at least [`UNDECLARED_FIRST_BYTES`]), so that a few such bodies are read
//! at once and the rest wait unread, as bodies that declare their length do; past that, more as
//! it arrives, doubling. Once read, its buffer is shrunk to the body and it gives back the room
//! beyond. When there is no room to grow, it gives back what it holds and waits for the whole of
//! its new room: bodies that waited while holding room could each wait on room the others hold,
//! until their deadlines. Meanwhile its room (about the bytes it read so far) counts in a second
//! budget of the same size, for bodies waiting to grow; when that one is full too, the body is a
//! `503` at once. (The budget's queue is first in, first out, so while requests wait for room, a
//! body rarely grows without waiting.)
//!
//! A request's places never pass the whole budget: a body larger than it takes all of it, and
//! is never refused for want of more room than the budget has.
//!
//! A gzip body's inflated bytes, once its signature is checked and while it is decoded, count in
//! a budget of the same kind and size of their own (another `Held`, through
//! [`Held::block_for`]): a body that inflates to more than is left waits for the others being
//! decoded. Only bodies in a decode slot take from that one, so a body waiting there waits only
//! on others being decoded, which wait on nothing; from the first budget, they would wait on
//! requests that hold room and wait for a decode slot. The bytes are inflated before they are
//! counted: what bounds them is the decode slots, each inflating at most `max_inflated_bytes`.

use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::decode::PaddedBody;
use crate::IngestError;

/// The least room a body without a `Content-Length` takes before it is read, and the first size
/// of its buffer.
pub(crate) const UNDECLARED_FIRST_BYTES: usize = 64 * 1024;

/// A body without a `Content-Length` first takes this share of the budget (at least
/// [`UNDECLARED_FIRST_BYTES`]).
const UNDECLARED_SHARE: usize = 8;

/// The budget: a semaphore of KiB places and how many it has in all.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    places: Arc<Semaphore>,
    size: u32,
    /// The places of the bytes read by the bodies that wait for room to grow, uncounted in
    /// `places` meanwhile: as many as the budget.
    waiting: Arc<Semaphore>,
}

impl Held {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> Held {
        let size = u32::try_from(bytes.div_ceil(1024).clamp(1, Semaphore::MAX_PERMITS))
            .unwrap_or(u32::MAX);
        let places = Arc::new(Semaphore::new(size as usize));
        let waiting = Arc::new(Semaphore::new(size as usize));
        Held { places, size, waiting }
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
        let undeclared = (self.size as usize * 1024 / UNDECLARED_SHARE).max(UNDECLARED_FIRST_BYTES);
        self.wait_for(declared.unwrap_or(undeclared.min(max)), wait).await
    }

    /// Grows `room` to the places of `bytes` (at most the whole budget): at once when there is
    /// room; else, if the bytes of the bodies waiting to grow leave room for `room`'s, by giving
    /// back `room` and waiting for the whole of it until `deadline`; `Overloaded` otherwise
    /// (`room` then may hold nothing).
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
                let _uncounted = Arc::clone(&self.waiting)
                    .try_acquire_many_owned(room.num_permits() as u32)
                    .map_err(|_| IngestError::Overloaded)?;
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
        Arc::clone(&self.places)
            .try_acquire_many_owned(self.places_of(bytes))
            .map_err(|_| IngestError::Overloaded)
    }

    /// [`Self::wait_for`] from a thread of the blocking pool (never a runtime worker, where
    /// blocking on the runtime panics).
    pub(crate) fn block_for(
        &self,
        bytes: usize,
        wait: std::time::Duration,
    ) -> Result<OwnedSemaphorePermit, IngestError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| IngestError::Overloaded)?;
        runtime.block_on(self.wait_for(bytes, wait))
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
        buf.shrink_to_fit();
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
    fn a_body_without_a_length_first_takes_an_eighth_of_the_budget() {
        runtime().block_on(async {
            let wait = std::time::Duration::ZERO;
            let held = Held::new(16 << 20);
            let room = held.room_for(None, 64 << 20, wait).await.unwrap();
            assert_eq!(room.num_permits(), 2048, "2 MiB");
            let room = held.room_for(None, 100 << 10, wait).await.unwrap();
            assert_eq!(room.num_permits(), 100, "never more than the largest body");
            let small = Held::new(256 << 10);
            let room = small.room_for(None, 64 << 20, wait).await.unwrap();
            assert_eq!(room.num_permits(), 64, "at least 64 KiB");
            let room = small.room_for(Some(1000), 64 << 20, wait).await.unwrap();
            assert_eq!(room.num_permits(), 1, "a declared length is taken as it is");
        });
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
    fn bodies_give_back_their_room_to_wait_for_more_and_only_until_their_deadline() {
        runtime().block_on(async {
            let held = Held::new(4096);
            let (first, second) = (held.hold(1024).unwrap(), held.hold(1024).unwrap());
            let others = held.hold(2048).unwrap();
            let later = Instant::now() + std::time::Duration::from_secs(60);
            let grow = |mut room: OwnedSemaphorePermit, bytes| {
                let held = held.clone();
                tokio::spawn(async move { held.grow(&mut room, bytes, later).await.map(|()| room) })
            };
            // Both wait, holding nothing meanwhile, in the order they came.
            let (first, second_grown) = (grow(first, 3072), grow(second, 2048));
            tokio::task::yield_now().await;
            assert_eq!(held.waiting.available_permits(), 2, "their bytes count as waiting");
            drop(others);
            let first = first.await.unwrap().unwrap();
            assert_eq!(first.num_permits(), 3, "room made while it waits is its");
            assert_eq!(held.waiting.available_permits(), 3);
            drop(first);
            assert_eq!(second_grown.await.unwrap().unwrap().num_permits(), 2);
            assert_eq!(held.waiting.available_permits(), 4);
            // No room by the deadline: it ends holding nothing, and its places are free again.
            let (mut second, all_else) = (held.hold(1024).unwrap(), held.hold(3072).unwrap());
            let soon = Instant::now() + std::time::Duration::from_millis(20);
            assert!(matches!(
                held.grow(&mut second, 2048, soon).await,
                Err(IngestError::Overloaded)
            ));
            assert_eq!((second.num_permits(), held.waiting.available_permits()), (0, 4));
            assert_eq!(held.hold(1024).unwrap().num_permits(), 1, "its place is free again");
            drop(all_else);
        });
    }

    #[test]
    fn a_body_is_refused_when_the_bytes_waiting_to_grow_would_pass_the_budget() {
        runtime().block_on(async {
            let held = Held::new(4096);
            let (mut room, _others) = (held.hold(2048).unwrap(), held.hold(2048).unwrap());
            let waiting = Arc::clone(&held.waiting).try_acquire_many_owned(3).unwrap();
            let soon = || Instant::now() + std::time::Duration::from_millis(20);
            let grown = held.grow(&mut room, 3072, soon()).await;
            assert!(matches!(grown, Err(IngestError::Overloaded)));
            assert_eq!(room.num_permits(), 2, "refused at once, it keeps what it had");
            // Room among the waiting for its 2 KiB: it gives them back and waits (here, until its
            // deadline).
            drop(waiting);
            let _waiting = Arc::clone(&held.waiting).try_acquire_many_owned(2).unwrap();
            let grown = held.grow(&mut room, 3072, soon()).await;
            assert!(matches!(grown, Err(IngestError::Overloaded)));
            assert_eq!(room.num_permits(), 0, "it waited, holding nothing");
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
        let one = held.hold(1024).unwrap();
        let block_for = |bytes, wait| {
            let held = held.clone();
            runtime.spawn_blocking(move || held.block_for(bytes, wait))
        };
        let refused = block_for(2048, std::time::Duration::from_millis(20));
        assert!(matches!(runtime.block_on(refused).unwrap(), Err(IngestError::Overloaded)));
        // Room made while it waits (queued, the free place already its): the waiter gets it, and
        // a body larger than the whole budget takes all of it.
        let waiter = block_for(1 << 30, std::time::Duration::from_secs(60));
        let queued = || held.places.available_permits() == 0;
        let within = std::time::Duration::from_secs(10);
        assert!(testkit::wait_until(within, queued), "the waiter queued");
        assert!(!waiter.is_finished());
        drop(one);
        assert_eq!(runtime.block_on(waiter).unwrap().unwrap().num_permits(), 2);
        let free = block_for(1, std::time::Duration::ZERO);
        assert_eq!(runtime.block_on(free).unwrap().unwrap().num_permits(), 1);
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
