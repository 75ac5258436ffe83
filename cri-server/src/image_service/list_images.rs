//! `ListImages`, optionally filtered to one image.

use corten_cri_api::v1::{ListImagesRequest, ListImagesResponse};
use tonic::Status;

use crate::convert::image::image;
use crate::error::CriError;
use crate::service::Cri;

pub async fn list_images(cri: &Cri, req: ListImagesRequest) -> Result<ListImagesResponse, Status> {
    let wanted = req
        .filter
        .and_then(|f| f.image)
        .map(|s| s.image)
        .filter(|s| !s.is_empty());
    // Every image record converted: off the async worker.
    let images = corten_runtime::blocking::run(|| match wanted {
        // A filter that names nothing we have lists nothing.
        Some(name) => cri
            .runtime
            .images()
            .status(&name)
            .map_err(CriError)
            .map(|found| found.iter().map(image).collect()),
        None => Ok(cri.runtime.images().list().iter().map(image).collect()),
    })?;
    Ok(ListImagesResponse { images })
}
