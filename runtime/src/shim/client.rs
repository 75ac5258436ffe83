//! The daemon's side of the shim protocol (async).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;

use super::protocol::{files, Request, Response, State};
use crate::container::Error;

/// How long a request (but `Wait`) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Talks to one container's shim.
#[derive(Debug, Clone)]
pub struct ShimClient {
    id: String,
    socket: PathBuf,
}

impl ShimClient {
    /// The client of the shim whose bundle is `bundle`.
    pub fn new(id: &str, bundle: &Path) -> ShimClient {
        ShimClient {
            id: id.to_string(),
            socket: bundle.join(files::SOCKET),
        }
    }

    /// Sends `Attach` and, once the shim agreed, hands back the connection,
    /// which then carries frames both ways.
    pub async fn attach(&self, stdin: bool) -> Result<UnixStream, Error> {
        let socket = |action: &str| {
            let (id, action) = (self.id.clone(), action.to_string());
            move |source| Error::Socket { id, action, source }
        };
        let protocol = |action: &'static str| {
            let id = self.id.clone();
            move |source| Error::Protocol { id, action, source }
        };
        let mut stream = connect(&self.socket).await.map_err(|e| Error::Refused {
            id: self.id.clone(),
            message: format!("cannot attach: the container is not running ({e})"),
        })?;
        let mut line =
            serde_json::to_vec(&Request::Attach { stdin }).map_err(protocol("encoding Attach"))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(socket("sending Attach"))?;
        // Read the answer byte by byte: frames may follow it at once.
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut byte)
                .await
                .map_err(socket("reading the answer to Attach"))?;
            if n == 0 || byte[0] == b'\n' {
                break;
            }
            answer.push(byte[0]);
        }
        match serde_json::from_slice::<Response>(&answer)
            .map_err(protocol("decoding the answer to Attach"))?
        {
            Response::Ok { .. } => Ok(stream),
            Response::Error { message, kind } => Err(Error::said(&self.id, kind, message)),
        }
    }

    /// Sends one request and reads the answer; `Ok(None)` when the shim is
    /// gone (its socket refuses), so the caller falls back to the files.
    pub async fn call(&self, request: &Request) -> Result<Option<Option<State>>, Error> {
        let failed = |reason: String| Error::Shim {
            id: self.id.clone(),
            reason,
        };
        let socket = |action: String| {
            let id = self.id.clone();
            move |source| Error::Socket { id, action, source }
        };
        let protocol = |action: &'static str| {
            let id = self.id.clone();
            move |source| Error::Protocol { id, action, source }
        };
        let mut stream = match connect(&self.socket).await {
            Ok(s) => s,
            // No shim, or one closing its socket as it exits (a connection
            // still in its backlog is reset).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(socket(format!("connect {}", self.socket.display()))(e)),
        };
        let mut line = serde_json::to_vec(request).map_err(protocol("encoding the request"))?;
        line.push(b'\n');
        let exchange = async {
            stream.write_all(&line).await?;
            let mut reader = BufReader::new(stream);
            let mut answer = String::new();
            reader.read_line(&mut answer).await?;
            Ok::<String, std::io::Error>(answer)
        };
        let answer = if matches!(request, Request::Wait) {
            exchange.await
        } else {
            tokio::time::timeout(CALL_TIMEOUT, exchange)
                .await
                .map_err(|_| failed(format!("no answer to {request:?} in {CALL_TIMEOUT:?}")))?
        };
        let answer = match answer {
            Ok(a) => a,
            // The shim exited between our connect and its answer.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(socket(format!("{request:?}"))(e)),
        };
        if answer.is_empty() {
            // The shim closed the connection: it exited meanwhile.
            return Ok(None);
        }
        match serde_json::from_str::<Response>(&answer).map_err(protocol("decoding the answer"))? {
            Response::Ok { state } => Ok(Some(state)),
            Response::Error { message, kind } => Err(Error::said(&self.id, kind, message)),
        }
    }
}

/// Connects to `socket`, however long its path (see [`super::protocol::socket_address`]).
async fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let (_dir, addr) = super::protocol::socket_address(socket)?;
    UnixStream::connect(addr).await
}
