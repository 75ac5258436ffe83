//! `ImageFsInfo`: bytes and inodes used by the layer snapshots.

use corten_cri_api::v1::{
    FilesystemIdentifier, FilesystemUsage, ImageFsInfoRequest, ImageFsInfoResponse, UInt64Value,
};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

pub async fn image_fs_info(
    cri: &Cri,
    _: ImageFsInfoRequest,
) -> Result<ImageFsInfoResponse, Status> {
    let usage = cri.runtime.images().usage().await.map_err(CriError)?;
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let fs = FilesystemUsage {
        timestamp,
        fs_id: Some(FilesystemIdentifier {
            mountpoint: cri.runtime.images().snapshot_root().display().to_string(),
        }),
        used_bytes: Some(UInt64Value { value: usage.bytes }),
        inodes_used: Some(UInt64Value {
            value: usage.inodes,
        }),
    };
    Ok(ImageFsInfoResponse {
        image_filesystems: vec![fs],
        container_filesystems: Vec::new(),
    })
}
