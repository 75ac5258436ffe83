//! `Exec`: a URL on the streaming server for running a command in a
//! running container, interactively.

use corten_cri_api::v1::{ExecRequest, ExecResponse};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;
use crate::streaming::tokens::{ExecTarget, Pending};

pub async fn exec(cri: &Cri, req: ExecRequest) -> Result<ExecResponse, Status> {
    check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
    if req.cmd.first().is_none_or(String::is_empty) {
        return Err(Status::invalid_argument("cmd must not be empty"));
    }
    let id = running_container(cri, &req.container_id).await?;
    let url = cri.streaming.url(Pending::Exec(ExecTarget {
        container_id: id,
        cmd: req.cmd,
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    }))?;
    Ok(ExecResponse { url })
}

/// The stream combinations CRI allows: at least one stream, and no
/// separate stderr on a terminal.
pub fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<(), Status> {
    if tty && stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true: a terminal merges stderr into stdout",
        ));
    }
    if !(stdin || stdout || stderr) {
        return Err(Status::invalid_argument(
            "one of stdin, stdout and stderr must be true",
        ));
    }
    Ok(())
}

/// The id of container `id`, refused unless it is running.
pub async fn running_container(cri: &Cri, id: &str) -> Result<String, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("container_id is required"));
    }
    let id = cri.runtime.containers().resolve(id).map_err(CriError)?;
    cri.runtime
        .containers()
        .ensure_running(&id)
        .await
        .map_err(CriError)?;
    Ok(id.to_string())
}
