//! TLS of the connections Allot opens to others (webhook receivers, the SMTP server): what they
//! trust and how a refusal is told.
//!
//! Trust is the system's store (what curl trusts) plus an optional CA file per connection kind,
//! for receivers and relays with a private CA. Configs are built with the `ring` provider
//! explicitly rather than the process default, so nothing depends on `allot::main` having run
//! (tests build servers in-process).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The certificates of a CA file (PEM), checked: a file that cannot be read or holds no
/// certificate stops the start with `setting` named, rather than failing every connection.
pub fn ca_certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("{setting}: {} cannot be read: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{setting}: {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{setting}: {} holds no certificate (PEM `BEGIN CERTIFICATE` blocks)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A client config that trusts the system's store and the certificates of `ca_file`; the
/// peer's certificate is always verified (host name included).
pub fn client_config(
    ca_file: Option<&Path>,
    setting: &str,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        // A broken system store still leaves the CA file; say so once, at start.
        tracing::warn!(error = %e, "reading the system's trusted certificates");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for cert in ca_certificates(path, setting)? {
            roots
                .add(cert)
                .map_err(|e| format!("{setting}: {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{setting}: TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Links of an error's source chain looked at, at most.
const CHAIN_LINKS_MAX: usize = 16;

/// The TLS reason of a failed connection, if TLS is what failed: the rustls error found by
/// walking `error`'s sources (an `io::Error` hides its inner error from `source()`, so its
/// `get_ref` is followed too), told in words with rustls' own name for it, e.g.
/// "certificate not trusted (UnknownIssuer)".
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    // Bounded: a chain is a handful of links; a cycle must not hang a delivery.
    for _ in 0..CHAIN_LINKS_MAX {
        let e = next?;
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    None
}

fn describe(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = error else {
        return format!("TLS handshake failed ({error})");
    };
    let what = match cert {
        C::UnknownIssuer => "certificate not trusted",
        C::Expired | C::ExpiredContext { .. } => "certificate expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet",
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "certificate not valid for this host"
        }
        C::Revoked => "certificate revoked",
        _ => "certificate refused",
    };
    let full = error.to_string();
    let detail = full
        .strip_prefix("invalid peer certificate: ")
        .unwrap_or(&full);
    format!("{what} ({detail})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rustls_reason_is_found_behind_io_errors_and_told_in_words() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert_eq!(
            tls_failure(&io).as_deref(),
            Some("certificate not trusted (UnknownIssuer)")
        );
        let twice = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
        ));
        assert_eq!(
            tls_failure(&twice).as_deref(),
            Some("certificate not valid for this host (NotValidForName)")
        );
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_failure(&plain), None);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_setting() {
        let dir = std::env::temp_dir().join(format!("allot-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty), "webhook_ca_file").unwrap_err();
        assert!(e.starts_with("webhook_ca_file: "), "{e}");
        let missing = dir.join("missing.pem");
        let e = client_config(Some(&missing), "smtp_ca_file").unwrap_err();
        assert!(e.contains("cannot be read"), "{e}");
    }
}
