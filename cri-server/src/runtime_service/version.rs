//! `Version`: who we are and which CRI we speak.

use corten_cri_api::v1::{VersionRequest, VersionResponse};
use tonic::Status;

use crate::service::Cri;

/// The version of the kubelet runtime API, as every CRI runtime reports it.
const KUBELET_API_VERSION: &str = "0.1.0";

pub fn version(_: &Cri, _: VersionRequest) -> Result<VersionResponse, Status> {
    Ok(VersionResponse {
        version: KUBELET_API_VERSION.to_string(),
        runtime_name: "corten".to_string(),
        runtime_version: corten_runtime::VERSION.to_string(),
        runtime_api_version: "v1".to_string(),
    })
}
