//! A CRI client over the daemon's Unix socket, for what `crictl` cannot
//! ask directly: an RPC on an id it would first look up (so idempotent
//! removal of an unknown id can be checked), or a server stream.

use std::path::{Path, PathBuf};

use corten_cri_api::v1::image_service_client::ImageServiceClient;
use corten_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
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

/// The CRI config of pod `name` in `namespace` (uid `uid-<name>`, the
/// name as hostname), as the tests' own gRPC clients send it.
pub fn pod_config(name: &str, namespace: &str) -> corten_cri_api::v1::PodSandboxConfig {
    corten_cri_api::v1::PodSandboxConfig {
        metadata: Some(corten_cri_api::v1::PodSandboxMetadata {
            name: name.into(),
            namespace: namespace.into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        }),
        hostname: name.into(),
        ..Default::default()
    }
}

/// A busybox container named `name` that sleeps for an hour.
pub fn sleeper(name: &str) -> corten_cri_api::v1::ContainerConfig {
    corten_cri_api::v1::ContainerConfig {
        metadata: Some(corten_cri_api::v1::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(corten_cri_api::v1::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        ..Default::default()
    }
}

/// RunPodSandbox of `config`; the pod's id.
pub async fn run_pod(
    c: &mut RuntimeClient,
    config: corten_cri_api::v1::PodSandboxConfig,
) -> Result<String, tonic::Status> {
    Ok(c.run_pod_sandbox(corten_cri_api::v1::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    })
    .await?
    .into_inner()
    .pod_sandbox_id)
}

/// CreateContainer of `config` in `pod`, then StartContainer; its id.
pub async fn run_container(
    c: &mut RuntimeClient,
    pod: &str,
    config: corten_cri_api::v1::ContainerConfig,
) -> Result<String, tonic::Status> {
    let id = c
        .create_container(corten_cri_api::v1::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: None,
        })
        .await?
        .into_inner()
        .container_id;
    c.start_container(corten_cri_api::v1::StartContainerRequest {
        container_id: id.clone(),
    })
    .await?;
    Ok(id)
}
