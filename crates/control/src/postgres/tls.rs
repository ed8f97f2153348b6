//! TLS to PostgreSQL, as libpq's URL parameters ask for it.
//!
//! The driver knows `sslmode` `disable`, `prefer` and `require` only, and refuses every other
//! parameter, while the URLs users copy from their database's console say `verify-full` and
//! `sslrootcert=/path/ca.pem`. [`parse`] takes libpq's meaning of both out of the URL and hands
//! the driver the rest:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow`, `prefer` (the default) | when the server offers it | not checked; with `sslrootcert`, its chain |
//! | `require` | always | not checked; with `sslrootcert`, its chain |
//! | `verify-ca` | always | its chain to `sslrootcert` (required) |
//! | `verify-full` | always | its chain to `sslrootcert` (else the system's roots), and its name |
//!
//! `sslrootcert` is a PEM file of trust anchors, or `system` for the system's own, which means
//! `verify-full` (and refuses any other mode), as in libpq. (`allow`, which libpq tries without
//! TLS first, is `prefer` here: TLS first.) The client's own certificate (`sslcert`, `sslkey`)
//! is refused by name: it is not supported. Only the URL form is taken, not `key=value` pairs.
//!
//! Without a checked certificate TLS still keeps the traffic from anyone who only listens, and
//! SCRAM's channel binding (`channel_binding=require`) keeps a man in the middle from logging
//! in with the password.

use std::path::Path;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Not at all (`prefer`, `require`): encryption only.
    Nothing,
    /// Its chain to a trust anchor (`verify-ca`).
    Chain,
    /// Its chain and its name (`verify-full`).
    Full,
}

/// What a URL asks of TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tls {
    pub(crate) check: Check,
    /// `sslrootcert`: a PEM file, or `None` for the system's roots.
    pub(crate) roots: Option<String>,
}

/// The driver's settings and the TLS a connection URL asks for. The reason never quotes the
/// URL (it may hold a password).
pub(crate) fn parse(url: &str) -> Result<(tokio_postgres::Config, Tls), String> {
    const INVALID: &str = "not a valid postgres:// URL (user, host, port, database)";
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(INVALID.to_owned());
    }
    let (driver_url, sslmode, roots) = split(url)?;
    let mut config: tokio_postgres::Config = driver_url.parse().map_err(|_| INVALID.to_owned())?;
    let roots = roots.filter(|r| !r.is_empty());
    let (mode, check) = match (sslmode.as_deref(), roots.as_deref()) {
        // libpq: the system's roots are for `verify-full` only, and make it the default.
        (None | Some("verify-full"), Some("system")) => (SslMode::Require, Check::Full),
        (Some(_), Some("system")) => {
            return Err("sslrootcert=system needs sslmode=verify-full (or no sslmode)".to_owned())
        }
        (Some("disable"), _) => (SslMode::Disable, Check::Nothing),
        // libpq: a root certificate file makes every mode that uses TLS check the chain.
        (None | Some("prefer" | "allow"), None) => (SslMode::Prefer, Check::Nothing),
        (None | Some("prefer" | "allow"), Some(_)) => (SslMode::Prefer, Check::Chain),
        (Some("require"), None) => (SslMode::Require, Check::Nothing),
        (Some("require" | "verify-ca"), Some(_)) => (SslMode::Require, Check::Chain),
        (Some("verify-ca"), None) => {
            // The system's roots would vouch for anyone with a public certificate.
            return Err("sslmode=verify-ca needs sslrootcert, a PEM file of the certificate \
                 authorities to trust"
                .to_owned());
        }
        (Some("verify-full"), _) => (SslMode::Require, Check::Full),
        (Some(_), _) => {
            return Err("sslmode must be disable, allow, prefer, require, verify-ca or \
                 verify-full"
                .to_owned())
        }
    };
    let roots = roots.filter(|r| r != "system");
    config.ssl_mode(mode);
    Ok((config, Tls { check, roots }))
}

/// The URL without `sslmode` and `sslrootcert` (which it returns, decoded), or why not.
fn split(url: &str) -> Result<(String, Option<String>, Option<String>), String> {
    // The query starts at the first `?` after the credentials, which end at the first `@` as
    // the driver reads them (a password may hold a `?`).
    let authority = url.find('@').map_or(0, |at| at + 1);
    let Some(start) = url[authority..].find('?').map(|q| authority + q) else {
        return Ok((url.to_owned(), None, None));
    };
    let (mut sslmode, mut roots, mut kept) = (None, None, Vec::new());
    for pair in url[start + 1..].split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // Keys are decoded as the driver decodes them: `ssl%6Dode` is `sslmode`.
        let key = percent_decode_str(key).decode_utf8_lossy();
        let decoded = || {
            percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("{key} is not UTF-8 once decoded"))
        };
        match key.as_ref() {
            "sslmode" => sslmode = Some(decoded()?),
            "sslrootcert" => roots = Some(decoded()?),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" | "sslsni" => {
                return Err(format!("{key} is not supported (only sslmode and sslrootcert)"));
            }
            _ => kept.push(pair),
        }
    }
    let mut driver_url = url[..start].to_owned();
    if !kept.is_empty() {
        driver_url.push('?');
        driver_url.push_str(&kept.join("&"));
    }
    Ok((driver_url, sslmode, roots))
}

impl Tls {
    /// The connector for the driver: a rustls client that checks what [`Check`] says. Reads
    /// `sslrootcert` (or the system's roots) when the certificate is checked; the error names
    /// the file, never the URL.
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match self.check {
            Check::Full => self.chain(&provider)?,
            Check::Chain => Arc::new(Relaxed { chain: Some(self.chain(&provider)?), algorithms }),
            Check::Nothing => Arc::new(Relaxed { chain: None, algorithms }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    /// The checker of the certificate's chain to `sslrootcert` (or the system's roots) and of
    /// its name.
    fn chain(&self, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>, String> {
        let roots = match &self.roots {
            Some(path) => roots_from_file(Path::new(path))?,
            None => system_roots()?,
        };
        WebPkiServerVerifier::builder_with_provider(roots.into(), Arc::clone(provider))
            .build()
            .map_err(|e| format!("the trust anchors: {e}"))
    }
}

/// The certificates of a PEM file, as trust anchors.
fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("sslrootcert {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("sslrootcert {shown}: no certificate in it"));
    }
    Ok(roots)
}

/// The system's trust anchors.
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err("no system trust anchors found; name a PEM file with sslrootcert".to_owned());
    }
    Ok(roots)
}

/// Fewer checks than `verify-full`: the chain only (`verify-ca`, and a root certificate with
/// another mode) or nothing (`prefer`, `require`). The handshake's signatures are checked
/// either way: the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct Relaxed {
    /// The chain's checker, `None` for no check of the certificate.
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        // webpki checks the chain first and the name last: a wrong name means a good chain.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Whether a driver error from connecting is TLS refusing the connection: the certificate was
/// not accepted, or TLS is required and the server has none. That does not heal by waiting,
/// unlike a reset during the handshake.
pub(crate) fn refused(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let inner = cause.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
        let tls = |e: &(dyn std::error::Error + Send + Sync + 'static)| {
            // The certificate or the handshake refused, or the host is no name TLS can check.
            e.is::<rustls::Error>() || e.is::<rustls::pki_types::InvalidDnsNameError>()
        };
        if cause.is::<rustls::Error>() || inner.is_some_and(tls) {
            return true;
        }
        // The driver's own words when the server answers the TLS request with a no.
        if cause.to_string() == "server does not support TLS" {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mode the driver gets, and the rest.
    fn tls(url: &str) -> (SslMode, Tls) {
        let (config, tls) = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (config.get_ssl_mode(), tls)
    }

    #[test]
    fn libpq_modes_and_root_certificates_are_understood() {
        let base = "postgres://u:p@db.internal:5432/spillway";
        let (mode, t) = tls(base);
        assert_eq!((mode, t.check, t.roots), (SslMode::Prefer, Check::Nothing, None));
        for (query, mode, check) in [
            ("?sslmode=disable", SslMode::Disable, Check::Nothing),
            ("?sslmode=allow", SslMode::Prefer, Check::Nothing),
            ("?sslmode=require", SslMode::Require, Check::Nothing),
            ("?sslmode=verify-full", SslMode::Require, Check::Full),
            ("?sslmode=verify-ca&sslrootcert=/ca.pem", SslMode::Require, Check::Chain),
            ("?sslmode=require&sslrootcert=%2Fetc%2Fca.pem", SslMode::Require, Check::Chain),
            ("?sslrootcert=/ca.pem", SslMode::Prefer, Check::Chain),
            ("?sslrootcert=system", SslMode::Require, Check::Full),
            ("?sslrootcert=system&sslmode=verify-full", SslMode::Require, Check::Full),
            ("?ssl%6Dode=require", SslMode::Require, Check::Nothing),
        ] {
            let (driver, t) = tls(&format!("{base}{query}"));
            assert_eq!((driver, t.check), (mode, check), "{query}");
        }
        assert_eq!(tls(&format!("{base}?sslrootcert=system")).1.roots, None, "the system's");
        let (_, t) = tls(&format!("{base}?sslmode=verify-ca&sslrootcert=/etc/a%20b.pem"));
        assert_eq!(t.roots.as_deref(), Some("/etc/a b.pem"));
    }

    #[test]
    fn the_query_is_found_where_the_driver_finds_it() {
        // The credentials end at the first `@`; one in the query is the query's.
        let (config, t) =
            parse("postgres://u:p@h/d?sslmode=require&application_name=me@corp").unwrap();
        assert_eq!((config.get_ssl_mode(), t.check), (SslMode::Require, Check::Nothing));
        assert_eq!(config.get_application_name(), Some("me@corp"));
        let (_, t) = parse("postgres://u:p@h/d?sslmode=verify-ca&sslrootcert=/a@b.pem").unwrap();
        assert_eq!(t.roots.as_deref(), Some("/a@b.pem"));
        // Only the URL form: key=value pairs would keep their own sslmode from the driver.
        let e = parse("host=h user=u password=hunter2 sslmode=require").unwrap_err();
        assert!(e.contains("not a valid postgres:// URL") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn the_driver_gets_the_other_parameters_and_the_mode() {
        let url = "postgres://u:p?x@h:1/d?connect_timeout=7&sslmode=verify-full&application_name=a";
        let (config, t) = parse(url).unwrap();
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert_eq!(config.get_connect_timeout(), Some(&std::time::Duration::from_secs(7)));
        assert_eq!(config.get_application_name(), Some("a"));
        assert_eq!(config.get_password(), Some(&b"p?x"[..]));
        assert_eq!(t.check, Check::Full);
    }

    #[test]
    fn what_is_not_understood_is_refused_by_name_without_the_url() {
        let secret = "hunter2-secret";
        for (query, says) in [
            ("?sslmode=verify-maybe", "sslmode must be"),
            ("?sslcert=/c.pem", "sslcert is not supported"),
            ("?sslkey=/k.pem", "sslkey is not supported"),
            ("?nonsense=1", "not a valid postgres:// URL"),
            ("?sslmode=verify-ca", "verify-ca needs sslrootcert"),
            ("?sslmode=require&sslrootcert=system", "sslrootcert=system needs sslmode=verify-full"),
        ] {
            let e = parse(&format!("postgres://u:{secret}@h/d{query}")).unwrap_err();
            assert!(e.contains(says), "{query}: {e}");
            assert!(!e.contains(secret), "{e}");
        }
    }

    #[test]
    fn a_root_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let t = Tls { check: Check::Full, roots: Some(empty.display().to_string()) };
        let e = t.connector().err().expect("no trust anchors, no connector");
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
        let missing = Tls { roots: Some("/nonexistent/ca.pem".to_owned()), ..t };
        let e = missing.connector().err().unwrap();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
