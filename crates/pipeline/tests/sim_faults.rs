//! The file sink when single operations fail, on the simulated disk (`sim`): a failed sync
//! fails its group and the sink moves to a new file, the old one completed with only its
//! acknowledged groups (with `fsync = "interval"`, a failed sync
//! of the tick makes the sink unhealthy and moves it to a new file); a file whose completion failed is
//! completed again on a later tick, with a backoff, and counted in a metric.

mod sim;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pipeline::file::{FileSink, FileSinkConfig, FsyncPolicy};
use pipeline::{Pipeline, PipelineConfig, PipelineMetrics, Workers};
use prometheus_client::registry::Registry;
use record::Dispatch;
use sim::{batch, Driven, SimDisk};
use testkit::{block_on, wait_until};

const LOGS: &str = "/sim/logs";

fn names(disk: &SimDisk, suffix: &str) -> Vec<String> {
    disk.files(Path::new(LOGS)).into_keys().filter(|n| n.ends_with(suffix)).collect()
}

/// A records sink on `disk`, ticked on `clock_ms` (the pipeline's ticks passed on).
fn start(
    disk: &SimDisk,
    config: FileSinkConfig,
    clock_ms: &Arc<AtomicU64>,
) -> (Pipeline, Workers, Registry) {
    let mut registry = Registry::default();
    let metrics = PipelineMetrics::register(&mut registry);
    let sink = FileSink::records_on(Arc::new(disk.clone()), config, &metrics).unwrap();
    let driven = Driven::new(sink, Arc::clone(clock_ms), true);
    let (pipeline, workers) =
        Pipeline::start(PipelineConfig::default(), vec![Box::new(driven)], metrics).unwrap();
    (pipeline, workers, registry)
}

fn one(id: &str, digest: u128) -> record::Batch {
    batch(&[id.to_owned()], &[40], digest)
}

fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[test]
fn a_failed_sync_fails_its_group_and_the_sink_moves_to_a_new_file() {
    let disk = SimDisk::new(1);
    let clock = Arc::new(AtomicU64::new(0));
    let (pipeline, workers, _registry) = start(&disk, FileSinkConfig::new(LOGS), &clock);
    // As Linux does: the failed sync's pages are lost (zeros here), a later sync succeeds.
    disk.knobs(|k| {
        k.fail_next.insert("sync_data", 1);
        k.failed_sync_loses_pages = true;
    });
    let failure = block_on(pipeline.try_submit(one("a", 1)).unwrap().wait()).unwrap_err();
    assert_eq!((failure.sink, failure.code), ("file", "io_error"));
    assert!(!pipeline.ready(), "a sink whose sync failed is not ready");
    block_on(pipeline.try_submit(one("b", 2)).unwrap().wait()).unwrap();
    assert!(pipeline.ready());
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(5)).is_empty());
    // The second batch went to a new file, not after data a failed sync may have lost; the
    // first file was cut to what was acknowledged in it (nothing: it is gone), so no completed
    // file holds the failed sync's holes.
    let files = disk.files(Path::new(LOGS));
    let done: Vec<&Vec<u8>> =
        files.iter().filter(|(n, _)| n.ends_with(".ndjson")).map(|(_, d)| d).collect();
    assert_eq!(files.len(), 1, "{:?}", files.keys());
    assert_eq!(String::from_utf8_lossy(done[0]), format!("{}\n", one_line("b")));
}

/// The line `one(id, _)` writes.
fn one_line(id: &str) -> String {
    format!(r#"{{"id":"{id}","pad":"{}"}}"#, "p".repeat(40))
}

#[test]
fn a_file_whose_sync_failed_is_completed_with_its_acknowledged_groups_only() {
    let disk = SimDisk::new(5);
    let clock = Arc::new(AtomicU64::new(0));
    let (pipeline, workers, _registry) = start(&disk, FileSinkConfig::new(LOGS), &clock);
    block_on(pipeline.try_submit(one("a", 1)).unwrap().wait()).unwrap();
    disk.knobs(|k| {
        k.fail_next.insert("sync_data", 1);
        k.failed_sync_loses_pages = true;
    });
    block_on(pipeline.try_submit(one("b", 2)).unwrap().wait()).unwrap_err();
    block_on(pipeline.try_submit(one("c", 3)).unwrap().wait()).unwrap();
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(5)).is_empty());
    // The first file keeps "a" (acknowledged, synced before the failure) and loses "b" (never
    // acknowledged; its bytes were lost as zeros), "c" went to a new file.
    let files = disk.files(Path::new(LOGS));
    let done: Vec<String> = files
        .iter()
        .filter(|(n, _)| n.ends_with(".ndjson"))
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert_eq!(files.len(), 2, "{:?}", files.keys());
    assert_eq!(done, [format!("{}\n", one_line("a")), format!("{}\n", one_line("c"))]);
}

#[test]
fn a_file_whose_completion_failed_is_completed_on_a_later_tick() {
    let disk = SimDisk::new(2);
    let clock = Arc::new(AtomicU64::new(0));
    let config = FileSinkConfig { max_file_bytes: 10, ..FileSinkConfig::new(LOGS) };
    let (pipeline, workers, registry) = start(&disk, config, &clock);
    disk.knobs(|k| {
        k.fail_next.insert("rename", 1);
    });
    // Over its size at once: the tick after the write completes it, and the rename fails.
    block_on(pipeline.try_submit(one("a", 1)).unwrap().wait()).unwrap();
    wait_until(Duration::from_secs(5), || metrics_text(&registry).contains("completion_failures"));
    let text = metrics_text(&registry);
    assert!(
        text.contains(
            r#"spillway_sink_file_completion_failures_total{sink="file",code="io_error"} 1"#
        ),
        "{text}"
    );
    assert_eq!(names(&disk, ".open").len(), 1, "acknowledged, still hidden from readers");
    assert!(names(&disk, ".ndjson").is_empty());
    // Not before its backoff (a second from the first tick that saw it) has passed...
    clock.fetch_add(500, Ordering::SeqCst);
    block_on(pipeline.try_submit(one("b", 2)).unwrap().wait()).unwrap();
    // The acknowledgement comes before the tick that completes b's file.
    wait_until(Duration::from_secs(5), || names(&disk, ".ndjson").len() == 1);
    assert_eq!(names(&disk, ".ndjson").len(), 1, "only b's file, rotated without trouble");
    assert_eq!(names(&disk, ".open").len(), 1);
    // ...then a tick, without any write, completes it.
    clock.fetch_add(1000, Ordering::SeqCst);
    wait_until(Duration::from_secs(5), || names(&disk, ".open").is_empty());
    assert_eq!(names(&disk, ".open"), Vec::<String>::new());
    assert_eq!(names(&disk, ".ndjson").len(), 2);
    let text = metrics_text(&registry);
    assert!(text.contains(r#"spillway_sink_files_completed_total{sink="file"} 2"#), "{text}");
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(5)).is_empty());
}

#[test]
fn a_completion_still_failing_at_shutdown_is_left_to_recovery() {
    let disk = SimDisk::new(3);
    let clock = Arc::new(AtomicU64::new(0));
    let config = FileSinkConfig { max_file_bytes: 10, ..FileSinkConfig::new(LOGS) };
    let (pipeline, workers, _registry) = start(&disk, config.clone(), &clock);
    disk.knobs(|k| {
        k.fail_next.insert("rename", 2);
    });
    block_on(pipeline.try_submit(one("a", 1)).unwrap().wait()).unwrap();
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(5)).is_empty());
    assert_eq!(names(&disk, ".open").len(), 1, "the shutdown's try failed too");
    // The next start completes it.
    let metrics = PipelineMetrics::register(&mut Registry::default());
    drop(FileSink::records_on(Arc::new(disk.clone()), config, &metrics).unwrap());
    assert_eq!(names(&disk, ".open"), Vec::<String>::new());
    let done = disk.files(Path::new(LOGS));
    assert_eq!(done.len(), 1);
    assert!(String::from_utf8_lossy(done.values().next().unwrap()).starts_with(r#"{"id":"a""#));
}

#[test]
fn a_failed_interval_sync_is_reported_and_the_sink_moves_to_a_new_file() {
    let disk = SimDisk::new(4);
    let clock = Arc::new(AtomicU64::new(0));
    let fsync = FsyncPolicy::Interval(Duration::from_millis(100));
    let config = FileSinkConfig { fsync, ..FileSinkConfig::new(LOGS) };
    let (pipeline, workers, registry) = start(&disk, config, &clock);
    // Acknowledged after its write: the interval's weaker promise.
    block_on(pipeline.try_submit(one("a", 1)).unwrap().wait()).unwrap();
    assert!(pipeline.ready());
    disk.knobs(|k| {
        k.fail_next.insert("sync_data", 1);
    });
    clock.fetch_add(200, Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(5), || !pipeline.ready()), "the failure went unseen");
    let text = metrics_text(&registry);
    assert!(text.contains(r#"spillway_sink_write_errors_total{sink="file",code="io_error"} 1"#));
    // The next batch goes to a new file, and the sink is healthy again.
    block_on(pipeline.try_submit(one("b", 2)).unwrap().wait()).unwrap();
    assert!(pipeline.ready());
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(5)).is_empty());
    let done = names(&disk, ".ndjson");
    assert_eq!(done.len(), 2, "{done:?}");
}

#[test]
fn a_file_whose_sync_failed_is_cut_at_shutdown_too() {
    // No write comes after the failure to make the sink leave the file: the shutdown completes
    // it, and must cut it as a write would have.
    let disk = SimDisk::new(6);
    let clock = Arc::new(AtomicU64::new(0));
    let (pipeline, workers, _registry) = start(&disk, FileSinkConfig::new(LOGS), &clock);
    block_on(pipeline.try_submit(one("a", 1)).unwrap().wait()).unwrap();
    disk.knobs(|k| {
        k.fail_next.insert("sync_data", 1);
        k.failed_sync_loses_pages = true;
    });
    block_on(pipeline.try_submit(one("b", 2)).unwrap().wait()).unwrap_err();
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(5)).is_empty());
    let files = disk.files(Path::new(LOGS));
    let done: Vec<String> =
        files.values().map(|d| String::from_utf8_lossy(d).into_owned()).collect();
    assert_eq!(done, [format!("{}\n", one_line("a"))], "{:?}", files.keys());
}

#[test]
fn a_file_cut_to_nothing_is_emptied_before_it_is_removed() {
    // Nothing in the file was acknowledged, and removing it fails: what is left for recovery
    // must be empty, or recovery would complete it with records answered 503.
    let disk = SimDisk::new(7);
    let clock = Arc::new(AtomicU64::new(0));
    let (pipeline, workers, _registry) = start(&disk, FileSinkConfig::new(LOGS), &clock);
    disk.knobs(|k| {
        k.fail_next.insert("sync_data", 1);
        k.fail_next.insert("remove", 1);
    });
    block_on(pipeline.try_submit(one("a", 1)).unwrap().wait()).unwrap_err();
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(5)).is_empty());
    // The next start recovers the directory.
    let metrics = PipelineMetrics::register(&mut Registry::default());
    drop(
        FileSink::records_on(Arc::new(disk.clone()), FileSinkConfig::new(LOGS), &metrics).unwrap(),
    );
    let files = disk.files(Path::new(LOGS));
    assert!(
        files.values().all(|d| !String::from_utf8_lossy(d).contains(r#""id":"a""#)),
        "a batch answered 503 was completed: {:?}",
        files.keys()
    );
}
