//! `UpdateContainerResources`: cgroup limits changed live.

use corten_cri_api::v1::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};
use tonic::Status;

use crate::convert::container::resources;
use crate::error::CriError;
use crate::service::Cri;

pub async fn update_container_resources(
    cri: &Cri,
    req: UpdateContainerResourcesRequest,
) -> Result<UpdateContainerResourcesResponse, Status> {
    let linux = req
        .linux
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("linux resources are required"))?;
    let resources = resources(Some(linux))?;
    cri.runtime
        .containers()
        .update_resources(&req.container_id, resources)
        .await
        .map_err(CriError)?;
    Ok(UpdateContainerResourcesResponse {})
}
