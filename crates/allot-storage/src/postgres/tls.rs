//! Where and how to reach PostgreSQL: the URL parsed once, at start, into a typed target whose
//! TLS follows libpq's `sslmode` (`disable`, `prefer` (the default), `require`, `verify-ca`,
//! `verify-full`), with `sslrootcert`, `sslcert` and `sslkey` from the URL or the settings.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and refuses the other libpq
//! parameters, so ours are taken out of the URL before it sees it; the verification they ask
//! for is ours (the rustls configuration built here), tokio-postgres only negotiates.
//!
//! The TLS connector is ours too, over tokio-rustls (about a hundred lines): with
//! tokio-postgres-rustls we would still write the verifiers of `require` (encrypt, no check)
//! and `verify-ca` (the chain, not the name), and its errors could not name the host and port
//! refused; one more crate for what is left is not worth it.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, LoadBalanceHosts, TargetSessionAttrs};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, NoTls, Socket};

use std::time::Duration;

use super::timeouts::{KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_RETRIES, PgTimeouts, Watched};
use crate::StorageError;
use crate::tls::ClientIdentity;

/// libpq's `sslmode`: how hard the connection insists on TLS and what it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Cleartext only.
    Disable,
    /// TLS when the server offers it, cleartext when it does not (never after a failed check).
    Prefer,
    /// TLS or no connection; the certificate is checked only when a root certificate is given.
    Require,
    /// TLS, the certificate's chain checked against the trusted roots.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode {other:?} is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                ));
            }
        })
    }
}

/// The TLS settings (`--postgres-ca-file`, `--postgres-client-cert`, `--postgres-client-key`):
/// defaults for what the URL does not say. A URL parameter wins, as in libpq, where the
/// connection string wins over the environment: the URL is the more specific statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgTlsSettings {
    pub ca_file: Option<PathBuf>,
    pub client: Option<ClientIdentity>,
}

/// How the certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encryption only (`require`/`prefer` without a root certificate, as libpq).
    Nothing,
    /// The chain to a trusted root (`verify-ca`; `require`/`prefer` given a root certificate).
    Chain,
    /// The chain and the host name (`verify-full`).
    ChainAndName,
}

/// A PostgreSQL database to connect to: the connection settings tokio-postgres reads, and the
/// TLS and timeouts this process adds. Cheap to clone; every connection of a store is made
/// from one.
#[derive(Clone)]
pub struct PgTarget {
    /// What connections are made with: the URL's settings and our timeouts.
    config: tokio_postgres::Config,
    /// The URL's settings alone (the TLS mode set), which the timeouts are added to.
    url_config: tokio_postgres::Config,
    mode: SslMode,
    /// `None` with `sslmode=disable`.
    tls: Option<Arc<ClientConfig>>,
    timeouts: PgTimeouts,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: never printed.
        f.debug_struct("PgTarget")
            .field("hosts", &self.hosts())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The URL parameters of libpq that are ours to read (tokio-postgres refuses them).
const TLS_PARAMS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl PgTarget {
    /// Parses `url` (`postgres://user@host:port/db?sslmode=verify-full&sslrootcert=ca.pem`)
    /// and reads the files it and `settings` name: a mode that does not exist, a file that
    /// does not read, a certificate without its key are refused here, at start.
    pub fn parse(url: &str, settings: &PgTlsSettings) -> Result<PgTarget, StorageError> {
        let bad = |m: String| StorageError::Settings(format!("database URL: {m}"));
        let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let (rest, ours) = if is_url {
            split_params(url).map_err(bad)?
        } else {
            (url.to_owned(), Vec::new())
        };
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
            bad(format!(
                "{e}{}",
                if is_url {
                    String::new()
                } else {
                    " (sslmode=verify-ca/verify-full, sslrootcert, sslcert and sslkey are read \
                     from the postgres:// URL form)"
                        .to_owned()
                }
            ))
        })?;
        let param = |name: &str| {
            ours.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mode = match param("sslmode") {
            Some(m) => SslMode::parse(&m).map_err(bad)?,
            None => match config.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => SslMode::Disable,
                tokio_postgres::config::SslMode::Require => SslMode::Require,
                _ => SslMode::Prefer,
            },
        };
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        let root_cert = param("sslrootcert")
            .map(PathBuf::from)
            .or_else(|| settings.ca_file.clone());
        let client = match (param("sslcert"), param("sslkey")) {
            (None, None) => settings.client.clone(),
            (cert, key) => {
                ClientIdentity::pair(cert.map(PathBuf::from), key.map(PathBuf::from), "sslcert")
                    .map_err(bad)?
            }
        };
        let check = match mode {
            SslMode::Disable => None,
            SslMode::Prefer | SslMode::Require if root_cert.is_none() => Some(Check::Nothing),
            SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => Some(Check::Chain),
            SslMode::VerifyFull => Some(Check::ChainAndName),
        };
        let tls = match check {
            None => None,
            Some(check) => Some(Arc::new(
                client_config(check, root_cert, client.as_ref())
                    .map_err(|e| StorageError::Settings(format!("PostgreSQL TLS: {e}")))?,
            )),
        };
        Ok(PgTarget {
            url_config: config.clone(),
            config,
            mode,
            tls,
            timeouts: PgTimeouts::default(),
        }
        .with_timeouts(PgTimeouts::default()))
    }

    /// This target with `timeouts` on every connection made from it.
    pub fn with_timeouts(mut self, timeouts: PgTimeouts) -> PgTarget {
        self.timeouts = timeouts;
        self.config = self.url_config.clone();
        // Read by tokio-postgres where it opens the socket itself (Unix sockets, `hostaddr`).
        self.config.connect_timeout(timeouts.connect);
        self.config.keepalives(true);
        self.config.keepalives_idle(KEEPALIVE_IDLE);
        self.config.keepalives_interval(KEEPALIVE_INTERVAL);
        self.config.keepalives_retries(KEEPALIVE_RETRIES);
        // Zero: the system's default.
        self.config
            .tcp_user_timeout(timeouts.tcp_user.unwrap_or(Duration::ZERO));
        // Ours first: a later `-c` wins, so the URL's own `options` say the last word.
        let ours = timeouts.server_options();
        if !ours.is_empty() {
            let options = match self.url_config.get_options() {
                Some(url) if !url.trim().is_empty() => format!("{ours} {url}"),
                _ => ours,
            };
            self.config.options(options);
        }
        self
    }

    /// This target for migrations (and the sealing at first open): no statement, lock or
    /// answer timeout of ours, which long migrations or another instance's would exceed.
    pub fn for_migrations(&self) -> PgTarget {
        self.clone().with_timeouts(self.timeouts.for_migrations())
    }

    pub fn timeouts(&self) -> PgTimeouts {
        self.timeouts
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// `host:port` of every host the URL names, for messages.
    pub fn hosts(&self) -> Vec<String> {
        let ports = self.config.get_ports();
        self.config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match h {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    #[cfg(unix)]
                    Host::Unix(path) => format!("{}:{port}", path.display()),
                }
            })
            .collect()
    }

    /// Opens one connection; its I/O task runs on the current runtime until the client is
    /// dropped. A certificate refused is `StorageError::TlsRefused`, naming host and reason.
    /// Over TCP the socket is ours (keepalives, `TCP_USER_TIMEOUT`, the answer timeout:
    /// `Watched`), tried host after host as libpq does, each within the connect timeout.
    pub async fn connect(&self) -> Result<Client, StorageError> {
        let mut tcp = Vec::new();
        let ports = self.config.get_ports();
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            match host {
                Host::Tcp(name) => {
                    let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                    tcp.push((name.clone(), port));
                }
                #[cfg(unix)]
                Host::Unix(_) => tcp.clear(),
            }
        }
        let all_tcp = !tcp.is_empty()
            && tcp.len() == self.config.get_hosts().len()
            && self.config.get_hostaddrs().is_empty();
        if !all_tcp {
            return self.connect_by_tokio_postgres().await;
        }
        if self.config.get_load_balance_hosts() == LoadBalanceHosts::Random {
            use rand::seq::SliceRandom as _;
            tcp.shuffle(&mut rand::rng());
        }
        let mut last = None;
        for (host, port) in &tcp {
            match tokio::time::timeout(self.timeouts.connect, self.connect_tcp(host, *port)).await {
                Ok(Ok(client)) => return Ok(client),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(StorageError::Unavailable {
                        fault: crate::Fault::Unreachable,
                        detail: format!(
                            "connecting to {host}:{port}: not connected within {} ms",
                            self.timeouts.connect.as_millis()
                        ),
                    })
                }
            }
        }
        Err(last.expect("at least one host"))
    }

    /// One TCP host: our socket, then TLS (as the mode says) and the startup over it, then
    /// `target_session_attrs` checked as tokio-postgres does.
    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Client, StorageError> {
        let client = self.open_tcp(host, port).await?;
        let attrs = self.config.get_target_session_attrs();
        if attrs != TargetSessionAttrs::Any {
            let read_only: String = client
                .query_one("SHOW transaction_read_only", &[])
                .await?
                .get(0);
            let read_only = read_only == "on";
            if read_only != (attrs == TargetSessionAttrs::ReadOnly) {
                return Err(StorageError::Unavailable {
                    fault: crate::Fault::Unreachable,
                    detail: format!(
                        "{host}:{port} is {} (target_session_attrs)",
                        if read_only { "read-only" } else { "read-write" }
                    ),
                });
            }
        }
        Ok(client)
    }

    async fn open_tcp(&self, host: &str, port: u16) -> Result<Client, StorageError> {
        let unreachable = |e: io::Error| StorageError::Unavailable {
            fault: crate::Fault::Unreachable,
            detail: format!("connecting to {host}:{port}: {e}"),
        };
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;
        let socket = socket2::SockRef::from(&stream);
        let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
        #[cfg(target_os = "linux")]
        let keepalive = keepalive
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_RETRIES);
        socket.set_tcp_keepalive(&keepalive).map_err(unreachable)?;
        #[cfg(target_os = "linux")]
        socket
            .set_tcp_user_timeout(self.timeouts.tcp_user)
            .map_err(unreachable)?;
        let stream = Watched::new(stream, self.timeouts.answer);
        match &self.tls {
            None => {
                let (client, connection) = self
                    .config
                    .connect_raw(stream, NoTls)
                    .await
                    .map_err(refused)?;
                spawn_connection(connection);
                Ok(client)
            }
            Some(tls) => {
                let mut make = MakeRustls {
                    config: tls.clone(),
                    hosts: self.hosts(),
                };
                let connector = MakeTlsConnect::<Socket>::make_tls_connect(&mut make, host)
                    .map_err(|e| StorageError::TlsRefused(e.to_string()))?;
                let (client, connection) = self
                    .config
                    .connect_raw(stream, connector)
                    .await
                    .map_err(refused)?;
                spawn_connection(connection);
                Ok(client)
            }
        }
    }

    /// Unix sockets and `hostaddr`: tokio-postgres opens the socket (with our connect
    /// timeout, keepalives and `TCP_USER_TIMEOUT`, without the answer timeout).
    async fn connect_by_tokio_postgres(&self) -> Result<Client, StorageError> {
        match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(refused)?;
                spawn_connection(connection);
                Ok(client)
            }
            Some(tls) => {
                let connector = MakeRustls {
                    config: tls.clone(),
                    hosts: self.hosts(),
                };
                let (client, connection) = self.config.connect(connector).await.map_err(refused)?;
                spawn_connection(connection);
                Ok(client)
            }
        }
    }
}

fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
}

/// Our refusal, when the handshake failed: tokio-postgres's own message is only "error
/// performing TLS handshake".
fn refused(e: tokio_postgres::Error) -> StorageError {
    let ours = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<HandshakeRefused>());
    match ours {
        Some(r) => StorageError::TlsRefused(r.to_string()),
        None => StorageError::Postgres(e),
    }
}

/// Takes libpq's TLS parameters out of a URL's query: the URL without them, and them decoded.
fn split_params(url: &str) -> Result<(String, Vec<(String, String)>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut ours = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if TLS_PARAMS.contains(&key) {
            ours.push((key.to_owned(), percent_decode(value)?));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, ours))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

fn client_config(
    check: Check,
    root_cert: Option<PathBuf>,
    client: Option<&ClientIdentity>,
) -> Result<ClientConfig, String> {
    let provider = crate::tls::provider();
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(EncryptOnly(provider.clone())),
        Check::Chain | Check::ChainAndName => {
            let roots = crate::tls::roots(root_cert.as_deref())?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("trusted roots: {e}"))?;
            if check == Check::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some(identity) => {
            let (chain, key) = identity.load()?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {}: {e}", identity.cert.display()))
        }
    }
}

/// `sslmode=require` (or `prefer`) without a root certificate: encrypted, the server not
/// authenticated, exactly as libpq. The handshake's signatures are still checked, so the
/// session is with the holder of the certificate's key, whoever that is.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the name is not checked. The
/// web PKI verifier checks the chain (and validity dates) before the name, so a name error
/// means everything else passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
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
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A handshake that failed, said as "TLS to db.example:5432: certificate not trusted
/// (UnknownIssuer)".
#[derive(Debug)]
struct HandshakeRefused {
    target: String,
    reason: String,
}

impl std::fmt::Display for HandshakeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS to {}: {}", self.target, self.reason)
    }
}

impl std::error::Error for HandshakeRefused {}

/// Makes one TLS connector per host tokio-postgres dials.
struct MakeRustls {
    config: Arc<ClientConfig>,
    /// `host:port` of each host, to name the one refused.
    hosts: Vec<String>,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream<Socket>;
    type TlsConnect = RustlsConnect;
    type Error = HandshakeRefused;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, HandshakeRefused> {
        let target = self
            .hosts
            .iter()
            .find(|h| h.rsplit_once(':').is_some_and(|(name, _)| name == domain))
            .cloned()
            .unwrap_or_else(|| domain.to_owned());
        // Not refused here: over a Unix socket the name is empty and the server declines TLS
        // before any name is needed (`prefer`).
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| format!("{domain:?} is not a host name to check ({e})"));
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
            target,
        })
    }
}

struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: Result<ServerName<'static>, String>,
    target: String,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = HandshakeRefused;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, HandshakeRefused>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let RustlsConnect {
                connector,
                name,
                target,
            } = self;
            let name = name.map_err(|reason| HandshakeRefused {
                target: target.clone(),
                reason,
            })?;
            connector
                .connect(name, stream)
                .await
                .map(RustlsStream)
                .map_err(|e| HandshakeRefused {
                    reason: match crate::tls::find_rustls_error(&e) {
                        Some(tls) => crate::tls::refusal_reason(tls),
                        None => format!("handshake failed ({e})"),
                    },
                    target,
                })
        })
    }
}

/// A TLS session with PostgreSQL.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// SCRAM's `tls-server-end-point` binding, so that a password exchange is bound to this
    /// TLS session: a server in the middle (possible under `require`, which checks no
    /// certificate) cannot relay it. None when the certificate's hash is not defined.
    fn channel_binding(&self) -> ChannelBinding {
        self.0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| server_end_point(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

/// RFC 5929's `tls-server-end-point`: the server's certificate hashed with the hash of its
/// signature algorithm, SHA-256 for MD5, SHA-1 and any other. `None` for a certificate that
/// does not parse or is signed with EdDSA (no hash of its own: libpq has none either).
fn server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest as _;
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (tag, certificate, _) = der(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _tbs, rest) = der(certificate)?;
    let (tag, algorithm, _) = der(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der(algorithm)?;
    if tag != 0x06 {
        return None;
    }
    const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    const ECDSA_WITH_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    const ECDSA_WITH_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    const ED448: &[u8] = &[0x2b, 0x65, 0x71];
    Some(match oid {
        SHA384_WITH_RSA | ECDSA_WITH_SHA384 => sha2::Sha384::digest(cert).to_vec(),
        SHA512_WITH_RSA | ECDSA_WITH_SHA512 => sha2::Sha512::digest(cert).to_vec(),
        ED25519 | ED448 => return None,
        _ => sha2::Sha256::digest(cert).to_vec(),
    })
}

/// One DER element: its tag, its content and what follows it (definite lengths only, as DER).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<PgTarget, StorageError> {
        PgTarget::parse(url, &PgTlsSettings::default())
    }

    #[test]
    fn libpq_parameters_are_taken_out_of_the_url_and_the_rest_kept() {
        let (rest, ours) = split_params(
            "postgres://u@h:5/db?sslmode=verify-full&application_name=a&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h:5/db?application_name=a");
        assert_eq!(
            ours,
            vec![
                ("sslmode".to_owned(), "verify-full".to_owned()),
                ("sslrootcert".to_owned(), "/tmp/ca.pem".to_owned()),
            ]
        );
        assert_eq!(
            split_params("postgres://u@h/db?sslmode=disable").unwrap().0,
            "postgres://u@h/db"
        );
    }

    #[test]
    fn sslmode_is_read_as_libpq_with_prefer_by_default() {
        assert_eq!(target("postgres://u@h/db").unwrap().mode(), SslMode::Prefer);
        for (s, m) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
        ] {
            assert_eq!(
                target(&format!("postgres://u@h/db?sslmode={s}"))
                    .unwrap()
                    .mode(),
                m
            );
        }
        assert_eq!(
            target("host=h user=u sslmode=require").unwrap().mode(),
            SslMode::Require
        );
        let err = target("postgres://u@h/db?sslmode=verify-everything")
            .unwrap_err()
            .to_string();
        assert!(err.contains("verify-everything"), "{err}");
    }

    #[test]
    fn a_root_certificate_that_does_not_read_is_refused_at_parse() {
        let err = target("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent.pem"), "{err}");
        let err = target("postgres://u@h/db?sslcert=/c.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key"), "{err}");
    }

    #[test]
    fn the_channel_binding_is_the_certificate_hashed_as_it_was_signed() {
        use rustls_pki_types::pem::PemObject as _;
        use sha2::Digest as _;
        let ca = allot_testkit::TestCa::new("binding CA");
        let server = ca.server_cert("server", &["localhost"]);
        let der = CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap();
        // The test CA signs with ECDSA P-256 and SHA-256.
        assert_eq!(
            server_end_point(&der),
            Some(sha2::Sha256::digest(&der).to_vec())
        );
        assert_eq!(server_end_point(b"not a certificate"), None);
        assert_eq!(server_end_point(&der[..der.len() / 2]), None);
    }

    #[test]
    fn the_timeouts_go_in_the_startup_options_before_the_urls_own() {
        let ours = "-c statement_timeout=30000 -c lock_timeout=20000 \
                    -c idle_in_transaction_session_timeout=30000";
        let t = target("postgres://u@h/db?sslmode=disable&options=-c%20work_mem%3D8MB").unwrap();
        assert_eq!(
            t.config.get_options(),
            Some(format!("{ours} -c work_mem=8MB").as_str())
        );
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(5))
        );
        let migrations = t.for_migrations();
        assert_eq!(migrations.config.get_options(), Some("-c work_mem=8MB"));
        assert_eq!(migrations.timeouts().answer, None);
        let bare = target("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(bare.config.get_options(), Some(ours));
        assert_eq!(bare.for_migrations().config.get_options(), None);
        let shorter = bare.with_timeouts(PgTimeouts {
            statement: Some(Duration::from_millis(1_500)),
            lock: None,
            idle_in_transaction: None,
            ..PgTimeouts::default()
        });
        assert_eq!(
            shorter.config.get_options(),
            Some("-c statement_timeout=1500")
        );
    }

    #[test]
    fn hosts_are_named_with_their_ports() {
        let t = target("postgres://u@db.example:6543/x?sslmode=disable").unwrap();
        assert_eq!(t.hosts(), vec!["db.example:6543".to_owned()]);
        let t = target("postgres://u:secret@h/x?sslmode=disable").unwrap();
        assert!(!format!("{t:?}").contains("secret"));
    }
}
