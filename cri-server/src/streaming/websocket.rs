//! The WebSocket side of the streaming server: the handshake (RFC 6455,
//! subprotocol negotiation), remotecommand over `v5.channel.k8s.io` (and
//! v4, v1 binary), and port forwarding as SPDY tunnelled in binary messages
//! (`SPDY/3.1+portforward.k8s.io`).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::channels::{Sink, WsOut};
use super::remotecommand::{negotiate, plain_errors, wanted, ws_channels, Wanted, WS_PROTOCOLS};
use super::tokens::Pending;
use super::{portforward, session, text, Streaming};

/// The subprotocol of SPDY tunnelled in WebSocket, for port forwarding.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Whether `req` asks for a WebSocket upgrade.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    let upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = h.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("upgrade"))
    });
    upgrade && connection
}

/// Answers the handshake and runs the session in the background.
pub fn upgrade(
    server: Arc<Streaming>,
    mut req: Request<Incoming>,
    pending: Pending,
) -> Response<Full<Bytes>> {
    let h = req.headers();
    let Some(key) = h.get("sec-websocket-key").map(|k| k.as_bytes().to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    if h.get("sec-websocket-version").and_then(|v| v.to_str().ok()) != Some("13") {
        let mut resp = text(StatusCode::BAD_REQUEST, "WebSocket version 13 is required");
        resp.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return resp;
    }
    let offered: Vec<String> = h
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let ours: &[&str] = match pending {
        Pending::PortForward(_) => &[TUNNEL_PROTOCOL],
        _ => WS_PROTOCOLS,
    };
    let Some(protocol) = negotiate(&offered, ours) else {
        return text(
            StatusCode::FORBIDDEN,
            &format!("unable to negotiate a subprotocol: client offers {offered:?}, server accepts {ours:?}"),
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        match pending {
            Pending::PortForward(target) => {
                let (mine, theirs) = tokio::io::duplex(64 * 1024);
                let session = super::spdy::Session::start(mine);
                tokio::join!(
                    portforward::serve_spdy(session, target, server.idle),
                    tunnel(ws, theirs)
                );
            }
            other => {
                let Some(streams) = wanted(&other) else {
                    return;
                };
                let runtime = server.runtime.clone();
                let idle = server.idle;
                remotecommand(ws, streams, protocol, move |ch| async move {
                    session::run(&runtime, other, ch, idle, plain_errors(protocol)).await;
                })
                .await;
            }
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(&key)) {
        h.insert("sec-websocket-accept", accept);
    }
    h.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    resp
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Runs `body` over the channels of `ws`, then closes with 1000 (the
/// client decodes the status only after a clean close).
async fn remotecommand<F, Fut>(ws: Ws, wanted: Wanted, protocol: &str, body: F)
where
    F: FnOnce(super::channels::Channels) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<WsOut>(64);
    let (gone_tx, gone) = tokio::sync::watch::channel(false);
    let (ch, mut input) = ws_channels(wanted, protocol, &out_tx, gone);
    // Tell the client the session is up: an empty message on the lowest
    // channel it reads (as kubelet does; harmless to v5 clients).
    let first = ch
        .stdout
        .clone()
        .or_else(|| ch.stderr.clone())
        .or_else(|| ch.error.clone());
    let writer = tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            let result = match out {
                WsOut::Binary(b) => sink.send(Message::Binary(b.into())).await,
                WsOut::Pong(b) => sink.send(Message::Pong(b.into())).await,
                WsOut::Close => {
                    let frame = CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = sink.flush().await;
                    return;
                }
            };
            if result.is_err() {
                return;
            }
        }
    });
    let pongs = out_tx.clone();
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(b)) => input.deliver(&b).await,
                Ok(Message::Ping(p)) => {
                    let _ = pongs.send(WsOut::Pong(p.to_vec())).await;
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        input.close_all();
        let _ = gone_tx.send(true);
    });
    if let Some(Sink::Ws { channel, tx }) = first {
        let _ = tx.send(WsOut::Binary(vec![channel])).await;
    }
    body(ch).await;
    let _ = out_tx.send(WsOut::Close).await;
    drop(out_tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    reader.abort();
}

/// Carries a byte stream (`pipe`, the SPDY session's other end) in binary
/// WebSocket messages, both ways, until either side ends.
async fn tunnel(ws: Ws, pipe: tokio::io::DuplexStream) {
    let (mut sink, mut stream) = ws.split();
    let (mut pipe_read, mut pipe_write) = tokio::io::split(pipe);
    let (pong_tx, mut pong_rx) = mpsc::channel::<Vec<u8>>(4);
    let up = async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if pipe_write.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Ping(p)) => {
                    let _ = pong_tx.send(p.to_vec()).await;
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = pipe_write.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                n = pipe_read.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                            return;
                        }
                    }
                },
                Some(p) = pong_rx.recv() => {
                    let _ = sink.send(Message::Pong(p.into())).await;
                }
            }
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    };
    tokio::join!(up, down);
}
