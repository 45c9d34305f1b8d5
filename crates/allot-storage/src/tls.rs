//! Outbound TLS shared by every connection this process makes to a server of its own (the
//! database, Redis): whom we trust (the system's store plus an optional CA file), who we are
//! (an optional client certificate), and a refusal said in words an operator can act on.
//!
//! Configs are built with the `ring` provider explicitly, so nothing here depends on a process
//! default being installed first (tests build servers without `allot::main`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider of every outbound connection (see the workspace's Cargo.toml).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client certificate and its key, as PEM files: presented when the server asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientIdentity {
    /// Both files or neither: a certificate without its key (or the reverse) is a mistake
    /// said at start, named by `what` ("postgres_client_cert").
    pub fn pair(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        what: &str,
    ) -> Result<Option<ClientIdentity>, String> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(ClientIdentity { cert, key })),
            (Some(_), None) => Err(format!(
                "{what}: a client certificate needs its key too (set both or neither)"
            )),
            (None, Some(_)) => Err(format!(
                "{what}: a client key needs its certificate too (set both or neither)"
            )),
        }
    }

    /// The certificate chain and key, read now: a missing or unreadable file is said at start.
    pub fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let chain = read_certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("client key {}: {e}", self.key.display()))?;
        Ok((chain, key))
    }
}

/// The system's trusted roots plus those of `ca_file`. A CA file that does not read, or holds
/// no certificate, is an error: trusting less than the operator asked would fail later and
/// further from the cause.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    // Certificates of the system store that do not parse are skipped (as curl does).
    let _ = roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        for cert in read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// The system's trusted certificates, read once per process: reading and parsing the store
/// costs milliseconds, and every connection kind (and every test's URL) asks for it.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let native = rustls_native_certs::load_native_certs();
        if !native.errors.is_empty() {
            tracing::debug!(errors = ?native.errors, "some system certificates did not load");
        }
        native.certs
    })
}

/// [`roots`] as PEM text, the CA file's certificates first, for clients that take their roots
/// only that way (the redis crate trusts only the roots it is given once it is given any).
pub fn roots_pem(ca_file: &Path) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let mut pem = Vec::new();
    let mut push = |der: &[u8]| {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    };
    for cert in read_certs(ca_file)? {
        push(&cert);
    }
    for cert in system_roots() {
        // One the redis crate would refuse would make it refuse them all.
        if RootCertStore::empty().add(cert.clone()).is_ok() {
            push(cert);
        }
    }
    Ok(pem)
}

/// Every certificate of a PEM file; none is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate file {}: no certificate in it (PEM expected)",
            path.display()
        ));
    }
    Ok(certs)
}

/// Why a handshake failed, in a few words and the rustls name an operator can look up:
/// "certificate not trusted (UnknownIssuer)".
pub fn refusal_reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "certificate not trusted (UnknownIssuer)".into(),
            CertificateError::NotValidForName => {
                "certificate not valid for this host name (NotValidForName)".into()
            }
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate not valid for this host name (NotValidForName: {expected:?} is \
                 not among {presented:?})"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired (Expired)".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet (NotValidYet)".into()
            }
            CertificateError::Revoked => "certificate revoked (Revoked)".into(),
            other => format!("certificate refused ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the handshake ({alert:?})")
        }
        other => format!("handshake failed ({other})"),
    }
}

/// The rustls error somewhere in `e`'s chain of causes, looking inside I/O errors too (a TLS
/// stream fails with an `io::Error` that wraps it, and `io::Error::source` skips it), and
/// inside shared errors (the redis crate's causes are `Arc<dyn Error>`, whose `source` skips
/// the error itself as well).
pub fn find_rustls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find_rustls_error(inner)
        {
            return Some(found);
        }
        if let Some(shared) = err.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
            && let Some(found) = find_rustls_error(shared.as_ref())
        {
            return Some(found);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_goes_with_its_key() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(ClientIdentity::pair(None, None, "x"), Ok(None));
        assert!(ClientIdentity::pair(p("c.pem"), p("k.pem"), "x").is_ok());
        let err = ClientIdentity::pair(p("c.pem"), None, "postgres_client_cert").unwrap_err();
        assert!(err.contains("postgres_client_cert"), "{err}");
        assert!(ClientIdentity::pair(None, p("k.pem"), "x").is_err());
    }

    #[test]
    fn a_missing_ca_file_is_an_error_naming_it() {
        let err = roots(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn an_untrusted_certificate_is_said_in_words_and_by_name() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            refusal_reason(&e),
            "certificate not trusted (UnknownIssuer)"
        );
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert!(matches!(
            find_rustls_error(&io),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
        let shared: Arc<dyn std::error::Error + Send + Sync> = Arc::new(io);
        assert!(find_rustls_error(&shared).is_some());
    }
}
