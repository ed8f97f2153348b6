//! Sync lanes of the file sink, on the simulated disk with the syncers on their threads
//! (`sim::threaded`): a sync held on one lane does not hold the batches written to another, and
//! the per-stage latency histograms count every batch; a write that fails while the groups
//! before it wait for their sync leaves that sync to the syncer.

mod sim;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipeline::file::{FileSink, FileSinkConfig};
use pipeline::{Pipeline, PipelineConfig, PipelineMetrics};
use prometheus_client::registry::Registry;
use record::Dispatch;
use sim::threaded::Threaded;
use sim::{batch, SimDisk};
use testkit::{block_on, wait_until};

const LOGS: &str = "/sim/logs";
const WITHIN: Duration = Duration::from_secs(10);

fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[test]
fn a_sync_held_on_one_lane_does_not_hold_the_batches_of_the_other() {
    let threaded = Threaded::new(SimDisk::new(7));
    let mut registry = Registry::default();
    let metrics = PipelineMetrics::register(&mut registry);
    let config = FileSinkConfig { sync_lanes: 2, ..FileSinkConfig::new(LOGS) };
    let sink = FileSink::records_on(Arc::new(threaded.clone()), config, &metrics).unwrap();
    let (pipeline, workers) =
        Pipeline::start(PipelineConfig::default(), vec![Box::new(sink)], metrics).unwrap();

    // The first batch goes to the first lane, whose sync is then held.
    threaded.hold_next_sync();
    let first = pipeline.try_submit(batch(&["a".into()], &[10], 1)).unwrap();
    let (tx, first_settled) = crossbeam_channel::bounded(1);
    let waiting = std::thread::spawn(move || tx.send(block_on(first.wait())).unwrap());
    assert!(threaded.wait_until_held(WITHIN), "the first batch's sync never started");

    // The second goes to the free lane and is acknowledged while the first's sync is held.
    let second = pipeline.try_submit(batch(&["b".into()], &[10], 2)).unwrap();
    // Bounded: with one lane it would wait for the held sync (and the test fail, not hang).
    let second = block_on(async { tokio::time::timeout(WITHIN, second.wait()).await });
    if second.is_err() {
        threaded.release();
        panic!("the second batch waited for the first one's held sync");
    }
    second.unwrap().expect("the second batch, on the other lane, is acknowledged");
    assert!(first_settled.try_recv().is_err(), "the first batch was settled before its sync");
    let mut open: Vec<String> = threaded.disk.files(Path::new(LOGS)).into_keys().collect();
    open.retain(|n| n.ends_with(".ndjson.open"));
    open.sort();
    assert_eq!(open.len(), 2, "one file per lane: {open:?}");
    assert!(open[0].ends_with("-000001.ndjson.open"), "the first lane's names: {open:?}");
    assert!(open[1].ends_with("-b000001.ndjson.open"), "the second lane's names: {open:?}");

    // Released, the first batch's sync succeeds and it is acknowledged too.
    threaded.release();
    first_settled.recv_timeout(WITHIN).unwrap().expect("the first batch, once synced");
    waiting.join().unwrap();

    let text = metrics_text(&registry);
    for stage in ["queue", "write", "sync"] {
        let count =
            format!("spillway_sink_stage_seconds_count{{sink=\"file\",stage=\"{stage}\"}} 2");
        assert!(text.contains(&count), "{count} missing from\n{text}");
    }
    assert!(text.contains("spillway_sink_fdatasync_seconds_count{sink=\"file\"} 2"), "{text}");
    drop(pipeline);
    assert!(workers.join(WITHIN).is_empty(), "a worker did not stop");
    let done = threaded.disk.files(Path::new(LOGS));
    assert_eq!(done.keys().filter(|n| n.ends_with(".ndjson")).count(), 2, "{:?}", done.keys());
}

/// Whether a file in `dir` holds the record with this id.
fn holds(disk: &SimDisk, id: &str) -> bool {
    let needle = format!(r#"{{"id":"{id}""#);
    let found = |data: &Vec<u8>| data.windows(needle.len()).any(|w| w == needle.as_bytes());
    disk.files(Path::new(LOGS)).values().any(found)
}

#[test]
fn a_failed_write_leaves_the_sync_of_the_groups_before_it_to_the_syncer() {
    // Linux reports a failed writeback once per open file: had the writer synced the file when
    // it left it, a failure there would be the one report, and the syncer's `fdatasync` for the
    // groups already written would then succeed and acknowledge bytes that never reached the disk.
    let threaded = Threaded::new(SimDisk::new(11));
    threaded.disk.knobs(|k| k.failed_sync_loses_pages = true);
    let metrics = PipelineMetrics::register(&mut Registry::default());
    // One lane, so that the second batch waits behind the first (as when every lane is busy).
    let config = FileSinkConfig { sync_lanes: 1, ..FileSinkConfig::new(LOGS) };
    let sink = FileSink::records_on(Arc::new(threaded.clone()), config, &metrics).unwrap();
    let (pipeline, workers) =
        Pipeline::start(PipelineConfig::default(), vec![Box::new(sink)], metrics).unwrap();
    let submit = |id: &str, digest| {
        let waiter = pipeline.try_submit(batch(&[id.into()], &[10], digest)).unwrap();
        let (tx, settled) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || tx.send(block_on(waiter.wait()).is_ok()).unwrap());
        settled
    };

    // The first batch's sync is held; the second is written meanwhile and waits behind it.
    threaded.hold_next_sync();
    let first = submit("a", 1);
    assert!(threaded.wait_until_held(WITHIN), "the first batch's sync never started");
    let second = submit("b", 2);
    assert!(wait_until(WITHIN, || holds(&threaded.disk, "b")), "the second batch was not written");

    // The third batch's write fails, and so does the next `sync_all`, losing what is unsynced.
    threaded.disk.knobs(|k| {
        k.fail_next.insert("append", 1);
        k.fail_next.insert("sync_all", 1);
    });
    assert!(!submit("c", 3).recv_timeout(WITHIN).unwrap(), "the failed write was acknowledged");
    threaded.release();
    let first = first.recv_timeout(WITHIN).unwrap();
    let second = second.recv_timeout(WITHIN).unwrap();
    drop(pipeline);
    assert!(workers.join(WITHIN).is_empty(), "a worker did not stop");

    // Every acknowledged record survives the power loss.
    let disk = threaded.disk.reboot();
    for (id, acknowledged) in [("a", first), ("b", second)] {
        assert!(acknowledged, "{id} was written before the failure and its sync succeeded");
        assert!(
            holds(&disk, id),
            "{id} was acknowledged and lost: {:?}",
            disk.files(Path::new(LOGS))
        );
    }
}
