//! `ImageStatus`: an image, or none; with `verbose` its config as JSON.

use std::collections::HashMap;

use corten_cri_api::v1::{ImageStatusRequest, ImageStatusResponse};
use tonic::Status;

use crate::convert::image::{image, spec_image};
use crate::error::CriError;
use crate::service::Cri;

pub async fn image_status(
    cri: &Cri,
    req: ImageStatusRequest,
) -> Result<ImageStatusResponse, Status> {
    let name = spec_image(req.image.as_ref())?;
    // api.proto: an image that is not present is a nil image, not an error.
    let Some(record) = cri.runtime.images().status(name).map_err(CriError)? else {
        return Ok(ImageStatusResponse::default());
    };
    let mut info = HashMap::new();
    if req.verbose {
        let verbose = serde_json::json!({
            "id": record.id.to_string(),
            "manifestDigest": record.manifest_digest.to_string(),
            "chainID": record.layers.last().map(|l| l.chain_id.to_string()),
            "layers": record.layers,
            "pulledAt": record.pulled_at_ns,
            "imageSpec": record.config,
        });
        info.insert("info".to_string(), verbose.to_string());
    }
    Ok(ImageStatusResponse {
        image: Some(image(&record)),
        info,
    })
}
