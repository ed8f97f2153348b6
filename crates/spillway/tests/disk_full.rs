//! A full disk for real: the data directory on a 2 MiB tmpfs that the test mounts (the test
//! command runs as root). Filled up, deliveries get `503 disk_full` with `Retry-After`; nothing
//! acknowledged before is lost; once space is freed, deliveries get `200` again. Where mounting
//! is refused the test fails when `CI` is set and is skipped with a loud note otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A tmpfs mounted on a directory for the guard's life (unmounted on drop, test failed or not).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        match out.status.success() {
            true => Ok(Tmpfs(dir.to_owned())),
            false => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds a file open there: detach it now, it goes once released.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A batch of 20 records of about 1 KiB, ids `n-<i>`.
fn batch(n: usize) -> (Vec<u8>, Vec<String>) {
    let ids: Vec<String> = (0..20).map(|i| format!("{n}-{i}")).collect();
    let body = ids
        .iter()
        .map(|id| {
            format!(
                r#"{{"id":"{id}","projectId":"prj_full","timestamp":1700000000000,"source":"lambda","message":"{}"}}"#,
                "m".repeat(1000)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    (body.into_bytes(), ids)
}

/// Delivers batches (numbered from `n` on) until one is refused; returns that reply, with the
/// acknowledged ids in `acked`.
fn deliver_until_refused(
    addr: std::net::SocketAddr,
    n: &mut usize,
    acked: &mut Vec<String>,
) -> Reply {
    loop {
        *n += 1;
        assert!(*n < 1000, "the disk never filled up");
        let (body, ids) = batch(*n);
        let reply = deliver(addr, &body);
        match reply.status {
            200 => {
                assert_eq!(
                    reply.json()["accepted"],
                    20,
                    "{}",
                    String::from_utf8_lossy(&reply.body)
                );
                acked.extend(ids);
            }
            503 => return reply,
            status => panic!("unexpected {status}: {}", String::from_utf8_lossy(&reply.body)),
        }
    }
}

#[test]
fn a_full_disk_is_a_503_disk_full_until_space_is_freed() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let _tmpfs = match Tmpfs::mount(&data, "2m") {
        Ok(tmpfs) => tmpfs,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("cannot mount a tmpfs for the disk-full test (CI is set, so this fails): {e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED: disk_full needs to mount a tmpfs and cannot: {e}. Run as root (scripts/test does). ***\n");
            return;
        }
    };
    let (logs, dead) = (data.join("logs"), data.join("dead-letter"));
    let mut app = TestApp::start(|c| {
        let file = c.file_sink.as_mut().unwrap();
        file.dir = logs.clone();
        file.invalid_dir = Some(dead.clone());
        c.dead_letter.dir = dead.clone();
    });
    // Most of the space goes to a filler; records fill the rest.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![b'x'; 1536 << 10]).unwrap();
    let mut acked = Vec::new();
    let mut n = 0;
    let full = deliver_until_refused(app.addr, &mut n, &mut acked);
    assert_eq!(full.error_code(), "disk_full", "{}", String::from_utf8_lossy(&full.body));
    assert!(full.header("retry-after").is_some());
    assert!(!acked.is_empty(), "the disk was full before any record went in");
    for _ in 0..3 {
        n += 1;
        let reply = deliver(app.addr, &batch(n).0);
        assert_eq!((reply.status, reply.error_code()), (503, "disk_full".to_owned()));
    }

    std::fs::remove_file(&filler).unwrap();
    n += 1;
    let (body, ids) = batch(n);
    let reply = deliver(app.addr, &body);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["accepted"], 20);
    acked.extend(ids);
    testkit::wait_until(Duration::from_secs(5), || {
        send(app.addr, "GET", "/readyz", &[], b"").status == 200
    });
    assert!(app.stop(), "the app did not stop in time");

    let stored: std::collections::HashSet<String> = lines_in(&logs)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!("disk full: {} records acknowledged before and after, all found; 4 deliveries refused with disk_full", acked.len());
}
