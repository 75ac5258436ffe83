//! `PullImage`: fetch an image (mirrors first) and answer with its id.

use corten_cri_api::v1::{PullImageRequest, PullImageResponse};
use tonic::Status;

use crate::convert::image::{credentials, spec_image};
use crate::error::CriError;
use crate::service::Cri;

pub async fn pull_image(cri: &Cri, req: PullImageRequest) -> Result<PullImageResponse, Status> {
    let image = spec_image(req.image.as_ref())?;
    let creds = credentials(req.auth.as_ref())?;
    let record = cri
        .runtime
        .images()
        .pull(image, creds)
        .await
        .map_err(CriError)?;
    // As containerd does, the reference answered is the image id.
    Ok(PullImageResponse {
        image_ref: record.id.to_string(),
    })
}
