//! Port forwarding: each forwarded connection is a pair of streams (SPDY)
//! or of channels (WebSocket), data and error, naming a port; the data is
//! copied to and from a TCP connection made to that port on the loopback
//! address inside the pod's network namespace.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use super::channels::Sink;
use super::spdy::{Incoming, Session};
use super::tokens::PortForwardTarget;

/// How long connecting to the pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the error stream of a pair may wait for its data stream.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to `port` in the pod.
pub async fn connect(netns: Option<PathBuf>, port: u16) -> Result<tokio::net::TcpStream, String> {
    let stream = tokio::task::spawn_blocking(move || {
        corten_runtime::linux::connect_in_netns(netns.as_deref(), port, CONNECT_TIMEOUT)
    })
    .await
    .map_err(|e| format!("connect task: {e}"))?
    .map_err(|e| format!("cannot connect to port {port} in the pod: {e}"))?;
    stream
        .set_nonblocking(true)
        .map_err(|e| format!("socket: {e}"))?;
    tokio::net::TcpStream::from_std(stream).map_err(|e| format!("socket: {e}"))
}

/// Copies between the client's data and the pod's socket. `input` ends at
/// the client's half-close (then the socket's write side is shut down);
/// the socket's end-of-file half-closes `output`.
pub async fn relay(
    socket: tokio::net::TcpStream,
    mut input: mpsc::Receiver<Vec<u8>>,
    output: Sink,
    idle: Duration,
) {
    let (mut read, mut write) = socket.into_split();
    let upstream = async move {
        while let Some(data) = input.recv().await {
            if write.write_all(&data).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
        // Keep the write half alive until the other direction ends.
        std::future::pending::<()>().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match tokio::time::timeout(idle, read.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => {
                    if !output.write(buf[..n].to_vec()).await {
                        break;
                    }
                }
            }
        }
        output.close().await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// Serves a SPDY port-forward session until the client closes it.
pub async fn serve_spdy(mut session: Session, target: PortForwardTarget, idle: Duration) {
    // requestID -> the error stream waiting for its data stream.
    let mut waiting: HashMap<String, (Incoming, tokio::time::Instant)> = HashMap::new();
    // Forwards under way: the session is idle only when none is.
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let next = tokio::time::timeout(idle, session.accept()).await;
        let stream = match next {
            Ok(Some(s)) => s,
            Err(_) if active.load(Ordering::Relaxed) > 0 => continue,
            Ok(None) | Err(_) => break,
        };
        let now = tokio::time::Instant::now();
        waiting.retain(|_, (_, since)| now.duration_since(*since) < PAIR_TIMEOUT);
        let request = stream.header("requestid").unwrap_or("").to_string();
        match stream.header("streamtype") {
            Some("error") => {
                waiting.insert(request, (stream, now));
            }
            Some("data") => {
                let error = waiting.remove(&request).map(|(s, _)| s);
                let port = stream.header("port").and_then(|p| p.parse::<u16>().ok());
                let netns = target.netns.clone();
                let active = active.clone();
                active.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    forward_pair(stream, error, port, netns, idle).await;
                    active.fetch_sub(1, Ordering::Relaxed);
                });
            }
            other => {
                tracing::debug!(streamtype = ?other, "port-forward: unexpected stream");
                stream.writer.reset().await;
            }
        }
    }
    session.close().await;
}

async fn forward_pair(
    data: Incoming,
    error: Option<Incoming>,
    port: Option<u16>,
    netns: Option<PathBuf>,
    idle: Duration,
) {
    let Some(port) = port.filter(|p| *p > 0) else {
        report(error, "invalid or missing port header").await;
        data.writer.reset().await;
        return;
    };
    match connect(netns, port).await {
        Ok(socket) => {
            let sink = Sink::Spdy(data.writer.clone());
            relay(socket, data.data, sink, idle).await;
            if let Some(e) = error {
                e.writer.close().await;
            }
        }
        Err(message) => {
            tracing::debug!(port, error = %message, "port-forward connect failed");
            report(error, &message).await;
            data.writer.close().await;
        }
    }
}

async fn report(error: Option<Incoming>, message: &str) {
    if let Some(e) = error {
        let _ = e.writer.write(message.as_bytes().to_vec()).await;
        e.writer.close().await;
    }
}
