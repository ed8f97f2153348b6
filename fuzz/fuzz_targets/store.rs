//! Fuzzes the control plane's store files (`control::store::JsonStore` behind
//! `DrainRegistry` and `InstallationStore`) on any file contents. Properties: loading never
//! panics; a file that does not load is a `Corrupt` error (never an I/O error, never an empty
//! list), and an update on it fails the same way and leaves the file's bytes as they were, with
//! no temporary file behind; a file that loads survives an update that changes nothing: the
//! rewritten file loads to the same entries.
//!
//! Input: one flag byte (bit 0: the drain registry, else the installations), then the file.
//! `scripts/fuzz` seeds it with registry and installation files in the current format.
#![no_main]

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use control::{DrainRegistry, InstallationStore, StoreError};
use libfuzzer_sys::fuzz_target;

/// A scratch directory of this process, on tmpfs when there is one (updates fsync).
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let dir = base.join(format!("spillway-fuzz-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
});

/// The files in the scratch directory other than the store and its lock.
fn strays(store: &Path) -> Vec<PathBuf> {
    let mut lock = store.as_os_str().to_owned();
    lock.push(".lock");
    std::fs::read_dir(&*DIR)
        .expect("the scratch directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p != store && p.as_os_str() != lock)
        .collect()
}

fn check<T: PartialEq + Debug>(
    path: &Path,
    contents: &[u8],
    load: impl Fn() -> Result<Vec<T>, StoreError>,
    update_nothing: impl Fn() -> Result<(), StoreError>,
) {
    match load() {
        Err(StoreError::Corrupt { .. }) => {
            let refused = update_nothing();
            assert!(matches!(refused, Err(StoreError::Corrupt { .. })), "{refused:?}");
            assert_eq!(std::fs::read(path).unwrap(), contents, "a corrupt file is left untouched");
        }
        Err(other) => panic!("any contents load or are corrupt: {other:?}"),
        Ok(entries) => {
            update_nothing().expect("a loadable file takes an update");
            let again = load().expect("a rewritten file loads");
            assert_eq!(entries, again, "an update that changes nothing keeps every entry");
        }
    }
    assert_eq!(strays(path), Vec::<PathBuf>::new(), "no temporary file is left behind");
}

fuzz_target!(|input: &[u8]| {
    let [flags, contents @ ..] = input else { return };
    let path = DIR.join("store.json");
    std::fs::write(&path, contents).expect("the store file is written");
    if flags & 1 != 0 {
        let registry = DrainRegistry::new(&path);
        check(&path, contents, || registry.load(), || registry.update(|_| ()));
    } else {
        let store = InstallationStore::new(&path);
        let update = || store.modify("icfg_none", |_| ()).map(|_| ());
        check(&path, contents, || store.load(), update);
    }
});
