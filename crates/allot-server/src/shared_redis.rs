//! The shared Redis of MEGADEAL admission: `redis://` or `rediss://` (TLS, verified against the
//! system's roots plus `--redis-ca-file`, with an optional client certificate).

use std::path::PathBuf;
use std::time::Duration;

use allot_storage::tls::ClientIdentity;

/// `--redis-ca-file`, `--redis-client-cert`, `--redis-client-key`: for `rediss://` only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTlsSettings {
    pub ca_file: Option<PathBuf>,
    pub client: Option<ClientIdentity>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("redis: {0}")]
    Url(#[from] redis::RedisError),
    #[error("redis: {0}")]
    Settings(String),
    /// The TLS handshake failed: a wrong certificate is not an outage to wait out.
    #[error("redis: {0}")]
    TlsRefused(String),
}

/// A connection to the shared Redis, made lazily and remade after failures: the server starts
/// even when Redis is down (MEGADEAL requests are refused with 503 until it is back; nothing
/// else depends on it). A URL that does not parse, a TLS setting with a cleartext URL, and a
/// certificate refused at the first contact are errors at start.
pub async fn connect(
    url: &str,
    tls: &RedisTlsSettings,
) -> Result<redis::aio::ConnectionManager, RedisSetupError> {
    let client = client(url, tls)?;
    let target = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    };
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    let conn = client.get_connection_manager_lazy(config)?;
    let mut probe = conn.clone();
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("PING").query_async::<String>(&mut probe),
    )
    .await;
    match ping {
        Ok(Ok(_)) => tracing::info!("connected to Redis for MEGADEAL admission"),
        Ok(Err(e)) => {
            if let Some(tls) = allot_storage::tls::find_rustls_error(&e) {
                return Err(RedisSetupError::TlsRefused(format!(
                    "TLS to {target}: {}",
                    allot_storage::tls::refusal_reason(tls)
                )));
            }
            tracing::warn!(error = %e, "Redis unreachable at start; MEGADEAL requests answer 503 until it is back")
        }
        Err(_) => tracing::warn!(
            "Redis did not answer at start; MEGADEAL requests answer 503 until it does"
        ),
    }
    Ok(conn)
}

fn client(url: &str, tls: &RedisTlsSettings) -> Result<redis::Client, RedisSetupError> {
    let is_tls = url.starts_with("rediss://");
    if !is_tls {
        if tls.ca_file.is_some() || tls.client.is_some() {
            return Err(RedisSetupError::Settings(
                "redis_ca_file / redis_client_cert are set but the Redis URL is cleartext \
                 (redis://): use rediss:// for TLS"
                    .to_owned(),
            ));
        }
        return Ok(redis::Client::open(url)?);
    }
    if tls.ca_file.is_none() && tls.client.is_none() {
        // The system's roots only.
        return Ok(redis::Client::open(url)?);
    }
    let root_cert = match &tls.ca_file {
        None => None,
        Some(path) => Some(allot_storage::tls::roots_pem(path).map_err(RedisSetupError::Settings)?),
    };
    let client_tls = match &tls.client {
        None => None,
        Some(id) => {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| {
                    RedisSetupError::Settings(format!("client certificate {}: {e}", p.display()))
                })
            };
            // Checked now, so a bad file is said at start rather than at the first connection.
            id.load().map_err(RedisSetupError::Settings)?;
            Some(redis::ClientTlsConfig {
                client_cert: read(&id.cert)?,
                client_key: read(&id.key)?,
            })
        }
    };
    Ok(redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )?)
}
