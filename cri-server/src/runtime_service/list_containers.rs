//! `ListContainers`: filtered by id (or prefix), state, pod, labels.

use corten_cri_api::v1::{ListContainersRequest, ListContainersResponse};
use corten_runtime::container::ContainerFilter;
use tonic::Status;

use crate::convert::container::{container, state_from_cri};
use crate::service::Cri;

pub async fn list_containers(
    cri: &Cri,
    req: ListContainersRequest,
) -> Result<ListContainersResponse, Status> {
    let filter = match req.filter {
        None => ContainerFilter::default(),
        Some(f) => ContainerFilter {
            id: Some(f.id).filter(|s| !s.is_empty()),
            state: f.state.map(|s| state_from_cri(s.state)).transpose()?,
            pod_id: Some(f.pod_sandbox_id).filter(|s| !s.is_empty()),
            labels: f.label_selector.into_iter().collect(),
        },
    };
    // Thousands of records converted: CPU work, off the async worker.
    let containers =
        corten_runtime::blocking::run(|| cri.runtime.containers().list_mapped(&filter, container));
    Ok(ListContainersResponse { containers })
}
