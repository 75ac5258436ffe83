//! A streaming exec as kubectl makes it through kubelet: the Exec RPC for
//! a URL, then the command over that URL's WebSocket (`v4.channel.k8s.io`,
//! which the Kubernetes streaming server of both runtimes speaks), until
//! the status on the error channel and the close.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use corten_cri_api::v1 as k8s;
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

use crate::Runtime;

/// The channel a v4 server sends the command's status on.
const STATUS_CHANNEL: u8 = 3;

/// Runs `true` in container `id` over a streaming exec; the time from the
/// Exec RPC to the closed stream.
pub async fn exec_true(rt: &mut Runtime, id: &str) -> Result<Duration> {
    let started = Instant::now();
    let url = rt
        .exec(k8s::ExecRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await
        .context("Exec")?
        .into_inner()
        .url;
    let ws_url = match url.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}"),
        None => bail!("exec URL {url} is not plain http"),
    };
    let mut request = ws_url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "v4.channel.k8s.io".parse()?);
    let authority = request
        .uri()
        .authority()
        .context("exec URL has no host")?
        .to_string();
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .with_context(|| format!("connect {authority}"))?;
    tcp.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .with_context(|| format!("WebSocket handshake with {ws_url}"))?;
    let mut status = None;
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Binary(data)) if data.first() == Some(&STATUS_CHANNEL) => {
                status = Some(String::from_utf8_lossy(&data[1..]).into_owned());
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            // A server may drop the connection right after its status.
            Err(_) if status.is_some() => break,
            Err(e) => return Err(e).context("exec stream"),
        }
    }
    let elapsed = started.elapsed();
    let status = status.context("the exec stream ended without a status")?;
    ensure!(status.contains("Success"), "exec `true`: {status}");
    Ok(elapsed)
}
