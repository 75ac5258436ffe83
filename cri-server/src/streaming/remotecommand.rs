//! The remotecommand protocols (exec and attach): version negotiation and
//! turning a SPDY session or a WebSocket connection into [`Channels`].

use std::time::Duration;

use tokio::sync::mpsc;

use super::channels::{Channels, Sink, WsOut};
use super::spdy::Session;
use super::tokens::Pending;

/// SPDY remotecommand versions served, best first.
pub const SPDY_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// WebSocket remotecommand subprotocols served (binary framing), best
/// first. v5 adds the close signal `[255, channel]` (stdin EOF).
pub const WS_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];

/// The SPDY port-forward protocol.
pub const PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";

/// WebSocket channel numbers.
pub mod ws_channel {
    /// Client to server: input.
    pub const STDIN: u8 = 0;
    /// Server to client: output.
    pub const STDOUT: u8 = 1;
    /// Server to client: error output.
    pub const STDERR: u8 = 2;
    /// Server to client: the final status.
    pub const ERROR: u8 = 3;
    /// Client to server: terminal size.
    pub const RESIZE: u8 = 4;
    /// Client to server (v5): `[255, channel]` closes `channel`.
    pub const CLOSE: u8 = 255;
}

/// The first protocol of `ours` the client offered (offers are header
/// values, possibly comma-separated), if any.
pub fn negotiate<'a>(offered: &[String], ours: &[&'a str]) -> Option<&'a str> {
    let offered: Vec<&str> = offered
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    // The client's order is its preference, as kubelet honours it.
    offered
        .iter()
        .find_map(|o| ours.iter().find(|p| **p == *o).copied())
}

/// Whether the v1-v3 plain-text error stream applies (no status JSON).
pub fn plain_errors(protocol: &str) -> bool {
    !matches!(protocol, "v4.channel.k8s.io" | "v5.channel.k8s.io")
}

/// Which streams a session will have.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// Input.
    pub stdin: bool,
    /// Output.
    pub stdout: bool,
    /// Error output (never with a tty).
    pub stderr: bool,
    /// A terminal (then a resize stream).
    pub tty: bool,
}

/// The streams of an exec or attach request (`None` for port forwarding).
pub fn wanted(p: &Pending) -> Option<Wanted> {
    let (stdin, stdout, stderr, tty) = match p {
        Pending::Exec(t) => (t.stdin, t.stdout, t.stderr, t.tty),
        Pending::Attach(t) => (t.stdin, t.stdout, t.stderr, t.tty),
        Pending::PortForward(_) => return None,
    };
    Some(Wanted {
        stdin,
        stdout,
        stderr,
        tty,
    })
}

/// Collects the streams a SPDY client opens for a session: error, then
/// those of `wanted`, in any order, within `timeout`. Streams of an unknown
/// type are reset.
pub async fn spdy_channels(
    session: &mut Session,
    wanted: Wanted,
    protocol: &str,
    timeout: Duration,
) -> Result<Channels, String> {
    let mut ch = Channels {
        stdin: None,
        stdout: None,
        stderr: None,
        resize: None,
        error: None,
        gone: session.gone(),
    };
    // v1 has no error stream; v2 added it; v3 added resize.
    let has_error = protocol != "channel.k8s.io";
    let has_resize = wanted.tty && matches!(protocol, "v3.channel.k8s.io" | "v4.channel.k8s.io");
    let complete = |ch: &Channels| {
        (!has_error || ch.error.is_some())
            && (!wanted.stdin || ch.stdin.is_some())
            && (!wanted.stdout || ch.stdout.is_some())
            && (!wanted.stderr || wanted.tty || ch.stderr.is_some())
            && (!has_resize || ch.resize.is_some())
    };
    let deadline = tokio::time::Instant::now() + timeout;
    while !complete(&ch) {
        let stream = match tokio::time::timeout_at(deadline, session.accept()).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err("the client closed the connection".into()),
            Err(_) => {
                return Err(format!(
                    "the client did not open its streams within {timeout:?}"
                ))
            }
        };
        match stream.header("streamtype") {
            Some("error") => ch.error = Some(Sink::Spdy(stream.writer)),
            Some("stdin") => ch.stdin = Some(stream.data),
            Some("stdout") => ch.stdout = Some(Sink::Spdy(stream.writer)),
            Some("stderr") => ch.stderr = Some(Sink::Spdy(stream.writer)),
            Some("resize") => ch.resize = Some(stream.data),
            other => {
                tracing::debug!(stream = stream.id, streamtype = ?other, "remotecommand: unexpected stream");
                stream.writer.reset().await;
            }
        }
    }
    Ok(ch)
}

/// The channels of a WebSocket session: `incoming` carries the client's
/// binary messages (`[channel][data]`), `out` the server's.
pub fn ws_channels(
    wanted: Wanted,
    protocol: &str,
    out: &mpsc::Sender<WsOut>,
    gone: tokio::sync::watch::Receiver<bool>,
) -> (Channels, WsInput) {
    let sink = |channel: u8| Sink::Ws {
        channel,
        tx: out.clone(),
    };
    let (stdin_tx, stdin_rx) = mpsc::channel(16);
    let (resize_tx, resize_rx) = mpsc::channel(4);
    let ch = Channels {
        stdin: wanted.stdin.then_some(stdin_rx),
        stdout: wanted.stdout.then(|| sink(ws_channel::STDOUT)),
        stderr: (wanted.stderr && !wanted.tty).then(|| sink(ws_channel::STDERR)),
        resize: wanted.tty.then_some(resize_rx),
        error: Some(sink(ws_channel::ERROR)),
        gone,
    };
    let input = WsInput {
        stdin: wanted.stdin.then_some(stdin_tx),
        resize: wanted.tty.then_some(resize_tx),
        closable: protocol == "v5.channel.k8s.io",
    };
    (ch, input)
}

/// Routes the client's WebSocket messages to a session's inputs.
#[derive(Debug)]
pub struct WsInput {
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    resize: Option<mpsc::Sender<Vec<u8>>>,
    closable: bool,
}

impl WsInput {
    /// Delivers one binary message.
    pub async fn deliver(&mut self, msg: &[u8]) {
        let Some((&channel, data)) = msg.split_first() else {
            return;
        };
        match channel {
            ws_channel::STDIN => {
                if let Some(tx) = &self.stdin {
                    if !data.is_empty() && tx.send(data.to_vec()).await.is_err() {
                        self.stdin = None;
                    }
                }
            }
            ws_channel::RESIZE => {
                if let Some(tx) = &self.resize {
                    let _ = tx.send(data.to_vec()).await;
                }
            }
            ws_channel::CLOSE if self.closable => match data.first() {
                Some(&ws_channel::STDIN) => self.stdin = None,
                Some(&ws_channel::RESIZE) => self.resize = None,
                _ => {}
            },
            _ => {}
        }
    }

    /// The client is gone: every input ends.
    pub fn close_all(&mut self) {
        self.stdin = None;
        self.resize = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_client_and_splits_lists() {
        let offered = vec![
            "v5.channel.k8s.io, v4.channel.k8s.io".to_string(),
            "v3.channel.k8s.io".to_string(),
        ];
        assert_eq!(
            negotiate(&offered, SPDY_PROTOCOLS),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(negotiate(&offered, WS_PROTOCOLS), Some("v5.channel.k8s.io"));
        assert_eq!(
            negotiate(&["v9.channel.k8s.io".into()], SPDY_PROTOCOLS),
            None
        );
        assert_eq!(negotiate(&[], SPDY_PROTOCOLS), None);
        assert!(plain_errors("v3.channel.k8s.io"));
        assert!(!plain_errors("v4.channel.k8s.io"));
    }

    #[tokio::test]
    async fn ws_input_routes_channels_and_v5_close() {
        let (out, _rx) = mpsc::channel(4);
        let (_gone_tx, gone) = tokio::sync::watch::channel(false);
        let wanted = Wanted {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        let (mut ch, mut input) = ws_channels(wanted, "v5.channel.k8s.io", &out, gone);
        assert!(ch.stderr.is_none(), "no stderr with a tty");
        input.deliver(&[0, b'h', b'i']).await;
        input.deliver(&[4, b'{', b'}']).await;
        input.deliver(&[255, 0]).await;
        let mut stdin = ch.stdin.take().expect("stdin");
        assert_eq!(stdin.recv().await, Some(b"hi".to_vec()));
        assert_eq!(stdin.recv().await, None, "closed by [255, 0]");
        let mut resize = ch.resize.take().expect("resize");
        assert_eq!(resize.recv().await, Some(b"{}".to_vec()));
    }
}
