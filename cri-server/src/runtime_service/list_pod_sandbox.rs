//! `ListPodSandbox`, filtered by id (or id prefix), state and labels.

use corten_cri_api::v1::{ListPodSandboxRequest, ListPodSandboxResponse, PodSandboxFilter};
use tonic::Status;

use crate::convert::pod::pod_sandbox;
use crate::service::Cri;

pub async fn list_pod_sandbox(
    cri: &Cri,
    req: ListPodSandboxRequest,
) -> Result<ListPodSandboxResponse, Status> {
    let filter = req.filter.unwrap_or_default();
    // Thousands of records converted: CPU work, off the async worker.
    let items = corten_runtime::blocking::run(|| {
        cri.runtime
            .pods()
            .list()
            .iter()
            .map(pod_sandbox)
            .filter(|p| matches(&filter, p))
            .collect()
    });
    Ok(ListPodSandboxResponse { items })
}

fn matches(f: &PodSandboxFilter, p: &corten_cri_api::v1::PodSandbox) -> bool {
    (f.id.is_empty() || p.id.starts_with(&f.id))
        && f.state.is_none_or(|s| s.state == p.state)
        && f.label_selector
            .iter()
            .all(|(k, v)| p.labels.get(k) == Some(v))
}
