//! Connections for the client and load commands: gRPC channels and HTTP clients that carry the
//! credential given with `--api-key` / `ALLOT_API_KEY` (an `ak_` API key or an access token,
//! sent as `Authorization: Bearer`), and that reach an `https://` server trusting the system's
//! certificate authorities plus the one given with `--ca-file` / `ALLOT_CA_FILE`.

use std::sync::OnceLock;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

static CREDENTIAL: OnceLock<Option<String>> = OnceLock::new();
/// The PEM of `--ca-file`, read once at start.
static CA_PEM: OnceLock<Option<Vec<u8>>> = OnceLock::new();

/// Reads the CA file every connection made afterwards trusts (beside the system's); once, at
/// start. A file that is not a PEM certificate is refused here, not at the first connection.
pub(crate) fn set_ca_file(path: Option<&std::path::Path>) -> Result<(), String> {
    let pem = match path {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("--ca-file {}: cannot be read ({e})", path.display()))?;
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!("--ca-file {}: not a PEM certificate ({e})", path.display())
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!(
                    "--ca-file {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
            Some(pem)
        }
        None => None,
    };
    let _ = CA_PEM.set(pem);
    Ok(())
}

fn ca_pem() -> Option<&'static [u8]> {
    CA_PEM.get().and_then(|p| p.as_deref())
}

/// A client builder that trusts `--ca-file` besides the system's authorities: the base of
/// every HTTP client of the tools.
pub(crate) fn http_builder() -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = ca_pem() {
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("--ca-file: not a PEM certificate ({e})"))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// Sets the credential every connection made afterwards sends; once, at start.
pub(crate) fn set_credential(credential: Option<String>) {
    let _ = CREDENTIAL.set(credential.filter(|c| !c.is_empty()));
}

/// The credential given (`--api-key`, `ALLOT_API_KEY`), if any.
pub(crate) fn credential() -> Option<String> {
    CREDENTIAL.get().cloned().flatten()
}

/// `Bearer <credential>`, if one was given.
fn authorization() -> Option<String> {
    CREDENTIAL
        .get()
        .and_then(Option::as_deref)
        .map(|c| format!("Bearer {c}"))
}

/// Adds the credential to every gRPC call.
#[derive(Clone)]
pub(crate) struct Credential(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Credential {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A gRPC connection that sends the credential.
pub(crate) type GrpcChannel = InterceptedService<Channel, Credential>;

/// One HTTP/2 connection to the server.
pub(crate) async fn connect(server: &str) -> Result<GrpcChannel, String> {
    let credential = authorization()
        .map(|a| {
            a.parse()
                .map_err(|_| "the API key must be ASCII".to_owned())
        })
        .transpose()?;
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| format!("bad server URL {server:?}: {e}"))?;
    if server.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = ca_pem() {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS to {server}: {e}"))?;
    }
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {server}: {}", error_chain(&e)))?;
    Ok(InterceptedService::new(channel, Credential(credential)))
}

/// Default headers of the HTTP clients: the credential, if one was given.
pub(crate) fn http_headers() -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(a) = authorization() {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            a.parse()
                .map_err(|_| "the API key must be ASCII".to_owned())?,
        );
    }
    Ok(headers)
}

/// An error with its causes (`transport error: ...: invalid peer certificate: UnknownIssuer`):
/// the reason a TLS connection was refused is at the bottom.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
