//! `StopContainer`: the image's stop signal, SIGKILL after the timeout.

use std::time::Duration;

use corten_cri_api::v1::{StopContainerRequest, StopContainerResponse};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

pub async fn stop_container(
    cri: &Cri,
    req: StopContainerRequest,
) -> Result<StopContainerResponse, Status> {
    // api.proto: "timeout is the timeout in seconds to wait for the
    // container to stop before forcibly terminating it. Default: 0 (forcibly
    // terminate the container immediately)". A negative one is 0.
    let timeout = Duration::from_secs(u64::try_from(req.timeout).unwrap_or(0));
    cri.runtime
        .containers()
        .stop(&req.container_id, timeout)
        .await
        .map_err(CriError)?;
    Ok(StopContainerResponse {})
}
