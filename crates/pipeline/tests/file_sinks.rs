//! The pipeline with its file sinks, on a real directory: what is acknowledged is on disk, files
//! rotate and complete, a crash's leftovers are recovered, and limits answer `Refusal::Overloaded`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipeline::file::{FileSink, FileSinkConfig, FsyncPolicy};
use pipeline::{Job, Pipeline, PipelineConfig, PipelineMetrics, Sink, Takes, Workers};
use record::{Batch, Dispatch, FieldSpan, Record, RecordMeta, Refusal, Reject, RejectReason};
use testkit::{block_on, wait_until};

fn meta() -> RecordMeta {
    RecordMeta { id: FieldSpan::new(7, 1, false), ..RecordMeta::default() }
}

/// A batch as the decoder makes one: the records are newline-terminated slices of one body.
fn batch(records: &[&str], rejects: &[&[u8]]) -> Batch {
    let body = Bytes::from(records.iter().map(|l| format!("{l}\n")).collect::<String>());
    let mut at = 0;
    let records = records
        .iter()
        .map(|l| {
            at += l.len() + 1;
            Record::terminated(body.slice(at - l.len() - 1..at), meta())
        })
        .collect();
    Batch {
        drain: Arc::from("default"),
        data_type: record::DataType::Logs,
        received_at_ms: 1_700_000_000_000,
        records,
        body,
        rejects: rejects
            .iter()
            .map(|raw| Reject {
                raw: Bytes::copy_from_slice(raw),
                reason: RejectReason::InvalidJson,
                offset: 3,
            })
            .collect(),
        pinned_bytes: 100,
        digest: 0,
    }
}

fn files(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| n.ends_with(suffix));
    names.sort();
    names
}

fn read_all(dir: &Path, suffix: &str) -> String {
    files(dir, suffix).iter().map(|n| std::fs::read_to_string(dir.join(n)).unwrap()).collect()
}

fn start(root: &Path, config: FileSinkConfig, limits: PipelineConfig) -> (Pipeline, Workers) {
    let metrics = PipelineMetrics::register(&mut Default::default());
    let records = FileSink::records(config.clone(), &metrics).unwrap();
    let dlq =
        FileSink::dead_letter(FileSinkConfig { dir: root.join("dead-letter"), ..config }, &metrics)
            .unwrap();
    Pipeline::start(limits, vec![Box::new(records), Box::new(dlq)], metrics).unwrap()
}

#[test]
fn acknowledged_records_and_dead_letters_are_in_their_files() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    let (pipeline, workers) =
        start(root.path(), FileSinkConfig::new(&logs), PipelineConfig::default());
    let waiter = pipeline
        .try_submit(batch(&[r#"{"id":"a","x":1}"#, r#"{"id":"b"}"#], &[b"{bad", b"\xff\xfe"]))
        .unwrap();
    assert_eq!(block_on(waiter.wait()), Ok(()));
    // Acknowledged means written: readable now, before any rotation or shutdown.
    assert_eq!(read_all(&logs, ".open"), "{\"id\":\"a\",\"x\":1}\n{\"id\":\"b\"}\n");
    let dead: Vec<serde_json::Value> = read_all(&root.path().join("dead-letter"), ".open")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["raw"], "{bad");
    assert_eq!(dead[0]["reason"], "invalid_json");
    assert_eq!(dead[0]["drain"], "default");
    assert_eq!(dead[0]["offset"], 3);
    assert_eq!(dead[1]["raw_base64"], "//4=");
    drop(pipeline);
    assert!(workers.join(Duration::from_secs(5)).is_empty());
    // Shutdown completes the open files.
    assert!(files(&logs, ".open").is_empty());
    assert_eq!(files(&logs, ".ndjson").len(), 1);
    assert_eq!(read_all(&logs, ".ndjson").lines().count(), 2);
}

#[test]
fn a_file_is_completed_once_it_reaches_its_size() {
    // Without fsync the writer completes files itself; with fsync per batch its syncer does.
    for fsync in [FsyncPolicy::Never, FsyncPolicy::Batch] {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        let config = FileSinkConfig { max_file_bytes: 40, fsync, ..FileSinkConfig::new(&logs) };
        let (pipeline, workers) = start(root.path(), config, PipelineConfig::default());
        for i in 0..3 {
            let line = format!(r#"{{"id":"{i}","pad":"0123456789012345678901234567890"}}"#);
            block_on(pipeline.try_submit(batch(&[&line], &[])).unwrap().wait()).unwrap();
        }
        wait_until(Duration::from_secs(5), || files(&logs, ".ndjson").len() == 3);
        let done = files(&logs, ".ndjson");
        assert_eq!(
            done.len(),
            3,
            "{fsync:?}: one complete file per write over the limit: {done:?}"
        );
        assert!(files(&logs, ".open").is_empty(), "{fsync:?}");
        let lines: Vec<String> =
            done.iter().map(|name| std::fs::read_to_string(logs.join(name)).unwrap()).collect();
        for (i, text) in lines.iter().enumerate() {
            assert!(text.starts_with(&format!(r#"{{"id":"{i}""#)), "{fsync:?}: {text}");
            assert_eq!(text.lines().count(), 1, "{fsync:?}");
        }
        drop(pipeline);
        assert!(workers.join(Duration::from_secs(5)).is_empty());
    }
}

#[test]
fn a_file_is_completed_once_it_reaches_its_age() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    let config = FileSinkConfig {
        max_file_age: Duration::from_millis(200),
        fsync: FsyncPolicy::Interval(Duration::from_millis(50)),
        ..FileSinkConfig::new(&logs)
    };
    let limits = PipelineConfig { tick: Duration::from_millis(10), ..PipelineConfig::default() };
    let (pipeline, workers) = start(root.path(), config, limits);
    block_on(pipeline.try_submit(batch(&[r#"{"id":"a"}"#, r#"{"id":"b"}"#], &[])).unwrap().wait())
        .unwrap();
    assert_eq!(files(&logs, ".open").len(), 1, "young and small: still open");
    wait_until(Duration::from_secs(5), || files(&logs, ".open").is_empty());
    assert_eq!(files(&logs, ".ndjson").len(), 1);
    assert_eq!(read_all(&logs, ".ndjson"), "{\"id\":\"a\"}\n{\"id\":\"b\"}\n");
    drop(pipeline);
    workers.join(Duration::from_secs(5));
}

#[test]
fn files_left_open_by_a_crash_are_completed_without_their_partial_line() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("records-1700000000000-000001.ndjson.open"),
        "{\"id\":\"a\"}\n{\"id\":\"tor",
    )
    .unwrap();
    std::fs::write(logs.join("records-1700000000001-000002.ndjson.open"), "{\"id\":\"par").unwrap();
    // A long file whose last line is cut: only its tail is read to find where to cut.
    let long: String = (0..20_000).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
    std::fs::write(
        logs.join("records-1700000000002-000003.ndjson.open"),
        format!("{long}{{\"id\":\"cu"),
    )
    .unwrap();
    let (pipeline, workers) =
        start(root.path(), FileSinkConfig::new(&logs), PipelineConfig::default());
    assert_eq!(files(&logs, ".open"), Vec::<String>::new());
    assert_eq!(
        files(&logs, ".ndjson"),
        vec!["records-1700000000000-000001.ndjson", "records-1700000000002-000003.ndjson"]
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("records-1700000000000-000001.ndjson")).unwrap(),
        "{\"id\":\"a\"}\n"
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("records-1700000000002-000003.ndjson")).unwrap(),
        long
    );
    drop(pipeline);
    workers.join(Duration::from_secs(5));
}

#[test]
fn lines_of_a_crashed_file_that_are_not_records_are_set_aside_as_dead_letters() {
    let root = tempfile::tempdir().unwrap();
    let (logs, dead) = (root.path().join("logs"), root.path().join("dead-letter"));
    std::fs::create_dir_all(&logs).unwrap();
    // What a power loss can leave: zeros where a write's sectors never reached the disk, a line
    // torn and followed by later data, and a partial last line.
    let zeros = format!("{}{{\"id\":\"z\"}}", "\0".repeat(20));
    let name = "records-1700000000000-000001.ndjson.open";
    let mut bytes = b"{\"id\":\"a\"}\n".to_vec();
    bytes.extend_from_slice(zeros.as_bytes());
    bytes.extend_from_slice(b"\n{\"id\":\"b\"}\n{\"id\":\"to\n");
    // Not UTF-8 either.
    bytes.extend_from_slice(b"\xff{\"id\":\"c\"}\n{\"id\":\"par");
    std::fs::write(logs.join(name), &bytes).unwrap();
    let config = FileSinkConfig { invalid_dir: Some(dead.clone()), ..FileSinkConfig::new(&logs) };
    let (pipeline, workers) = start(root.path(), config, PipelineConfig::default());
    assert_eq!(files(&logs, ".open"), Vec::<String>::new());
    assert_eq!(files(&logs, ".clean"), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(logs.join("records-1700000000000-000001.ndjson")).unwrap(),
        "{\"id\":\"a\"}\n{\"id\":\"b\"}\n"
    );
    let set_aside = "recovered-invalid-records-1700000000000-000001.ndjson";
    assert_eq!(files(&dead, ".ndjson"), vec![set_aside]);
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(dead.join(set_aside))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(letters.iter().all(|l| l["reason"] == "recovered_invalid" && l["file"] == name));
    assert_eq!(letters[0]["raw"], zeros.as_str());
    assert_eq!(letters[0]["offset"], 11);
    assert_eq!(letters[1]["raw"], "{\"id\":\"to");
    let expected = [&b"\xff"[..], b"{\"id\":\"c\"}"].concat();
    use base64::Engine as _;
    assert_eq!(
        letters[2]["raw_base64"],
        base64::engine::general_purpose::STANDARD.encode(expected).as_str()
    );
    drop(pipeline);
    workers.join(Duration::from_secs(5));
}

#[test]
fn files_and_directories_are_private_to_the_owner_and_group_unless_configured() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    for (file_mode, dir_mode, sub) in [(None, None, "default"), (Some(0o600), Some(0o700), "set")] {
        let logs = root.path().join(sub).join("logs");
        let mut config = FileSinkConfig::new(&logs);
        config.file_mode = file_mode.unwrap_or(config.file_mode);
        config.dir_mode = dir_mode.unwrap_or(config.dir_mode);
        let (pipeline, workers) = start(&root.path().join(sub), config, PipelineConfig::default());
        block_on(pipeline.try_submit(batch(&[r#"{"id":"a"}"#], &[b"{bad"])).unwrap().wait())
            .unwrap();
        drop(pipeline);
        assert!(workers.join(Duration::from_secs(5)).is_empty());
        let dead = root.path().join(sub).join("dead-letter");
        for dir in [&root.path().join(sub), &logs, &dead] {
            assert_eq!(mode(dir), dir_mode.unwrap_or(0o750), "{}", dir.display());
        }
        for dir in [&logs, &dead] {
            for name in files(dir, ".ndjson") {
                assert_eq!(mode(&dir.join(&name)), file_mode.unwrap_or(0o640), "{name}");
            }
            assert_eq!(files(dir, ".ndjson").len(), 1);
        }
    }
}

#[test]
fn a_directory_is_written_by_one_process_at_a_time() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    let metrics = PipelineMetrics::register(&mut Default::default());
    let first = FileSink::records(FileSinkConfig::new(&logs), &metrics).unwrap();
    let second = FileSink::records(FileSinkConfig::new(&logs), &metrics).unwrap_err();
    assert!(format!("{:?}", second).contains("another process"), "{second:?}");
    drop(first);
    FileSink::records(FileSinkConfig::new(&logs), &metrics).unwrap();
}

#[test]
fn a_failed_write_fails_the_batch_and_the_sink_recovers() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    let (pipeline, workers) =
        start(root.path(), FileSinkConfig::new(&logs), PipelineConfig::default());
    std::fs::remove_dir_all(&logs).unwrap();
    let failure =
        block_on(pipeline.try_submit(batch(&[r#"{"id":"a"}"#], &[])).unwrap().wait()).unwrap_err();
    assert_eq!((failure.sink, failure.code), ("file", "not_found"));
    wait_until(Duration::from_secs(5), || !pipeline.ready());
    assert!(!pipeline.ready(), "a failing sink is not ready");
    std::fs::create_dir_all(&logs).unwrap();
    block_on(pipeline.try_submit(batch(&[r#"{"id":"b"}"#], &[])).unwrap().wait()).unwrap();
    assert!(pipeline.ready());
    assert_eq!(read_all(&logs, ".open"), "{\"id\":\"b\"}\n");
    drop(pipeline);
    workers.join(Duration::from_secs(5));
}

/// A sink that holds every job until told to let go: a stalled destination.
struct Stalled {
    release: crossbeam_channel::Receiver<()>,
}

impl Sink for Stalled {
    fn name(&self) -> &'static str {
        "stalled"
    }
    fn takes(&self) -> Takes {
        Takes::Records
    }
    fn write(&mut self, jobs: &mut Vec<Job>) {
        let _ = self.release.recv();
        for job in jobs {
            job.complete();
        }
    }
    fn tick(&mut self, _now: Instant) {}
    fn health(&self) -> pipeline::Health {
        pipeline::Health::new()
    }
    fn close(&mut self) {}
}

#[test]
fn a_stalled_sink_turns_into_overloaded_at_the_in_flight_limit() {
    let (release, rx) = crossbeam_channel::unbounded();
    let metrics = PipelineMetrics::register(&mut Default::default());
    let limits = PipelineConfig { max_in_flight_batches: 2, ..PipelineConfig::default() };
    let (pipeline, workers) =
        Pipeline::start(limits, vec![Box::new(Stalled { release: rx })], metrics).unwrap();
    let first = pipeline.try_submit(batch(&["{}"], &[])).unwrap();
    let second = pipeline.try_submit(batch(&["{}"], &[])).unwrap();
    assert_eq!(pipeline.admissible(1), Err(Refusal::Overloaded));
    assert_eq!(pipeline.try_submit(batch(&["{}"], &[])).unwrap_err(), Refusal::Overloaded);
    release.send(()).unwrap();
    release.send(()).unwrap();
    block_on(async {
        first.wait().await.unwrap();
        second.wait().await.unwrap();
    });
    // The permits are released once the sink lets go of both batches.
    wait_until(Duration::from_secs(5), || pipeline.admissible(1).is_ok());
    let third = pipeline.try_submit(batch(&["{}"], &[])).unwrap();
    release.send(()).unwrap();
    block_on(third.wait()).unwrap();
    drop(pipeline);
    workers.join(Duration::from_secs(5));
}

#[test]
fn the_byte_limit_bounds_admission_too() {
    let (release, rx) = crossbeam_channel::unbounded();
    let metrics = PipelineMetrics::register(&mut Default::default());
    let limits = PipelineConfig { max_in_flight_bytes: 150, ..PipelineConfig::default() };
    let (pipeline, workers) =
        Pipeline::start(limits, vec![Box::new(Stalled { release: rx })], metrics).unwrap();
    let first = pipeline.try_submit(batch(&["{}"], &[])).unwrap(); // pins 100 bytes
    assert_eq!(pipeline.try_submit(batch(&["{}"], &[])).unwrap_err(), Refusal::Overloaded);
    release.send(()).unwrap();
    block_on(first.wait()).unwrap();
    drop(release);
    drop(pipeline);
    workers.join(Duration::from_secs(5));
}

/// Bytes of `path` held in the page cache, as util-linux's `fincore` reports them.
fn cached_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "fincore: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn synced_pages_leave_the_page_cache_unless_asked_to_stay() {
    // Under target/, on the disk the build uses: tmpfs pages cannot leave the cache.
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let lines: Vec<String> = (0..3000).map(|i| format!(r#"{{"id":"{i:0>500}"}}"#)).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    for (drop_synced_pages, dir) in [(true, "dropped"), (false, "kept")] {
        let logs = root.path().join(dir);
        let config = FileSinkConfig { drop_synced_pages, ..FileSinkConfig::new(&logs) };
        let (pipeline, workers) = start(root.path(), config, PipelineConfig::default());
        block_on(pipeline.try_submit(batch(&lines, &[])).unwrap().wait()).unwrap();
        let file = logs.join(&files(&logs, ".open")[0]);
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size > 1 << 20, "{size}");
        if drop_synced_pages {
            // All but the partly written last page, which the next append would read back. The
            // syncer drops a group's pages right after acknowledging it: wait for that.
            let dropped = wait_until(Duration::from_secs(10), || cached_bytes(&file) <= 4096);
            let cached = cached_bytes(&file);
            assert!(dropped, "{cached} of {size} bytes still cached");
        } else {
            let cached = cached_bytes(&file);
            assert!(cached >= size / 4096 * 4096, "{cached} of {size} bytes cached");
        }
        drop(pipeline);
        assert!(workers.join(Duration::from_secs(5)).is_empty());
    }
}
