//! The streaming server: the HTTP/1.1 endpoint behind the URLs that the
//! Exec, Attach and PortForward RPCs return.
//!
//! An RPC validates its request and stores it under a single-use token
//! ([`tokens`]); the client then connects to `/{exec,attach,portforward}/
//! TOKEN` and upgrades the connection to SPDY/3.1 (`X-Stream-Protocol-
//! Version` negotiation, [`spdy`]) or to WebSocket (`Sec-WebSocket-
//! Protocol`: `v5.channel.k8s.io` and older for exec and attach,
//! `SPDY/3.1+portforward.k8s.io` — SPDY tunnelled in WebSocket messages —
//! for port forwarding, as crictl 1.34 speaks them).

pub mod channels;
pub mod portforward;
pub mod remotecommand;
pub mod session;
pub mod spdy;
pub mod tokens;
mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use corten_runtime::container::ContainerRuntime;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tonic::Status;

use self::remotecommand::{
    negotiate, plain_errors, spdy_channels, wanted, PORTFORWARD_PROTOCOL, SPDY_PROTOCOLS,
};
use self::tokens::{Limits, OsRandom, Pending, Tokens};

/// How long tokens stay valid and how many may wait (kubelet's streaming
/// library has the same TTL and total); see [`tokens`] for what happens
/// past them.
const TOKEN_LIMITS: Limits = Limits {
    ttl: Duration::from_secs(60),
    cap: 1000,
    per_target: 100,
};
/// How long a client has to open the streams of a session.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The running server.
#[derive(Debug)]
pub struct Streaming {
    tokens: Tokens,
    base: String,
    idle: Duration,
    runtime: ContainerRuntime,
}

impl Streaming {
    /// Binds `address:port` and serves in the background.
    pub async fn start(
        address: &str,
        port: u16,
        idle: Duration,
        runtime: ContainerRuntime,
    ) -> anyhow::Result<Arc<Streaming>> {
        let ip: std::net::IpAddr = address
            .parse()
            .with_context(|| format!("streaming address {address:?}"))?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, port))
            .await
            .with_context(|| format!("cannot listen on {address}:{port} for streaming"))?;
        let local = listener.local_addr().context("streaming address")?;
        let server = Arc::new(Streaming {
            tokens: Tokens::new(TOKEN_LIMITS, Box::new(OsRandom)),
            base: format!("http://{local}"),
            idle,
            runtime,
        });
        tracing::info!(address = %local, "streaming server ready");
        let s = server.clone();
        tokio::spawn(async move { s.serve(listener).await });
        Ok(server)
    }

    /// The URL a client connects to for `p`.
    pub fn url(&self, p: Pending) -> Result<String, Status> {
        let kind = p.kind();
        let token = self.tokens.insert(p).map_err(|e| {
            tracing::error!(error = %e, "no streaming URL issued");
            Status::from(e)
        })?;
        Ok(format!("{}/{kind}/{token}", self.base))
    }

    async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "streaming accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let s = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(s.handle(req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "streaming connection");
                }
            });
        }
    }

    async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
        }
        let mut parts = req.uri().path().trim_start_matches('/').splitn(2, '/');
        let (kind, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let Some(pending) = self.tokens.take(kind, token) else {
            return text(
                StatusCode::NOT_FOUND,
                "unknown, used or expired streaming token",
            );
        };
        tracing::debug!(kind, "streaming request");
        if websocket::is_upgrade(&req) {
            return websocket::upgrade(self, req, pending);
        }
        let headers = req.headers();
        let has = |name: header::HeaderName, want: &str| {
            headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains(want))
            })
        };
        if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "spdy/3.1") {
            return text(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: missing upgrade headers in request (SPDY/3.1 or websocket)",
            );
        }
        let offered: Vec<String> = headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        if offered.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: X-Stream-Protocol-Version is required",
            );
        }
        let ours: &[&str] = match pending {
            Pending::PortForward(_) => &[PORTFORWARD_PROTOCOL],
            _ => SPDY_PROTOCOLS,
        };
        let Some(protocol) = negotiate(&offered, ours) else {
            let mut resp = text(
                StatusCode::FORBIDDEN,
                &format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {ours:?}"
                ),
            );
            for p in ours {
                resp.headers_mut().append(
                    "x-accepted-stream-protocol-versions",
                    HeaderValue::from_static(p),
                );
            }
            return resp;
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        let s = self.clone();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let session = spdy::Session::start(TokioIo::new(upgraded));
                    s.run_spdy(session, pending, protocol).await;
                }
                Err(e) => tracing::debug!(error = %e, "SPDY upgrade failed"),
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.insert(
            "x-stream-protocol-version",
            HeaderValue::from_static(protocol),
        );
        resp
    }

    async fn run_spdy(&self, mut session: spdy::Session, pending: Pending, protocol: &str) {
        let Some(streams) = wanted(&pending) else {
            if let Pending::PortForward(target) = pending {
                portforward::serve_spdy(session, target, self.idle).await;
            }
            return;
        };
        match spdy_channels(&mut session, streams, protocol, STREAM_CREATION_TIMEOUT).await {
            Ok(ch) => {
                let plain = plain_errors(protocol);
                session::run(&self.runtime, pending, ch, self.idle, plain).await;
            }
            Err(e) => tracing::debug!(kind = pending.kind(), error = %e, "streaming session"),
        }
        session.close().await;
    }
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
