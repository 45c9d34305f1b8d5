//! Connections for the client and load commands: gRPC channels and HTTP clients that carry the
//! credential given with `--api-key` / `ALLOT_API_KEY` (an `ak_` API key or an access token,
//! sent as `Authorization: Bearer`).

use std::sync::OnceLock;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

static CREDENTIAL: OnceLock<Option<String>> = OnceLock::new();

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
    let channel = Endpoint::from_shared(server.to_owned())
        .map_err(|e| format!("bad server URL {server:?}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
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
