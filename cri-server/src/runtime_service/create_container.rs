//! `CreateContainer`: a container of a pod from an image and a CRI config.

use k8s_cri::v1::{CreateContainerRequest, CreateContainerResponse};
use tonic::Status;

use super::pod_lookup::pod_context;
use crate::convert::container::new_container;
use crate::error::CriError;
use crate::service::Cri;

pub async fn create_container(
    cri: &Cri,
    req: CreateContainerRequest,
) -> Result<CreateContainerResponse, Status> {
    let config = req
        .config
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("config is required"))?;
    let new = new_container(config)?;
    let pod = pod_context(cri, &req.pod_sandbox_id)?;
    let container_id = cri
        .containers
        .create(&cri.images, &pod, new)
        .await
        .map_err(CriError)?;
    Ok(CreateContainerResponse { container_id })
}
