//! `SIGHUP` on the real binary: a rewritten configuration's drain secret applies while the
//! previous one is still accepted during the rotation; an invalid one changes nothing, is
//! counted on `/metrics`, and the configuration before it keeps serving.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use common::{deliver_until, send};

const OLD: &str = "reload-old-secret-0123";
const NEW: &str = "reload-new-secret-4567";

/// `top` goes before the tables, `server` under `[server]`, `vercel` under `[vercel]`.
fn write_config(path: &Path, data: &Path, addr: SocketAddr, [top, server, vercel]: [&str; 3]) {
    let text = format!(
        "{top}\ndata_dir = {data:?}\n[server]\nlisten = \"{addr}\"\n{server}\n[vercel]\n{vercel}\n"
    );
    std::fs::write(path, text).unwrap();
}

/// The running binary, killed when dropped (also when an assertion fails first).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary with only the file configuring it (no `SPILLWAY_*` variable over it), logging
/// warnings and errors to `log`.
fn spawn(config: &Path, addr: SocketAddr, log: &Path) -> Running {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_spillway"))
        .args(["serve", "--config"])
        .arg(config)
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    testkit::eventually(Duration::from_secs(20), "spillway to start listening", || {
        std::net::TcpStream::connect(addr).ok()
    });
    Running(child)
}

fn hangup(child: &Running) {
    // SAFETY: signals a child this test started and still owns.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) };
}

fn reloads(addr: SocketAddr, result: &str) -> u64 {
    let reply = send(addr, "GET", "/metrics", &[], b"");
    let text = String::from_utf8(reply.body).unwrap();
    let prefix = format!("spillway_config_reloads_total{{result=\"{result}\"}} ");
    let line = text.lines().find_map(|l| l.strip_prefix(&prefix));
    line.unwrap_or_else(|| panic!("no {prefix:?} in /metrics")).trim().parse().unwrap()
}

#[test]
fn sighup_rotates_the_drain_secret_and_an_invalid_config_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = (dir.path().join("spillway.toml"), dir.path().join("data"));
    let addr = testkit::free_addr();
    write_config(&config, &data, addr, ["", "", &format!("drain_secret = {OLD:?}")]);
    let log = dir.path().join("stderr.log");
    let child = spawn(&config, addr, &log);
    assert_eq!(deliver_until(addr, "/vercel/logs", OLD, 200).status, 200);
    assert_eq!(deliver_until(addr, "/vercel/logs", NEW, 403).status, 403);

    // Beside the rotation, two keys read only at start: named in a warning, values unshown.
    let rotating = format!(
        "drain_secret = {NEW:?}\nprevious_drain_secrets = [{OLD:?}]\n\
         [pipeline]\nmax_in_flight_batches = 64"
    );
    let held = "max_held_body_bytes = 16777216";
    write_config(&config, &data, addr, ["log_level = \"debug\"", held, &rotating]);
    hangup(&child);
    assert_eq!(deliver_until(addr, "/vercel/logs", NEW, 200).status, 200, "the new secret");
    assert_eq!(deliver_until(addr, "/vercel/logs", OLD, 200).status, 200, "the previous one");
    let unknown = deliver_until(addr, "/vercel/logs", "some-other-secret", 403);
    assert_eq!(unknown.status, 403);
    assert_eq!((reloads(addr, "ok"), reloads(addr, "error")), (1, 0));
    let warning = testkit::eventually(Duration::from_secs(10), "the restart warning", || {
        let text = std::fs::read_to_string(&log).unwrap();
        // Complete lines only: the warning may be read while it is being written.
        let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        lines.find(|l| l.contains("apply only after a restart")).map(str::to_owned)
    });
    for key in ["\"server.max_held_body_bytes\"", "\"pipeline.max_in_flight_batches\""] {
        assert!(warning.contains(key), "{key} in {warning}");
    }
    assert!(!warning.contains("vercel") && !warning.contains("log_level"), "{warning}");

    // Three problems at once, and a secret that must not apply since the whole file is refused.
    let invalid = "drain_secret = \"never-applied-secret\"\nverify_code = \"has spaces\"";
    write_config(&config, &data, addr, ["log_level = \"[=\"", "max_body_bytes = 1", invalid]);
    hangup(&child);
    testkit::eventually(Duration::from_secs(10), "the failed reload to be counted", || {
        (reloads(addr, "error") == 1).then_some(())
    });
    assert_eq!(reloads(addr, "ok"), 1);
    assert_eq!(deliver_until(addr, "/vercel/logs", NEW, 200).status, 200, "still the new one");
    assert_eq!(deliver_until(addr, "/vercel/logs", OLD, 200).status, 200, "and the previous");
    let refused = deliver_until(addr, "/vercel/logs", "never-applied-secret", 403);
    assert_eq!(refused.status, 403, "the invalid file's secret");

    drop(child);
    let logged = std::fs::read_to_string(&log).unwrap();
    for secret in [OLD, NEW, "never-applied-secret"] {
        assert!(!logged.contains(secret), "a secret in the log:\n{logged}");
    }
}
