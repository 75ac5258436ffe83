//! `StartContainer`: lets a created container run.

use corten_cri_api::v1::{StartContainerRequest, StartContainerResponse};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

pub async fn start_container(
    cri: &Cri,
    req: StartContainerRequest,
) -> Result<StartContainerResponse, Status> {
    cri.runtime
        .start_container(&req.container_id)
        .await
        .map_err(CriError)?;
    Ok(StartContainerResponse {})
}
