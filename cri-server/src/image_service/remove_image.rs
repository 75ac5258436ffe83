//! `RemoveImage`: by id, tag or digest; idempotent.

use corten_cri_api::v1::{RemoveImageRequest, RemoveImageResponse};
use tonic::Status;

use crate::convert::image::spec_image;
use crate::error::CriError;
use crate::service::Cri;

pub async fn remove_image(
    cri: &Cri,
    req: RemoveImageRequest,
) -> Result<RemoveImageResponse, Status> {
    let name = spec_image(req.image.as_ref())?;
    // api.proto: "This call is idempotent, and must not return an error if
    // the image has already been removed."
    let removed = cri.runtime.images().remove(name).await.map_err(CriError)?;
    tracing::info!(image = name, removed, "remove image");
    Ok(RemoveImageResponse {})
}
