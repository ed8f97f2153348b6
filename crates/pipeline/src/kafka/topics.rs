//! Creating the Kafka sink's missing topics on a thread of its own, so that a broker that is away
//! (or slow to answer an admin request) never stalls the sink's worker thread.
//!
//! The admin client is built from the same client properties as the producer (`bootstrap.servers`
//! and every configured librdkafka property: SASL, TLS and the like), so topics can be created on
//! any broker the producer can reach. Attempts are bounded: `MAX_ATTEMPTS`, backing off from
//! `FIRST_BACKOFF` doubling up to `MAX_BACKOFF`; the thread then gives up with an error log (the
//! topics may also be created by an operator, or by the broker on first produce).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;

use super::KAFKA;

/// How long one admin request may take before the attempt counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait after the first failed attempt; doubled after each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Attempts before giving up (about half an hour of a broker being away).
pub(crate) const MAX_ATTEMPTS: u32 = 64;

/// What to create: names, partitions and replication factor.
#[derive(Debug, Clone)]
pub(crate) struct TopicPlan {
    pub(crate) topics: Vec<String>,
    pub(crate) partitions: i32,
    pub(crate) replication_factor: i32,
}

/// The creating thread, seen from the sink: whether it is done, and a way to stop it.
#[derive(Debug)]
pub(crate) struct TopicCreator {
    created: Arc<AtomicBool>,
    /// Dropped to wake and stop the thread between attempts.
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TopicCreator {
    /// Starts creating `plan`'s topics with an admin client configured by `config`.
    pub(crate) fn spawn(config: ClientConfig, plan: TopicPlan) -> std::io::Result<TopicCreator> {
        let created = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let flag = Arc::clone(&created);
        let handle = std::thread::Builder::new()
            .name("kafka-topics".into())
            .spawn(move || run(&config, &plan, &stopped, &flag))?;
        Ok(TopicCreator { created, stop: Some(stop), handle: Some(handle) })
    }

    /// Whether the topics exist (never blocks; reaps the thread once it has finished).
    pub(crate) fn poll(&mut self) -> bool {
        if self.handle.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(handle) = self.handle.take() {
                let _ = handle.join();
            }
        }
        self.created.load(Ordering::Acquire)
    }
}

impl Drop for TopicCreator {
    fn drop(&mut self) {
        // Wakes the thread if it is waiting between attempts. It is not joined: an admin request
        // in progress ends within REQUEST_TIMEOUT and the thread then sees the stop.
        self.stop.take();
    }
}

fn run(config: &ClientConfig, plan: &TopicPlan, stopped: &Receiver<()>, created: &AtomicBool) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=MAX_ATTEMPTS {
        match create(config, plan) {
            Ok(()) => {
                created.store(true, Ordering::Release);
                return;
            }
            Err(e) => tracing::warn!(
                sink = KAFKA,
                attempt,
                error = %e,
                "cannot create topics yet; will retry"
            ),
        }
        match stopped.recv_timeout(backoff) {
            Err(RecvTimeoutError::Timeout) => backoff = (backoff * 2).min(MAX_BACKOFF),
            _ => return,
        }
    }
    tracing::error!(
        sink = KAFKA,
        attempts = MAX_ATTEMPTS,
        "gave up creating topics; create them on the broker"
    );
}

/// One attempt: creates every topic of `plan`, an existing one counting as created.
fn create(config: &ClientConfig, plan: &TopicPlan) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e| crate::kafka_properties::client_error(&e))?;
    let new: Vec<NewTopic<'_>> = plan
        .topics
        .iter()
        .map(|t| {
            NewTopic::new(t, plan.partitions, TopicReplication::Fixed(plan.replication_factor))
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT));
    // Blocking is fine here: this thread exists for it.
    let results = futures_executor::block_on(admin.create_topics(&new, &options))
        .map_err(|e| e.to_string())?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(sink = KAFKA, topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("topic {topic}: {code}")),
        }
    }
    Ok(())
}
