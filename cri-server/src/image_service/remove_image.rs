//! `RemoveImage`: by id, tag or digest; idempotent. An image mounted as an
//! image volume by a container is refused until that container is removed.

use corten_cri_api::v1::{RemoveImageRequest, RemoveImageResponse};
use corten_runtime::container::ContainerFilter;
use tonic::Status;

use crate::convert::image::spec_image;
use crate::error::CriError;
use crate::service::Cri;

pub async fn remove_image(
    cri: &Cri,
    req: RemoveImageRequest,
) -> Result<RemoveImageResponse, Status> {
    let name = spec_image(req.image.as_ref())?;
    if let Some(image) = cri.runtime.images().status(name).map_err(CriError)? {
        let id = image.id.to_string();
        let users = cri
            .runtime
            .containers()
            .list_mapped(&ContainerFilter::default(), |r| {
                r.config
                    .mounts
                    .iter()
                    .any(|m| m.image.as_ref().is_some_and(|i| i.image_id == id))
                    .then(|| r.id.to_string())
            });
        if let Some(user) = users.into_iter().flatten().next() {
            return Err(Status::failed_precondition(format!(
                "image {name:?} ({id}) is mounted as an image volume by container {user}: \
                 remove the container first"
            )));
        }
    }
    // api.proto: "This call is idempotent, and must not return an error if
    // the image has already been removed."
    let removed = cri.runtime.images().remove(name).await.map_err(CriError)?;
    tracing::info!(image = name, removed, "remove image");
    Ok(RemoveImageResponse {})
}
