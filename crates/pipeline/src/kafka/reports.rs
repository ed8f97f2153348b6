//! Serving librdkafka's delivery reports on the sink's own thread rather than on a polling thread
//! of their own (rust-rdkafka's `ThreadedProducer`).
//!
//! Why: librdkafka allocates each message and its header list on the thread that enqueues it
//! (the sink's) and frees them on the thread that serves its delivery report. Served on another
//! thread, every free went to the other core and every next allocation on the sink's thread
//! took a cache miss in glibc's malloc (a tenth of the receiver's CPU at max rate); served here,
//! what is freed is reused warm.
//!
//! How the worker learns that reports are waiting: librdkafka calls [`on_event`] from its own
//! thread when its main queue (delivery reports, errors, statistics) turns non-empty; that sends
//! a wake-up on a channel of one place, which the pipeline's worker waits on beside its jobs
//! ([`crate::sink::Sink::wakes`]), and the sink's `tick` then serves the queue until it is empty.

use std::ffi::c_void;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer};

use super::Context;

/// The most queue events (each a set of delivery reports, or an error or statistics) served in
/// one go; what is left wakes the worker again.
const MAX_EVENTS: usize = 4096;

/// The producer's main queue, and the wake-ups it sends.
pub(super) struct Reports {
    queue: *mut rdsys::rd_kafka_queue_t,
    /// The sending side, boxed so that its address (librdkafka's opaque) stays put.
    wake: Box<Sender<()>>,
    woken: Receiver<()>,
}

// SAFETY: the queue handle is librdkafka's, which is thread-safe; it is only used through
// librdkafka's functions.
unsafe impl Send for Reports {}

/// librdkafka's queue callback: the main queue has something; wake the worker (a wake-up already
/// waiting is enough).
unsafe extern "C" fn on_event(_rk: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the boxed sender, which outlives the callback (see `Drop`).
    let wake = unsafe { &*(opaque as *const Sender<()>) };
    let _ = wake.try_send(());
}

impl Reports {
    /// Wake-ups for `producer`'s main queue, where its delivery reports arrive.
    pub(super) fn new(producer: &BaseProducer<Context>) -> Reports {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let wake = Box::new(wake);
        // SAFETY: a new reference to the client's main queue, released in `Drop`; the opaque is
        // the boxed sender, which lives as long as the callback is enabled.
        let queue = unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(producer.client().native_ptr());
            let opaque = std::ptr::from_ref::<Sender<()>>(&wake) as *mut c_void;
            rdsys::rd_kafka_queue_cb_event_enable(queue, Some(on_event), opaque);
            queue
        };
        let reports = Reports { queue, wake, woken };
        // Whatever arrived before the callback was enabled is served at the first wake-up.
        let _ = reports.wake.try_send(());
        reports
    }

    /// What the worker waits on beside its jobs.
    pub(super) fn woken(&self) -> Receiver<()> {
        self.woken.clone()
    }

    /// Serves the queue (delivery reports settle their batches here) until it is empty, or
    /// `MAX_EVENTS` were served: the rest then wakes the worker again.
    pub(super) fn serve(&self, producer: &BaseProducer<Context>) {
        for _ in 0..MAX_EVENTS {
            // SAFETY: the queue handle is valid until `Drop`.
            if unsafe { rdsys::rd_kafka_queue_length(self.queue) } == 0 {
                return;
            }
            producer.poll(Duration::ZERO);
        }
        let _ = self.wake.try_send(());
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        // SAFETY: the callback is disabled before the sender it points to goes, and the queue
        // reference is released before the producer (a field declared after this one) is.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue, None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue);
        }
    }
}
