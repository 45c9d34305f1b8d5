//! The tests' own certificate authority: a fresh CA per test, server certificates for the hosts
//! a test names, and client certificates, written as PEM files into a temporary directory, so
//! every TLS test runs against real certificates it made itself (never a fixture that expires).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// A certificate and its private key as PEM files on disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority of one test. Dropping it removes its files.
pub struct TestCa {
    dir: TempDir,
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    ca_file: PathBuf,
    serial: std::sync::atomic::AtomicU32,
}

impl TestCa {
    /// A new CA named `name` (its common name), its certificate at [`TestCa::ca_file`].
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("allot-test-ca-")
            .tempdir()
            .expect("temporary directory for the test CA");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params
            .self_signed(&key)
            .expect("self-signed CA certificate");
        let cert_pem = cert.pem();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &cert_pem).expect("write the CA certificate");
        let issuer = Issuer::new(params, key);
        TestCa {
            dir,
            issuer,
            cert_pem,
            ca_file,
            serial: std::sync::atomic::AtomicU32::new(1),
        }
    }

    /// The CA's certificate (PEM file): what a client is given to trust the servers it signs.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA's certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The directory the CA writes its files into (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `hosts` (DNS names and IP addresses, e.g. `["localhost",
    /// "127.0.0.1"]`), written as `<stem>.pem` and `<stem>-key.pem`.
    pub fn server_cert(&self, stem: &str, hosts: &[&str]) -> CertFiles {
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("subject alternative names");
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("server"),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(stem, params)
    }

    /// A client certificate whose common name is `name` (PostgreSQL's `cert` authentication
    /// takes the user name from it), written as `<stem>.pem` and `<stem>-key.pem`.
    pub fn client_cert(&self, stem: &str, name: &str) -> CertFiles {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(stem, params)
    }

    fn sign(&self, stem: &str, mut params: CertificateParams) -> CertFiles {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.serial_number = Some(u64::from(serial).into());
        let key = KeyPair::generate().expect("certificate key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("certificate signed by the test CA");
        let files = CertFiles {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}-key.pem")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(&files.cert, &files.cert_pem).expect("write the certificate");
        std::fs::write(&files.key, &files.key_pem).expect("write the key");
        // PostgreSQL refuses a key file others can read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600))
                .expect("key file mode 0600");
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_signs_server_and_client_certificates_into_pem_files() {
        let ca = TestCa::new("allot test CA");
        let server = ca.server_cert("server", &["localhost", "127.0.0.1"]);
        let client = ca.client_cert("client", "allot");
        for f in [&server, &client] {
            assert!(
                std::fs::read_to_string(&f.cert)
                    .unwrap()
                    .contains("BEGIN CERTIFICATE")
            );
            assert!(
                std::fs::read_to_string(&f.key)
                    .unwrap()
                    .contains("PRIVATE KEY")
            );
        }
        assert!(ca.ca_pem().contains("BEGIN CERTIFICATE"));
        assert_ne!(server.cert_pem, client.cert_pem);
    }
}
