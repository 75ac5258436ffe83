//! What a remotecommand session looks like once the transport (SPDY or
//! WebSocket) has been set up: input receivers and output sinks.

use tokio::sync::mpsc;

use super::spdy::StreamWriter;

/// One output of a session: a SPDY stream or a WebSocket channel.
#[derive(Debug, Clone)]
pub enum Sink {
    /// A SPDY stream.
    Spdy(StreamWriter),
    /// A WebSocket channel: messages are `[channel][data]`.
    Ws {
        /// The channel byte.
        channel: u8,
        /// The connection's writer.
        tx: mpsc::Sender<WsOut>,
    },
}

/// What the WebSocket writer sends.
#[derive(Debug)]
pub enum WsOut {
    /// A binary message.
    Binary(Vec<u8>),
    /// The answer to a ping.
    Pong(Vec<u8>),
    /// Close the connection (normal closure).
    Close,
}

impl Sink {
    /// Sends `data`; false once the peer is gone.
    pub async fn write(&self, data: Vec<u8>) -> bool {
        match self {
            Sink::Spdy(w) => w.write(data).await,
            Sink::Ws { channel, tx } => {
                let mut msg = Vec::with_capacity(data.len() + 1);
                msg.push(*channel);
                msg.extend_from_slice(&data);
                tx.send(WsOut::Binary(msg)).await.is_ok()
            }
        }
    }

    /// Ends this output (SPDY: FIN; WebSocket: nothing per channel, the
    /// connection's close ends them all).
    pub async fn close(&self) {
        if let Sink::Spdy(w) = self {
            w.close().await;
        }
    }
}

/// The streams of one exec or attach session.
#[derive(Debug)]
pub struct Channels {
    /// Input for the process; the receiver ends at the client's EOF.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// The process's stdout (with a tty: all its output).
    pub stdout: Option<Sink>,
    /// The process's stderr (never with a tty).
    pub stderr: Option<Sink>,
    /// Terminal size events, JSON objects back to back.
    pub resize: Option<mpsc::Receiver<Vec<u8>>>,
    /// Where the final status goes.
    pub error: Option<Sink>,
    /// Turns true when the client has gone away.
    pub gone: tokio::sync::watch::Receiver<bool>,
}

/// Resolves once `gone` turns true (or its sender is dropped).
pub async fn client_gone(gone: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = gone.wait_for(|g| *g).await;
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Splits a byte stream of back-to-back JSON objects into sizes; keeps an
/// incomplete tail in `pending`. Bad objects are skipped.
pub fn take_sizes(pending: &mut Vec<u8>) -> Vec<TermSize> {
    let mut sizes = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(pending).into_iter::<TermSize>();
    let mut consumed = 0;
    loop {
        match stream.next() {
            Some(Ok(size)) => {
                consumed = stream.byte_offset();
                sizes.push(size);
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(_)) => {
                // Skip to after the next '}' and go on.
                match pending[consumed..].iter().position(|b| *b == b'}') {
                    Some(end) => {
                        consumed += end + 1;
                        let rest = pending.split_off(consumed);
                        *pending = rest;
                        let mut more = take_sizes(pending);
                        sizes.append(&mut more);
                        return sizes;
                    }
                    None => {
                        pending.clear();
                        return sizes;
                    }
                }
            }
            None => break,
        }
    }
    pending.drain(..consumed);
    sizes
}

/// The final status of a session, as the v4 (and later) remotecommand
/// protocols carry it: a Kubernetes `metav1.Status` as JSON.
pub fn status_json(exit: Result<i32, String>) -> Vec<u8> {
    let value = match exit {
        Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(message) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
        }),
    };
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_split_across_reads() {
        let mut p = br#"{"Width":80,"Height":24}{"Width":1"#.to_vec();
        assert_eq!(
            take_sizes(&mut p),
            vec![TermSize {
                width: 80,
                height: 24
            }]
        );
        p.extend_from_slice(br#"20,"Height":40}"#);
        assert_eq!(
            take_sizes(&mut p),
            vec![TermSize {
                width: 120,
                height: 40
            }]
        );
        assert!(p.is_empty());
        let mut bad = br#"{"Width":"x"}{"Width":3,"Height":4}"#.to_vec();
        assert_eq!(
            take_sizes(&mut bad),
            vec![TermSize {
                width: 3,
                height: 4
            }]
        );
    }

    #[test]
    fn statuses() {
        let ok: serde_json::Value = serde_json::from_slice(&status_json(Ok(0))).expect("json");
        assert_eq!(ok["status"], "Success");
        let three: serde_json::Value = serde_json::from_slice(&status_json(Ok(3))).expect("json");
        assert_eq!(three["reason"], "NonZeroExitCode");
        assert_eq!(three["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(three["details"]["causes"][0]["message"], "3");
        let err: serde_json::Value =
            serde_json::from_slice(&status_json(Err("boom".into()))).expect("json");
        assert_eq!(err["status"], "Failure");
        assert_eq!(err["message"], "boom");
    }
}
