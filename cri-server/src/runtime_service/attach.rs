//! `Attach`: a URL on the streaming server for the stdio of a running
//! container (stdin only if the container was created with it).

use corten_cri_api::v1::{AttachRequest, AttachResponse};
use tonic::Status;

use super::exec::{check_streams, running_container};
use crate::service::Cri;
use crate::streaming::tokens::{AttachTarget, Pending};

pub async fn attach(cri: &Cri, req: AttachRequest) -> Result<AttachResponse, Status> {
    check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
    let id = running_container(cri, &req.container_id).await?;
    let url = cri.streaming.url(Pending::Attach(AttachTarget {
        container_id: id,
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    }))?;
    Ok(AttachResponse { url })
}
