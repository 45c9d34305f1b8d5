//! TLS of the connections Allot opens to others (webhook receivers, the SMTP server): what they
//! trust and how a refusal is told, on the same trust and words as the storage's own
//! connections (`allot_storage::tls`), each refusal named by its setting.
//!
//! Trust is the system's store (what curl trusts) plus an optional CA file per connection kind,
//! for receivers and relays with a private CA. Configs are built with the `ring` provider
//! explicitly rather than the process default, so nothing depends on `allot::main` having run
//! (tests build servers in-process).

use std::path::Path;

use allot_storage::tls;
use rustls::pki_types::CertificateDer;

/// The certificates of a CA file (PEM), checked: a file that cannot be read or holds no
/// certificate stops the start with `setting` named, rather than failing every connection.
pub fn ca_certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    tls::read_certs(path).map_err(|e| format!("{setting}: {e}"))
}

/// A client config that trusts the system's store and the certificates of `ca_file`; the
/// peer's certificate is always verified (host name included).
pub fn client_config(
    ca_file: Option<&Path>,
    setting: &str,
) -> Result<rustls::ClientConfig, String> {
    let roots = tls::roots(ca_file).map_err(|e| format!("{setting}: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{setting}: TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The TLS reason of a failed connection, if TLS is what failed, in words with rustls' own
/// name for it, e.g. "certificate not trusted (UnknownIssuer)".
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    tls::find_rustls_error(error).map(tls::refusal_reason)
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
            Some("certificate not valid for this host name (NotValidForName)")
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
        assert!(e.starts_with("smtp_ca_file: "), "{e}");
    }
}
