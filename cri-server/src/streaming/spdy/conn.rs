//! A server-side SPDY/3.1 session over an upgraded HTTP connection: the
//! client opens streams (SYN_STREAM), each is answered at once (SYN_REPLY)
//! and handed to the caller as an [`Incoming`] stream with a receiver of
//! its data and a [`StreamWriter`]. PINGs are echoed; SETTINGS and
//! WINDOW_UPDATE are read and ignored (the clients do not enforce flow
//! control either). One task reads, one writes; both end with the
//! connection.

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;

use super::frame::{rst, Frame, FrameReader, FrameWriter, Headers};

/// How many data chunks may wait per stream before the reader waits.
const STREAM_QUEUE: usize = 16;
/// How many frames may wait for the writer.
const WRITE_QUEUE: usize = 64;
/// How many opened streams may wait for the handler.
const ACCEPT_QUEUE: usize = 16;

/// A stream the client opened.
#[derive(Debug)]
pub struct Incoming {
    /// Its id.
    pub id: u32,
    /// Its SYN_STREAM headers (names lower-case).
    pub headers: Headers,
    /// Its data; ends when the client half-closes (FIN) or resets it.
    pub data: mpsc::Receiver<Vec<u8>>,
    /// Our side of it.
    pub writer: StreamWriter,
}

impl Incoming {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes on one stream.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    id: u32,
    tx: mpsc::Sender<Frame>,
}

impl StreamWriter {
    /// Sends `data`; false once the connection is gone.
    pub async fn write(&self, data: Vec<u8>) -> bool {
        if data.is_empty() {
            return true;
        }
        self.tx
            .send(Frame::Data {
                stream_id: self.id,
                fin: false,
                data,
            })
            .await
            .is_ok()
    }

    /// Half-closes the stream (an empty DATA frame with FIN).
    pub async fn close(&self) {
        let _ = self
            .tx
            .send(Frame::Data {
                stream_id: self.id,
                fin: true,
                data: Vec::new(),
            })
            .await;
    }

    /// Resets the stream.
    pub async fn reset(&self) {
        let _ = self
            .tx
            .send(Frame::RstStream {
                stream_id: self.id,
                status: rst::CANCEL,
            })
            .await;
    }
}

/// The session: streams arrive on [`Session::accept`].
#[derive(Debug)]
pub struct Session {
    incoming: mpsc::Receiver<Incoming>,
    tx: Option<mpsc::Sender<Frame>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    gone: tokio::sync::watch::Receiver<bool>,
}

impl Session {
    /// Starts reading and writing frames on `io`.
    pub fn start<IO>(io: IO) -> Session
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let (incoming_tx, incoming) = mpsc::channel(ACCEPT_QUEUE);
        let (gone_tx, gone) = tokio::sync::watch::channel(false);
        let writer = tokio::spawn(write_frames(write, rx));
        let reader_tx = tx.clone();
        let reader = tokio::spawn(async move {
            read_frames(read, reader_tx, incoming_tx).await;
            let _ = gone_tx.send(true);
        });
        Session {
            incoming,
            tx: Some(tx),
            tasks: vec![reader, writer],
            gone,
        }
    }

    /// Turns true once the client has closed the connection (or sent
    /// GOAWAY, or broken the protocol).
    pub fn gone(&self) -> tokio::sync::watch::Receiver<bool> {
        self.gone.clone()
    }

    /// The next stream the client opens; `None` once the connection is gone.
    pub async fn accept(&mut self) -> Option<Incoming> {
        self.incoming.recv().await
    }

    /// Says goodbye and lets the writer flush what is queued.
    pub async fn close(mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx
                .send(Frame::GoAway {
                    last_good_stream_id: 0,
                    status: 0,
                })
                .await;
        }
        self.incoming.close();
        // The writer ends once every StreamWriter is dropped; the reader
        // when the client closes. Wait for the writer only, bounded.
        if let Some(reader) = self.tasks.first() {
            reader.abort();
        }
        if let Some(writer) = self.tasks.pop() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn write_frames<W: AsyncWrite>(write: W, mut rx: mpsc::Receiver<Frame>) {
    let mut write = std::pin::pin!(write);
    let mut codec = FrameWriter::default();
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Some(frame) = rx.recv().await {
        buf.clear();
        codec.encode(&frame, &mut buf);
        // Batch what is already queued into one write.
        while buf.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(next) => codec.encode(&next, &mut buf),
                Err(_) => break,
            }
        }
        if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

async fn read_frames<R: AsyncRead>(
    read: R,
    tx: mpsc::Sender<Frame>,
    incoming: mpsc::Sender<Incoming>,
) {
    let mut read = std::pin::pin!(read);
    let mut codec = FrameReader::default();
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut streams: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    loop {
        loop {
            let frame = match codec.parse(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY: closing the connection");
                    let _ = tx
                        .send(Frame::GoAway {
                            last_good_stream_id: 0,
                            status: rst::PROTOCOL_ERROR,
                        })
                        .await;
                    return;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                    ..
                } => {
                    if stream_id == 0 || streams.contains_key(&stream_id) {
                        let _ = tx
                            .send(Frame::RstStream {
                                stream_id,
                                status: rst::STREAM_IN_USE,
                            })
                            .await;
                        continue;
                    }
                    let (data_tx, data) = mpsc::channel(STREAM_QUEUE);
                    if !fin {
                        streams.insert(stream_id, data_tx);
                    }
                    let _ = tx
                        .send(Frame::SynReply {
                            stream_id,
                            fin: false,
                            headers: Vec::new(),
                        })
                        .await;
                    let stream = Incoming {
                        id: stream_id,
                        headers,
                        data,
                        writer: StreamWriter {
                            id: stream_id,
                            tx: tx.clone(),
                        },
                    };
                    if incoming.send(stream).await.is_err() {
                        // Nobody takes streams any more.
                        let _ = tx
                            .send(Frame::RstStream {
                                stream_id,
                                status: rst::REFUSED_STREAM,
                            })
                            .await;
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    match streams.get(&stream_id) {
                        Some(s) => {
                            if !data.is_empty() && s.send(data).await.is_err() {
                                // The handler dropped the receiver: discard.
                            }
                        }
                        None => {
                            let _ = tx
                                .send(Frame::RstStream {
                                    stream_id,
                                    status: rst::INVALID_STREAM,
                                })
                                .await;
                        }
                    }
                    if fin {
                        streams.remove(&stream_id);
                    }
                }
                Frame::Headers { stream_id, fin, .. } => {
                    if fin {
                        streams.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    streams.remove(&stream_id);
                }
                Frame::Ping { id } => {
                    let _ = tx.send(Frame::Ping { id }).await;
                }
                Frame::GoAway { .. } => return,
                Frame::SynReply { .. }
                | Frame::Settings
                | Frame::WindowUpdate { .. }
                | Frame::Unknown { .. } => {}
            }
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
