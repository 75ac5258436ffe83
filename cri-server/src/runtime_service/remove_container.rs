//! `RemoveContainer`: kills it if it runs, removes everything; idempotent.

use corten_cri_api::v1::{RemoveContainerRequest, RemoveContainerResponse};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

pub async fn remove_container(
    cri: &Cri,
    req: RemoveContainerRequest,
) -> Result<RemoveContainerResponse, Status> {
    // api.proto: "If the container is running, the container must be
    // forcibly removed. This call is idempotent, and must not return an
    // error if the container has already been removed."
    cri.runtime
        .containers()
        .remove(&req.container_id)
        .await
        .map_err(CriError)?;
    Ok(RemoveContainerResponse {})
}
