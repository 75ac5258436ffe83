//! The CRI `ImageService`: one file per RPC, named after it.

mod image_fs_info;
mod image_status;
mod list_images;
mod pull_image;
mod remove_image;

use corten_cri_api::v1::image_service_server::ImageService;
use corten_cri_api::v1::{
    ImageFsInfoRequest, ImageFsInfoResponse, ImageStatusRequest, ImageStatusResponse,
    ListImagesRequest, ListImagesResponse, PullImageRequest, PullImageResponse, RemoveImageRequest,
    RemoveImageResponse,
};
use corten_cri_api::v1::{StreamImagesRequest, StreamImagesResponse};
use tonic::{Request, Response, Status};

use crate::paging::{pages, PageStream};

use crate::service::CriService;

#[tonic::async_trait]
impl ImageService for CriService {
    type StreamImagesStream = PageStream<StreamImagesResponse>;

    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        list_images::list_images(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        image_status::image_status(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn pull_image(
        &self,
        request: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let request = request.into_inner();
        self.to_completion(|cri| async move { pull_image::pull_image(&cri, request).await })
            .await
    }

    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let request = request.into_inner();
        self.to_completion(|cri| async move { remove_image::remove_image(&cri, request).await })
            .await
    }

    async fn image_fs_info(
        &self,
        request: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        image_fs_info::image_fs_info(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn stream_images(
        &self,
        request: Request<StreamImagesRequest>,
    ) -> Result<Response<Self::StreamImagesStream>, Status> {
        let filter = request.into_inner().filter;
        let list = list_images::list_images(&self.state, ListImagesRequest { filter }).await?;
        Ok(Response::new(pages(list.images, |images| {
            StreamImagesResponse { images }
        })))
    }
}
