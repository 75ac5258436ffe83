//! One tower layer for every RPC: a span named after it, and one log line
//! when it completes (mutations at info, reads at debug, failures at warn).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::Instrument;

/// The layer to put in front of the CRI services.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcLogLayer;

impl<S> Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> RpcLog<S> {
        RpcLog { inner }
    }
}

/// The service that [`RpcLogLayer`] wraps around another.
#[derive(Debug, Clone)]
pub struct RpcLog<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, RB> Service<http::Request<B>> for RpcLog<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone is the one that was not polled ready; keep the ready one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rpc = rpc_name(req.uri().path()).to_string();
        let span = tracing::info_span!("rpc", rpc = %rpc);
        let started = Instant::now();
        Box::pin(async move {
            let result = inner.call(req).instrument(span.clone()).await;
            span.in_scope(|| match &result {
                Ok(resp) => log_outcome(&rpc, resp.headers(), started.elapsed().as_micros()),
                Err(_) => tracing::warn!("transport error"),
            });
            result
        })
    }
}

/// `/runtime.v1.RuntimeService/Version` -> `Version`.
fn rpc_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Reads change nothing; they are logged at debug so a polling kubelet
/// does not flood the log.
fn is_read(rpc: &str) -> bool {
    rpc.starts_with("List")
        || rpc.ends_with("Status")
        || rpc.ends_with("Stats")
        || matches!(
            rpc,
            "Version" | "ImageFsInfo" | "RuntimeConfig" | "GetContainerEvents"
        )
}

fn log_outcome(rpc: &str, headers: &http::HeaderMap, micros: u128) {
    // tonic answers a failed unary call "trailers-only": the status is in the headers.
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    if code != 0 {
        let code = tonic::Code::from_i32(code);
        let message = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default();
        if code == tonic::Code::Unimplemented {
            tracing::debug!(?code, %message, micros, "failed");
        } else {
            tracing::warn!(?code, %message, micros, "failed");
        }
    } else if is_read(rpc) {
        tracing::debug!(micros, "done");
    } else {
        tracing::info!(micros, "done");
    }
}

/// grpc-message is percent-encoded on the wire.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_kinds() {
        assert_eq!(
            rpc_name("/runtime.v1.RuntimeService/RunPodSandbox"),
            "RunPodSandbox"
        );
        for read in [
            "Version",
            "ListImages",
            "ContainerStatus",
            "ListPodSandboxStats",
            "ImageFsInfo",
        ] {
            assert!(is_read(read), "{read}");
        }
        for write in [
            "RunPodSandbox",
            "PullImage",
            "ExecSync",
            "UpdateRuntimeConfig",
            "StopContainer",
        ] {
            assert!(!is_read(write), "{write}");
        }
    }

    #[test]
    fn grpc_message_is_decoded() {
        assert_eq!(
            percent_decode("no%20such%20image%3A x%"),
            "no such image: x%"
        );
    }
}
