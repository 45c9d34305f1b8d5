//! TLS on the listener (issue 17): the certificate and key files, read and checked at start,
//! served through a resolver whose pair is swapped on SIGHUP or when either file changes, so
//! that a renewal needs no restart. Handshakes already done keep the pair they used; a new
//! pair that does not load (unreadable, not PEM, key not matching the certificate) is logged
//! loudly and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are looked at for a change. A renewal is picked up
/// within this; stat-ing two files this often costs nothing.
pub const CERT_POLL_INTERVAL_MS: u64 = 2_000;

/// ALPN protocols offered, in the server's order of preference: HTTP/2 for gRPC and modern
/// clients, HTTP/1.1 for the rest (gRPC-Web, Connect over HTTP/1.1, browsers without h2).
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The certificate chain and private key files of the listener (PEM), as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate file {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("TLS key file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS key file {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
}

/// What identifies the certificate being served, for the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    /// Hexadecimal, colon-separated, as `openssl x509 -serial` shows it (without colons there).
    pub serial: String,
    /// Seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// The ring provider, named rather than taken from the process default, so that the listener
/// does not depend on who installed what (tests run servers without `allot::main`).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the pair: certificates (leaf first), a private key, and that the key is
/// the leaf's.
pub fn load_pair(settings: &TlsSettings) -> Result<(CertifiedKey, CertificateInfo), TlsError> {
    let cert_path = settings.cert.display().to_string();
    let key_path = settings.key.display().to_string();
    let cert_pem = read(&settings.cert).map_err(|reason| TlsError::Cert {
        path: cert_path.clone(),
        reason,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert {
            path: cert_path.clone(),
            reason: format!("not a PEM certificate chain ({e})"),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::Cert {
            path: cert_path,
            reason: "holds no certificate (expected -----BEGIN CERTIFICATE-----)".to_owned(),
        });
    };
    let info = describe(leaf).map_err(|reason| TlsError::Cert {
        path: cert_path.clone(),
        reason,
    })?;
    let key_pem = read(&settings.key).map_err(|reason| TlsError::Key {
        path: key_path.clone(),
        reason,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: key_path.clone(),
        reason: format!("holds no PEM private key ({e})"),
    })?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert_path,
            key: key_path.clone(),
            reason: e.to_string(),
        },
        e => TlsError::Key {
            path: key_path,
            reason: format!("unusable private key ({e})"),
        },
    })?;
    Ok((certified, info))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot be read ({e})"))
}

fn describe(leaf: &CertificateDer<'_>) -> Result<CertificateInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string(),
        not_after_unix: cert.validity().not_after.timestamp(),
    })
}

/// Modification times of the two files: a change of either means a reload.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn stamp(settings: &TlsSettings) -> Stamp {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (mtime(&settings.cert), mtime(&settings.key))
}

/// The pair every new handshake is given; swapped whole by [`ReloadingCert::reload`].
#[derive(Debug)]
pub struct ReloadingCert {
    settings: TlsSettings,
    current: RwLock<Arc<CertifiedKey>>,
    info: RwLock<CertificateInfo>,
    stamp: RwLock<Stamp>,
}

impl ReloadingCert {
    /// Loads the pair; an error here stops the start.
    pub fn load(settings: TlsSettings) -> Result<Arc<Self>, TlsError> {
        let stamp = stamp(&settings);
        let (certified, info) = load_pair(&settings)?;
        let me = Arc::new(ReloadingCert {
            settings,
            current: RwLock::new(Arc::new(certified)),
            info: RwLock::new(info.clone()),
            stamp: RwLock::new(stamp),
        });
        me.announce(&info, "serving TLS certificate");
        Ok(me)
    }

    /// The certificate being served.
    pub fn info(&self) -> CertificateInfo {
        match self.info.read() {
            Ok(info) => info.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again and serves the new pair if it loads; otherwise keeps the old one
    /// and answers why.
    pub fn reload(&self) -> Result<CertificateInfo, TlsError> {
        let (certified, info) = load_pair(&self.settings)?;
        let certified = Arc::new(certified);
        match self.current.write() {
            Ok(mut current) => *current = certified,
            Err(poisoned) => *poisoned.into_inner() = certified,
        }
        match self.info.write() {
            Ok(mut current) => *current = info.clone(),
            Err(poisoned) => *poisoned.into_inner() = info.clone(),
        }
        self.announce(&info, "serving reloaded TLS certificate");
        Ok(info)
    }

    /// Reloads when either file changed since the last look. A pair that fails is reported
    /// once per change, not at every look.
    fn reload_if_changed(&self) {
        let now = stamp(&self.settings);
        let changed = match self.stamp.write() {
            Ok(mut seen) => std::mem::replace(&mut *seen, now) != now,
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), now) != now,
        };
        if changed {
            self.reload_or_keep("a certificate file changed");
        }
    }

    fn reload_or_keep(&self, why: &str) {
        if let Err(e) = self.reload() {
            let kept = self.info();
            tracing::error!(
                error = %e,
                trigger = why,
                kept_subject = %kept.subject,
                kept_serial = %kept.serial,
                "TLS certificate NOT reloaded; still serving the previous one"
            );
        }
    }

    fn announce(&self, info: &CertificateInfo, message: &str) {
        tracing::info!(
            subject = %info.subject,
            serial = %info.serial,
            not_after = %crate::time::rfc3339(allot_domain::UnixMillis::from_millis(
                info.not_after_unix.saturating_mul(1000)
            )),
            cert = %self.settings.cert.display(),
            "{message}"
        );
        // Alert on this well before it comes (a renewal that did not happen).
        metrics::gauge!("allot_tls_certificate_not_after_timestamp_seconds")
            .set(info.not_after_unix as f64);
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

/// The acceptor of the listener: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, no client
/// certificates.
pub fn acceptor(certs: Arc<ReloadingCert>) -> Result<TlsAcceptor, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Cert {
            path: certs.settings.cert.display().to_string(),
            reason: format!("no usable TLS protocol version ({e})"),
        })?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Whether ALPN chose HTTP/2. Without ALPN a TLS client speaks HTTP/1.1 (RFC 9113 §3.2: HTTP/2
/// over TLS is negotiated with ALPN, never assumed).
pub(crate) fn negotiated_h2(alpn: Option<&[u8]>) -> bool {
    alpn == Some(ALPN_H2)
}

/// Reloads the pair on SIGHUP and when either file changes (looked at every
/// [`CERT_POLL_INTERVAL_MS`]), until `stopping` is raised.
pub(crate) async fn watch(certs: Arc<ReloadingCert>, mut stopping: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(CERT_POLL_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        tokio::select! {
            _ = tick.tick() => {
                let certs = certs.clone();
                // File reads off the async workers.
                let _ = tokio::task::spawn_blocking(move || certs.reload_if_changed()).await;
            }
            () = hup => {
                let certs = certs.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    // The stamp too, so the change that came with the signal is not reloaded
                    // a second time at the next look.
                    if let Ok(mut seen) = certs.stamp.write() {
                        *seen = stamp(&certs.settings);
                    }
                    certs.reload_or_keep("SIGHUP");
                })
                .await;
            }
            () = async {
                let _ = stopping.wait_for(|s| *s).await;
            } => return,
        }
    }
}
