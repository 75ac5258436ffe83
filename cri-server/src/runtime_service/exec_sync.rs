//! `ExecSync`: a command in a running container, output captured (capped),
//! killed when its timeout passes.

use std::time::Duration;

use corten_runtime::container::ExecRequest;
use k8s_cri::v1::{ExecSyncRequest, ExecSyncResponse};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

/// Output kept per stream (kubelet's own cap for exec probes is 16 KiB;
/// containerd keeps 16 MiB).
const OUTPUT_CAP: usize = 16 << 20;

pub async fn exec_sync(cri: &Cri, req: ExecSyncRequest) -> Result<ExecSyncResponse, Status> {
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("cmd is empty"));
    }
    let timeout = u64::try_from(req.timeout)
        .ok()
        .filter(|t| *t > 0)
        .map(Duration::from_secs);
    let out = cri
        .containers
        .exec_sync(
            &req.container_id,
            ExecRequest {
                args: req.cmd.clone(),
                timeout,
                output_cap: OUTPUT_CAP,
                ..ExecRequest::default()
            },
        )
        .await
        .map_err(CriError)?;
    if out.timed_out {
        // kubelet's exec probes look for DeadlineExceeded.
        return Err(Status::deadline_exceeded(format!(
            "command {:?} in container {} timed out after {}s and was killed",
            req.cmd, req.container_id, req.timeout
        )));
    }
    Ok(ExecSyncResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.exit_code,
    })
}
