//! The tansu Kafka-protocol broker for the real-broker tests: the binary `SPILLWAY_TANSU` names
//! (`scripts/test` builds it and sets the variable), run on a loopback port, killed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::eventually;

/// The tansu binary. A run without one fails, unless it opts out with `SPILLWAY_SKIP_KAFKA=1`
/// (then `None`, and the skip is printed): a missing broker never passes silently.
pub fn tansu() -> Option<PathBuf> {
    if std::env::var("SPILLWAY_SKIP_KAFKA").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: SPILLWAY_SKIP_KAFKA=1, no real-broker Kafka test runs");
        return None;
    }
    let path = std::env::var_os("SPILLWAY_TANSU").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "SPILLWAY_TANSU is not set: run ./scripts/test (it builds the tansu broker), point \
             SPILLWAY_TANSU at a tansu binary, or opt out with SPILLWAY_SKIP_KAFKA=1"
        )
    });
    assert!(path.is_file(), "SPILLWAY_TANSU={} is not a file", path.display());
    Some(path)
}

/// A tansu broker process, killed on drop. `storage` is relative to `dir` (tansu resolves
/// `sqlite://` paths against its working directory).
#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
    binary: PathBuf,
    storage: String,
    dir: PathBuf,
}

impl Broker {
    /// Starts `binary` on `port` with `storage` (`memory://tansu/`, `sqlite://…`) in the
    /// temporary directory, and waits until it listens.
    pub fn start(binary: &Path, port: u16, storage: String) -> Broker {
        Broker::start_in(binary, port, storage, std::env::temp_dir())
    }

    /// [`Broker::start`] in `dir`, against which tansu resolves a `sqlite://` path.
    pub fn start_in(binary: &Path, port: u16, storage: String, dir: PathBuf) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .current_dir(&dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &storage])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(30), &format!("tansu to start listening on {port}"), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Broker { child, port, binary: binary.to_owned(), storage, dir }
    }

    /// The broker's bootstrap address, `127.0.0.1:<port>`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the broker and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        *self = Broker::start_in(
            &self.binary.clone(),
            self.port,
            self.storage.clone(),
            self.dir.clone(),
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
