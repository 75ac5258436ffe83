//! `ExecSync`: a command in a running container, output captured (capped),
//! killed when its timeout passes.
//!
//! Output over the cap is truncated, and says so. stdout and stderr
//! together keep at most [`OUTPUT_BUDGET`] bytes, so that the whole
//! response fits the 16 MiB gRPC message limit of kubelet and crictl
//! (k8s.io/cri-client's maxMsgSize): a bigger response would fail at the
//! client as "received message larger than max", output and exit code
//! lost (containerd keeps 16 MiB per stream, silently, and so hits exactly
//! that; CRI-O truncates at 16 MB and logs it). When output was dropped,
//! stderr ends with a line saying so, naming the bytes kept and written
//! per stream, and the daemon logs a warning; the exit code stays the
//! command's.
//!
//! Why not fail the RPC (ResourceExhausted): kubelet's exec probes and
//! lifecycle hooks read the exit code and the first 10 KiB of stdout +
//! stderr; an RPC error would turn a probe whose command succeeded into a
//! failed one. With truncation a probe's result is the command's, and the
//! marker, after 16 MiB of output, is beyond what a probe reports.

use std::time::Duration;

use corten_cri_api::v1::{ExecSyncRequest, ExecSyncResponse};
use corten_runtime::container::{ExecOutput, ExecRequest};
use tonic::Status;

use crate::error::CriError;
use crate::service::Cri;

/// The largest message kubelet's and crictl's CRI clients accept.
const CLIENT_MAX_MESSAGE: usize = 16 << 20;

/// Output kept, stdout and stderr together: the client's limit less room
/// for the truncation line and the protobuf framing (a few dozen bytes).
const OUTPUT_BUDGET: usize = CLIENT_MAX_MESSAGE - (64 << 10);

pub async fn exec_sync(cri: &Cri, req: ExecSyncRequest) -> Result<ExecSyncResponse, Status> {
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("cmd is empty"));
    }
    let timeout = u64::try_from(req.timeout)
        .ok()
        .filter(|t| *t > 0)
        .map(Duration::from_secs);
    let out = cri
        .runtime
        .containers()
        .exec_sync(
            &req.container_id,
            ExecRequest {
                args: req.cmd.clone(),
                timeout,
                // Either stream alone may fill the budget; `fit` shares it.
                output_cap: OUTPUT_BUDGET,
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
    let exit_code = out.exit_code;
    let (stdout, stderr, cut) = fit(out, OUTPUT_BUDGET);
    if let Some(cut) = &cut {
        tracing::warn!(
            container = %req.container_id,
            stdout_kept = cut.stdout_kept,
            stdout_written = cut.stdout_written,
            stderr_kept = cut.stderr_kept,
            stderr_written = cut.stderr_written,
            "ExecSync output over its cap was truncated"
        );
    }
    Ok(ExecSyncResponse {
        stdout,
        stderr,
        exit_code,
    })
}

/// What truncation kept of what the command wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cut {
    stdout_kept: usize,
    stdout_written: u64,
    stderr_kept: usize,
    stderr_written: u64,
}

/// stdout and stderr of `out` within `budget` bytes together, and, when
/// anything was dropped (here or by the runtime's cap), what was kept:
/// stderr then ends with a line saying so.
fn fit(out: ExecOutput, budget: usize) -> (Vec<u8>, Vec<u8>, Option<Cut>) {
    let (mut stdout, mut stderr) = (out.stdout, out.stderr);
    let (keep_out, keep_err) = shares(stdout.len(), stderr.len(), budget);
    stdout.truncate(keep_out);
    stderr.truncate(keep_err);
    let cut = Cut {
        stdout_kept: stdout.len(),
        stdout_written: out.stdout_written.max(keep_out as u64),
        stderr_kept: stderr.len(),
        stderr_written: out.stderr_written.max(keep_err as u64),
    };
    if cut.stdout_written == cut.stdout_kept as u64 && cut.stderr_written == cut.stderr_kept as u64
    {
        return (stdout, stderr, None);
    }
    if stderr.last().is_some_and(|b| *b != b'\n') {
        stderr.push(b'\n');
    }
    stderr.extend_from_slice(marker(&cut, budget).as_bytes());
    (stdout, stderr, Some(cut))
}

/// How many bytes of streams `out` and `err` long to keep within
/// `budget`: all when they fit; otherwise a stream under half the budget
/// keeps all and the other the rest, or each keeps half. (So a flood on
/// one stream leaves the other's, an error message say, whole.)
fn shares(out: usize, err: usize, budget: usize) -> (usize, usize) {
    let half = budget / 2;
    if out.saturating_add(err) <= budget {
        (out, err)
    } else if out <= half {
        (out, budget - out)
    } else if err <= half {
        (budget - err, err)
    } else {
        (half, budget - half)
    }
}

/// The line ending stderr of a truncated ExecSync.
fn marker(cut: &Cut, budget: usize) -> String {
    format!(
        "corten: ExecSync output truncated: stdout and stderr together keep at most {budget} \
         bytes (to fit the 16 MiB CRI message limit); kept {} of {} bytes of stdout, {} of {} \
         bytes of stderr\n",
        cut.stdout_kept, cut.stdout_written, cut.stderr_kept, cut.stderr_written
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(
        stdout: usize,
        stdout_written: u64,
        stderr: &[u8],
        stderr_written: u64,
    ) -> ExecOutput {
        ExecOutput {
            stdout: vec![b'o'; stdout],
            stdout_written,
            stderr: stderr.to_vec(),
            stderr_written,
            ..ExecOutput::default()
        }
    }

    #[test]
    fn shares_keep_what_fits_and_split_the_rest_fairly() {
        assert_eq!(shares(3, 4, 10), (3, 4));
        assert_eq!(shares(10, 0, 10), (10, 0));
        assert_eq!(shares(30, 2, 10), (8, 2), "the small stream stays whole");
        assert_eq!(shares(2, 30, 10), (2, 8));
        assert_eq!(shares(30, 30, 10), (5, 5));
        assert_eq!(shares(30, 30, 11), (5, 6));
    }

    #[test]
    fn output_within_the_budget_is_untouched() {
        let (out, err, cut) = fit(output(5, 5, b"warn\n", 5), 100);
        assert_eq!((out.len(), err.as_slice(), cut), (5, &b"warn\n"[..], None));
    }

    #[test]
    fn output_the_runtime_capped_is_marked() {
        // The runtime kept 10 of 25 bytes of stdout; stderr had no newline.
        let (out, err, cut) = fit(output(10, 25, b"oops", 4), 100);
        assert_eq!(out.len(), 10);
        let cut = cut.expect("reported");
        assert_eq!((cut.stdout_kept, cut.stdout_written), (10, 25));
        let err = String::from_utf8(err).expect("text");
        let (first, line) = err.split_once('\n').expect("two lines");
        assert_eq!(first, "oops", "stderr's own text comes first, whole");
        assert!(
            line.starts_with("corten: ExecSync output truncated")
                && line.contains("at most 100 bytes")
                && line.contains("kept 10 of 25 bytes of stdout, 4 of 4 bytes of stderr")
                && line.ends_with('\n'),
            "{line:?}"
        );
    }

    #[test]
    fn output_over_the_budget_together_is_cut_to_fit_and_marked() {
        let (out, err, cut) = fit(output(80, 80, &[b'e'; 80], 80), 100);
        assert_eq!(cut.map(|c| (c.stdout_kept, c.stderr_kept)), Some((50, 50)));
        assert_eq!(out.len(), 50);
        assert!(err.starts_with(&[b'e'; 50]) && err[50] == b'\n', "{err:?}");
        let marker = String::from_utf8_lossy(&err[51..]);
        assert!(
            marker.contains("kept 50 of 80 bytes of stdout, 50 of 80 bytes of stderr"),
            "{marker}"
        );
    }

    #[test]
    fn a_full_response_fits_the_clients_message_limit() {
        use prost::Message as _;
        let written = (OUTPUT_BUDGET as u64) * 4;
        let big = vec![0u8; OUTPUT_BUDGET];
        let out = ExecOutput {
            exit_code: i32::MIN,
            stdout: big.clone(),
            stdout_written: written,
            stderr: big,
            stderr_written: written,
            ..ExecOutput::default()
        };
        let (stdout, stderr, cut) = fit(out, OUTPUT_BUDGET);
        assert!(cut.is_some());
        let response = ExecSyncResponse {
            stdout,
            stderr,
            exit_code: i32::MIN,
        };
        assert!(
            response.encoded_len() <= CLIENT_MAX_MESSAGE,
            "{} bytes",
            response.encoded_len()
        );
    }
}
