//! A CRI client over the daemon's Unix socket, for what `crictl` cannot
//! ask directly: an RPC on an id it would first look up (so idempotent
//! removal of an unknown id can be checked), or a server stream.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint};

/// Connects to the CRI socket at `socket`.
pub async fn channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.to_owned();
    // The URI is required by tonic and ignored by the connector.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

/// A `RuntimeService` client on `socket`.
pub async fn runtime(
    socket: &Path,
) -> Result<RuntimeServiceClient<Channel>, tonic::transport::Error> {
    Ok(RuntimeServiceClient::new(channel(socket).await?))
}

/// An `ImageService` client on `socket`.
pub async fn images(socket: &Path) -> Result<ImageServiceClient<Channel>, tonic::transport::Error> {
    Ok(ImageServiceClient::new(channel(socket).await?))
}

/// Runs `f` to completion on a runtime of its own, for the tests' own CRI
/// calls from synchronous test code.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the test's CRI client")
        .block_on(f)
}

/// A `RuntimeService` client, as [`runtime`] makes it.
pub type RuntimeClient = RuntimeServiceClient<Channel>;
