//! One throwaway PostgreSQL cluster for the store tests: Debian's server binaries, a fresh data
//! directory in a temp dir, a password-only superuser, served on 127.0.0.1 at a free port and
//! never touching a system cluster, its port 5432 or its socket directory.

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{free_port, wait_until};

/// The superuser `initdb` creates, and the database [`Postgres::url`] names.
const USER: &str = "spillway";
/// How many fresh ports a start tries when the one it picked was taken in between.
const PORT_TRIES: usize = 5;
/// How long `pg_ctl` waits for a start or a stop, and a stop for the port to refuse.
const WAIT_SECS: u64 = 60;
/// Where Debian's `postgresql-NN` packages put each major version's `bin` directory.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";
/// Server settings for a test: loopback only, no durability work (a test cluster is thrown
/// away, and fsync per commit would dominate the store tests), room for many pools at once.
const SERVER_SETTINGS: &str = "-c listen_addresses=127.0.0.1 -c fsync=off \
     -c synchronous_commit=off -c full_page_writes=off -c max_connections=200";

/// A throwaway PostgreSQL cluster: started by [`Postgres::start`], stopped (`-m immediate`)
/// and its temp dir removed on drop. Several tests may share one and stay isolated, each in a
/// database of its own from [`Postgres::create_database`].
pub struct Postgres {
    /// The directory holding `initdb`, `pg_ctl`, `createdb` and `psql`.
    bin: PathBuf,
    /// The temp dir: the data directory `data`, the server log and the Unix socket.
    dir: PathBuf,
    /// The unprivileged user the server runs as when the tests run as root (`initdb` refuses
    /// root); `None` runs it as the tests' own user.
    run_as: Option<String>,
    password: String,
    port: u16,
    running: bool,
    /// Whether TCP takes TLS only ([`Postgres::start_tls`]).
    tls: bool,
}

impl Postgres {
    /// Creates and starts a cluster with a superuser `spillway` (random password) and a
    /// database `spillway` it owns. `None` only when the run opts out with
    /// `SPILLWAY_SKIP_POSTGRES=1` (the skip is printed): missing binaries never pass silently.
    ///
    /// # Panics
    ///
    /// When no PostgreSQL binaries are found (with how to get them), or when the cluster does
    /// not come up (with the failing step's output and the server log).
    pub fn start() -> Option<Postgres> {
        Postgres::start_with(None)
    }

    /// [`Postgres::start`] for a server that takes TCP connections over TLS only (`hostssl`;
    /// plain ones are rejected), with the certificate chain and key given in PEM.
    ///
    /// # Panics
    ///
    /// As [`Postgres::start`].
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Option<Postgres> {
        Postgres::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Option<Postgres> {
        if std::env::var("SPILLWAY_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: SPILLWAY_SKIP_POSTGRES=1, no PostgreSQL test runs");
            return None;
        }
        let bin = bin_dir();
        let run_as = (effective_uid() == 0).then(unprivileged_user);
        let dir = make_temp_dir(run_as.as_deref());
        let mut postgres = Postgres {
            bin,
            dir,
            run_as,
            password: random_hex(16),
            port: 0,
            running: false,
            tls: tls.is_some(),
        };
        postgres.init();
        if let Some((cert, key)) = tls {
            postgres.require_tls(cert, key);
        }
        postgres.start_on_a_free_port();
        postgres.create(USER);
        Some(postgres)
    }

    /// `postgres://spillway:<password>@127.0.0.1:<port>/spillway`.
    pub fn url(&self) -> String {
        self.url_of(USER)
    }

    /// The superuser's password (random per cluster).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The loopback port the server listens on; the same after [`Postgres::start_again`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the database `name` (lower-case letters, digits and `_`, starting with a
    /// letter), owned by the superuser, and returns its URL.
    ///
    /// # Panics
    ///
    /// When `name` is not such a name or `createdb` fails (it exists already, say).
    pub fn create_database(&self, name: &str) -> String {
        self.create(name);
        self.url_of(name)
    }

    /// Runs `sql` with `psql` against the database `url` names (which may carry a password of
    /// its own), unaligned and without headers. `Ok` is the trimmed output; `Err` is `psql`'s
    /// error output, from a refused connection or a failing statement.
    pub fn psql(&self, url: &str, sql: &str) -> Result<String, String> {
        let output = self
            .client("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.join("psql").display()));
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// Stops the server with a fast shutdown (sessions are ended, the data is kept) and waits
    /// until its port refuses connections. Does nothing when it is stopped already.
    ///
    /// # Panics
    ///
    /// When the server does not stop, or its port still accepts afterwards.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let data = self.data();
        let stopped = self.run_server(
            "pg_ctl stop",
            self.server("pg_ctl")
                .args(["stop", "-w", "-t", &WAIT_SECS.to_string(), "-m", "fast", "-D"])
                .arg(&data),
        );
        if let Err(e) = stopped {
            panic!("{e}\nserver log:\n{}", self.log());
        }
        self.running = false;
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(WAIT_SECS), || !accepts(port)),
            "PostgreSQL on port {port} still accepts connections after its stop"
        );
    }

    /// Starts the stopped server again, on the same data and the same port, and waits until
    /// it accepts connections. Does nothing when it is running.
    ///
    /// # Panics
    ///
    /// When it does not start (its port taken meanwhile, say), with the server log.
    pub fn start_again(&mut self) {
        if self.running {
            return;
        }
        if let Err(e) = self.pg_ctl_start() {
            panic!("{e}\nserver log:\n{}", self.log());
        }
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(WAIT_SECS), || accepts(port)),
            "PostgreSQL on port {port} does not accept connections after its start"
        );
    }

    /// The server log so far, for a failure message.
    pub fn log(&self) -> String {
        let mut log = Vec::new();
        match std::fs::File::open(self.log_path()).and_then(|mut f| f.read_to_end(&mut log)) {
            Ok(_) => String::from_utf8_lossy(&log).into_owned(),
            Err(e) => format!("(no server log at {}: {e})", self.log_path().display()),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://{USER}:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    /// `initdb` with the superuser's password read from a file that is removed right after,
    /// so the password is on no command line.
    fn init(&self) {
        let pwfile = self.dir.join("pwfile");
        std::fs::write(&pwfile, &self.password).expect("writing the initdb password file");
        hand_over(&pwfile, self.run_as.as_deref());
        let mut pwfile_arg = std::ffi::OsString::from("--pwfile=");
        pwfile_arg.push(&pwfile);
        let initialised = self.run_server(
            "initdb",
            self.server("initdb")
                .args(["--no-sync", "-E", "UTF8", "--locale=C", "--auth=scram-sha-256"])
                .args(["-U", USER])
                .arg(pwfile_arg)
                .arg("-D")
                .arg(self.data()),
        );
        let _ = std::fs::remove_file(&pwfile);
        if let Err(e) = initialised {
            panic!("{e}");
        }
    }

    /// Serves TCP over TLS only: the certificate and key in the data directory (the key private
    /// to the server's user, as the server demands), and `pg_hba.conf` taking password logins
    /// over TLS and rejecting them without it. The Unix socket stays for nobody: only `pg_ctl`
    /// looks at it.
    fn require_tls(&self, cert: &str, key: &str) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data();
        for (name, pem) in [("server.crt", cert), ("server.key", key)] {
            let path = data.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("writing {name}: {e}"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("making {name} private: {e}"));
            hand_over(&path, self.run_as.as_deref());
        }
        let hba = "local all all scram-sha-256\n\
                   hostssl all all 127.0.0.1/32 scram-sha-256\n\
                   hostnossl all all 127.0.0.1/32 reject\n";
        std::fs::write(data.join("pg_hba.conf"), hba).expect("writing pg_hba.conf");
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("opening postgresql.conf");
        std::io::Write::write_all(&mut conf, b"\nssl = on\n").expect("turning TLS on");
    }

    /// Starts on a fresh free port, and on another one when a different process took that
    /// port between [`free_port`] releasing it and the server binding it.
    fn start_on_a_free_port(&mut self) {
        for _ in 0..PORT_TRIES {
            self.port = free_port();
            let log_before = self.log().len();
            match self.pg_ctl_start() {
                Ok(()) => return,
                Err(e) => {
                    let log = self.log();
                    if !log.get(log_before..).unwrap_or(&log).contains("Address already in use") {
                        panic!("{e}\nserver log:\n{log}");
                    }
                }
            }
        }
        panic!("PostgreSQL found no free port in {PORT_TRIES} tries\nserver log:\n{}", self.log());
    }

    fn pg_ctl_start(&mut self) -> Result<(), String> {
        // pg_ctl passes `-o` through a shell: quote the socket directory for it.
        let socket_dir = self.dir.to_str().filter(|d| !d.contains('\''));
        let socket_dir = socket_dir.expect("a temp dir path without a quote, in UTF-8");
        let options = format!("-p {} -k '{socket_dir}' {SERVER_SETTINGS}", self.port);
        self.run_server(
            "pg_ctl start",
            self.server("pg_ctl")
                .args(["start", "-w", "-t", &WAIT_SECS.to_string(), "-D"])
                .arg(self.data())
                .arg("-l")
                .arg(self.log_path())
                .args(["-o", &options]),
        )?;
        self.running = true;
        Ok(())
    }

    fn create(&self, name: &str) {
        assert!(plain_name(name), "{name:?} is not a database name a test may create");
        let output = self
            .client("createdb")
            .args(["-O", USER, name])
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.join("createdb").display()));
        assert!(
            output.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    /// A server-side program (`initdb`, `pg_ctl`), run as the unprivileged user when the
    /// tests run as root.
    fn server(&self, program: &str) -> Command {
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(self.bin.join(program));
                command
            }
            None => Command::new(self.bin.join(program)),
        };
        // Where the unprivileged user may be: the tests' working directory may be closed to it.
        command.current_dir(&self.dir);
        without_pg_environment(&mut command);
        command
    }

    /// A client program (`createdb`, `psql`) connecting to this cluster as the superuser, the
    /// password in its environment.
    fn client(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        without_pg_environment(&mut command);
        command
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", USER)
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10");
        if self.tls {
            // TLS, the certificate unchecked: a root certificate in the runner's home
            // (`~/.postgresql/root.crt`) would otherwise be checked against it.
            command.env("PGSSLMODE", "require").env("PGSSLROOTCERT", "/nonexistent");
        }
        command
    }

    /// Runs `command` to its end; `Err` names the step and carries its output.
    fn run_server(&self, step: &str, command: &mut Command) -> Result<(), String> {
        let output = command.output().map_err(|e| format!("running {step}: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "{step} for the test PostgreSQL in {} failed ({}):\n{}{}",
            self.dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("bin", &self.bin)
            .field("dir", &self.dir)
            .field("run_as", &self.run_as)
            .field("port", &self.port)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            // Best effort: a server that outlives this (pg_ctl gone, say) shuts itself down
            // once it finds its data directory's lock file removed with the temp dir.
            let data = self.data();
            let _ = self.run_server(
                "pg_ctl stop",
                self.server("pg_ctl").args(["stop", "-w", "-m", "immediate", "-D"]).arg(&data),
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory with the PostgreSQL binaries: `SPILLWAY_POSTGRES_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn bin_dir() -> PathBuf {
    const HOW: &str = "run ./scripts/test (it installs Debian's postgresql), install it with \
        `apt-get install postgresql`, point SPILLWAY_POSTGRES_BIN at a directory with initdb, \
        pg_ctl, createdb and psql, or opt out with SPILLWAY_SKIP_POSTGRES=1";
    if let Some(bin) = std::env::var_os("SPILLWAY_POSTGRES_BIN").map(PathBuf::from) {
        assert!(
            bin.join("initdb").is_file(),
            "SPILLWAY_POSTGRES_BIN={} has no initdb: {HOW}",
            bin.display()
        );
        return bin;
    }
    let versions = std::fs::read_dir(DEBIAN_LIB).into_iter().flatten().flatten();
    versions
        .filter_map(|entry| {
            let version = version_key(&entry.file_name())?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("no PostgreSQL binaries in {DEBIAN_LIB}/*/bin: {HOW}"))
}

/// Whether `name` is a database name that needs no quoting anywhere: lower-case letters,
/// digits and `_`, starting with a letter, at most PostgreSQL's 63 bytes.
fn plain_name(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `15` → (15, 0), `9.6` → (9, 6); `None` for a directory that is no version.
fn version_key(name: &OsStr) -> Option<(u32, u32)> {
    let name = name.to_str()?;
    let (major, minor) = name.split_once('.').unwrap_or((name, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The effective uid of this process, from `/proc/self/status` (its second `Uid:` field).
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .expect("an effective uid in /proc/self/status")
}

/// The user a root test run starts the server as: `postgres` (Debian's package creates it),
/// else `nobody`.
fn unprivileged_user() -> String {
    let user = if user_ids("postgres").is_some() { "postgres" } else { "nobody" };
    user.to_owned()
}

/// The uid and gid of `user`, from `id`; `None` when there is no such user.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, user]).output().ok()?;
        output.status.success().then_some(())?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Gives `path` to `user` (when the server runs as one), so the server may write there.
fn hand_over(path: &Path, user: Option<&str>) {
    let Some(user) = user else { return };
    let (uid, gid) = user_ids(user).unwrap_or_else(|| panic!("no uid for user {user}"));
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("giving {} to {user}: {e}", path.display()));
}

/// A new, private directory under the system temp dir, owned by `user` when one is given.
fn make_temp_dir(user: Option<&str>) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("spillway-postgres-{}", random_hex(8)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    hand_over(&dir, user);
    dir
}

/// `bytes` random bytes from the kernel, hex-encoded.
fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .expect("reading /dev/urandom");
    hex::encode(buffer)
}

/// Drops every `PG*` variable (`PGHOST`, `PGPORT`, `PGDATA`, `PGPASSWORD`…) a developer's
/// shell may set, so nothing points a command at another cluster, and fixes the language of
/// the messages a test may match.
fn without_pg_environment(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("PG")) {
            command.env_remove(name);
        }
    }
    command.env("LC_ALL", "C");
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_directory_wins_and_others_are_no_version() {
        let key = |name: &str| version_key(OsStr::new(name));
        assert!(key("15") > key("9.6") && key("16") > key("15"));
        assert_eq!(key("common"), None);
    }

    #[test]
    fn only_plain_database_names_are_created() {
        assert!(plain_name("store_test_1"));
        for bad in ["", "1st", "Upper", "x; drop database spillway", "a-b", &"a".repeat(64)] {
            assert!(!plain_name(bad), "{bad:?}");
        }
    }
}
