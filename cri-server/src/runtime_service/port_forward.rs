//! `PortForward`: a URL on the streaming server for forwarding ports of a
//! ready pod (its network namespace, or the host's for a host-network pod).

use corten_cri_api::v1::{PortForwardRequest, PortForwardResponse};
use corten_runtime::sandbox::{Namespace, PodState};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;
use crate::streaming::tokens::{Pending, PortForwardTarget};

pub async fn port_forward(
    cri: &Cri,
    req: PortForwardRequest,
) -> Result<PortForwardResponse, Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id is required"));
    }
    let pod = cri
        .runtime
        .pods()
        .get(&req.pod_sandbox_id)
        .map_err(|e| CriError(e.into()))?;
    if pod.state != PodState::Ready {
        return Err(Status::failed_precondition(format!(
            "pod sandbox {} is not ready",
            pod.id
        )));
    }
    let ports = req
        .port
        .iter()
        .map(|p| {
            u16::try_from(*p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Status::invalid_argument(format!("port {p} is not a port")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let url = cri.streaming.url(Pending::PortForward(PortForwardTarget {
        netns: pod.namespace_path(Namespace::Net),
        pod_id: pod.id.to_string(),
        ports,
    }))?;
    Ok(PortForwardResponse { url })
}
