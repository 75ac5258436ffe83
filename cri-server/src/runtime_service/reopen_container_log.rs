//! `ReopenContainerLog`: the shim reopens the log file after a rotation.

use corten_cri_api::v1::{ReopenContainerLogRequest, ReopenContainerLogResponse};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

pub async fn reopen_container_log(
    cri: &Cri,
    req: ReopenContainerLogRequest,
) -> Result<ReopenContainerLogResponse, Status> {
    cri.runtime
        .containers()
        .reopen_log(&req.container_id)
        .await
        .map_err(CriError)?;
    Ok(ReopenContainerLogResponse {})
}
