//! gRPC connections for the client and load commands.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// One HTTP/2 connection to the server.
pub(crate) async fn connect(server: &str) -> Result<Channel, String> {
    Endpoint::from_shared(server.to_owned())
        .map_err(|e| format!("bad server URL {server:?}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))
}
