//! The store over TLS, against a real PostgreSQL that takes TCP connections over TLS only, its
//! certificate issued for `localhost` by a certificate authority made here: the URL's libpq
//! parameters (`sslmode`, `sslrootcert`) decide whether the certificate's chain and name are
//! checked, the pool and the feed both use TLS, and a certificate or server TLS refuses is a
//! refusal with its reason, never an outage to wait out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use control::postgres::{PgConfig, PgStore};
use control::{Secret, StoreError};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use testkit::{wait_until, Postgres};

use crate::{drain, ring, Db};

/// The PEM of a certificate authority named `authority`, and of a server certificate for `names`
/// it issued, with its key.
struct Issued {
    ca: String,
    cert: String,
    key: String,
}

fn issue(authority: &str, names: &[&str]) -> Issued {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, authority);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    Issued { ca: ca.pem(), cert: cert.pem(), key: key.serialize_pem() }
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn config(url: String) -> PgConfig {
    let mut config = PgConfig::new(Secret::new(url), ring());
    config.connect_timeout = Duration::from_secs(5);
    config
}

/// The store at `url`, or the error connecting gave.
async fn connect(url: String) -> Result<PgStore, StoreError> {
    PgStore::connect(config(url)).await
}

/// A refusal (not an outage) whose reason says `says` and never shows the password.
fn assert_refused(result: Result<PgStore, StoreError>, says: &str, password: &str) {
    let e = result.expect_err("refused");
    let shown = e.to_string();
    assert!(!e.is_unavailable(), "a refusal, not an outage: {shown}");
    assert!(matches!(e, StoreError::Database { .. }), "{shown}");
    assert!(shown.contains(says), "{says:?} in {shown}");
    assert!(!shown.contains(password), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_decides_how_the_servers_certificate_is_checked() {
    let issued = issue("Spillway test CA", &["localhost"]);
    let Some(cluster) = Postgres::start_tls(&issued.cert, &issued.key) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &issued.ca);
    let other_ca = write(dir.path(), "other-ca.pem", &issue("Another CA", &["localhost"]).ca);
    let password = cluster.password().to_owned();
    let base = cluster.url();
    let by_name = base.replace("@127.0.0.1:", "@localhost:");
    let with = |url: &str, query: String| format!("{url}?{query}");

    // The chain and the name checked, the pool and the feed over TLS.
    let full = with(&by_name, format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let store = connect(full).await.expect("verify-full against the right CA and name");
    let entry = drain("drn_tls", "pk_tls");
    store.insert_drain(&entry).await.unwrap();
    assert_eq!(store.drain("drn_tls").await.unwrap(), Some(entry));
    let apply = std::sync::Arc::new(|_: &_| {});
    let (health, task) = control::postgres::feed::spawn(store.clone(), apply);
    assert!(wait_until(Duration::from_secs(5), || health.is_up()), "the feed connects over TLS");
    // The pool's session and the feed's, both over TLS as the server sees them.
    let sessions = "select count(*) filter (where ssl), count(*) from pg_stat_ssl \
                    join pg_stat_activity using (pid) where application_name = 'spillway'";
    let counted = cluster.psql(&base, sessions).unwrap();
    let (over_tls, all) = counted.split_once('|').unwrap();
    assert!(all.parse::<u32>().unwrap() >= 2 && over_tls == all, "{counted}");
    task.abort();
    drop(store);

    // The address is not a name the certificate holds: refused by verify-full, taken by
    // verify-ca (and by `require` with a root certificate, as libpq does).
    let by_ip = with(&base, format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    assert_refused(connect(by_ip).await, "not valid for name", &password);
    for mode in ["verify-ca", "require"] {
        let url = with(&base, format!("sslmode={mode}&sslrootcert={}", ca.display()));
        connect(url).await.unwrap_or_else(|e| panic!("{mode} checks the chain only: {e}"));
    }

    // Another authority's certificate is refused wherever the chain is checked, whether the
    // name would have been right or not checked.
    for mode in ["verify-full", "verify-ca", "require", "prefer"] {
        for url in [&by_name, &base] {
            let url = with(url, format!("sslmode={mode}&sslrootcert={}", other_ca.display()));
            assert_refused(connect(url).await, "UnknownIssuer", &password);
        }
    }

    // Without a root certificate, `prefer` (the default) and `require` encrypt unchecked.
    for url in [base.clone(), with(&base, "sslmode=require".to_owned())] {
        connect(url).await.expect("TLS without a check of the certificate");
    }

    // Without TLS the server's rules refuse us.
    let plain = with(&base, "sslmode=disable".to_owned());
    assert_refused(connect(plain).await, "no encryption", &password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_of_a_server_without_it_is_refused() {
    let Some(db) = Db::create("tls_required") else { return };
    let password = db.cluster.password().to_owned();
    let required = format!("{}?sslmode=require", db.url);
    assert_refused(connect(required).await, "server does not support TLS", &password);
    connect(db.url.clone()).await.expect("prefer (the default) goes on without TLS");
}
