//! One tower layer for every RPC: a span named after it, one log line when
//! it completes (mutations at info, reads at debug, failures at warn), and
//! the caller's deadline.
//!
//! The deadline: tonic's server ends a call whose `grpc-timeout` has passed
//! with `Cancelled`, where grpc-go's servers (containerd, CRI-O) answer
//! `DeadlineExceeded`, the code CRI clients check for (critest's "public
//! image should timeout if requested"). So this layer ends the call itself
//! at the deadline, 1 ms early: tonic's own timer rounds to the same
//! millisecond tick or a later one, and on that tick it looks at the call's
//! answer before its timer, so this layer's answer is the one sent.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
    RB: Default + Send + 'static,
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
        let deadline = grpc_timeout(req.headers()).map(|t| t.saturating_sub(DEADLINE_MARGIN));
        Box::pin(async move {
            let call = inner.call(req).instrument(span.clone());
            let result = match deadline {
                None => call.await,
                Some(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(result) => result,
                    Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                        "the caller's deadline of {limit:?} (less {DEADLINE_MARGIN:?}) passed"
                    ))
                    .into_http()),
                },
            };
            span.in_scope(|| match &result {
                Ok(resp) => log_outcome(&rpc, resp.headers(), started.elapsed().as_micros()),
                Err(_) => tracing::warn!("transport error"),
            });
            result
        })
    }
}

/// How much earlier than the caller's deadline a call is ended.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1);

/// The `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
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

    /// A call that never answers, as a pull from a stalled registry.
    #[derive(Clone)]
    struct Stalls;

    impl Service<http::Request<()>> for Stalls {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Pending<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::pending()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_the_callers_deadline_is_deadline_exceeded() {
        let mut svc = RpcLogLayer.layer(Stalls);
        let req = http::Request::builder()
            .uri("/runtime.v1.ImageService/PullImage")
            .header("grpc-timeout", "20m")
            .body(())
            .unwrap();
        // Paused time jumps to the next timer: the deadline's, or, were
        // there none, the hour's.
        let resp = tokio::select! {
            resp = svc.call(req) => resp.unwrap(),
            () = tokio::time::sleep(Duration::from_secs(3600)) => panic!("no answer at the deadline"),
        };
        let status = tonic::Status::from_header_map(resp.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
        assert!(status.message().contains("deadline"), "{status:?}");
    }

    #[test]
    fn grpc_timeouts_parse_and_junk_is_none() {
        let with = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-timeout", http::HeaderValue::from_str(v).unwrap());
            grpc_timeout(&h)
        };
        assert_eq!(with("1m"), Some(Duration::from_millis(1)));
        assert_eq!(with("999u"), Some(Duration::from_micros(999)));
        assert_eq!(with("2S"), Some(Duration::from_secs(2)));
        assert_eq!(with("3H"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(with("5n"), Some(Duration::from_nanos(5)));
        for junk in ["", "m", "12", "1x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(with(junk), None, "{junk:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

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
