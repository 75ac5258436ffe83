//! SPDY/3.1 frames: parsing and writing, with the header-block compression
//! of the spec (one zlib stream per direction, primed with the SPDY/3
//! dictionary, each block ended with a sync flush).
//!
//! Layouts (SPDY/3.1 draft, section 2.2 and 2.6):
//!
//! ```text
//! control: |1| version(15) | type(16) | flags(8) | length(24) | payload
//! data:    |0| stream-id(31)          | flags(8) | length(24) | payload
//! ```
//!
//! A header block is `count(32)` then `count` times `len(32) name len(32)
//! value`, compressed.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::DICTIONARY;

/// The protocol version this codec speaks.
pub const VERSION: u16 = 3;
/// FLAG_FIN: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL (SYN_STREAM): the recipient may not send.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// The largest frame payload accepted (the field is 24 bits).
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;
/// The largest decompressed header block accepted.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Control frame types.
mod kind {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const SETTINGS: u16 = 4;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    pub const WINDOW_UPDATE: u16 = 9;
}

/// RST_STREAM status codes used here.
pub mod rst {
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// INVALID_STREAM.
    pub const INVALID_STREAM: u32 = 2;
    /// REFUSED_STREAM.
    pub const REFUSED_STREAM: u32 = 3;
    /// CANCEL.
    pub const CANCEL: u32 = 5;
    /// STREAM_IN_USE.
    pub const STREAM_IN_USE: u32 = 8;
}

/// Header name/value pairs (names lower-case, as SPDY requires).
pub type Headers = Vec<(String, String)>;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Stream data.
    Data {
        /// The stream.
        stream_id: u32,
        /// Last frame of the sender on this stream.
        fin: bool,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A new stream.
    SynStream {
        /// The stream (odd when the client made it).
        stream_id: u32,
        /// The stream it is associated with (0: none).
        associated_to: u32,
        /// Priority 0 (highest) to 7.
        priority: u8,
        /// No data follows from the sender.
        fin: bool,
        /// The recipient may not send on it.
        unidirectional: bool,
        /// Its headers.
        headers: Headers,
    },
    /// The answer to a SYN_STREAM.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// No data follows from the sender.
        fin: bool,
        /// Its headers.
        headers: Headers,
    },
    /// Abnormal end of a stream.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why.
        status: u32,
    },
    /// Settings (read and ignored).
    Settings,
    /// Liveness probe; echoed by the receiver when the sender's parity is
    /// not its own.
    Ping {
        /// The ping id.
        id: u32,
    },
    /// The sender will open no more streams.
    GoAway {
        /// The last stream it accepted.
        last_good_stream_id: u32,
        /// Why.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// Last frame of the sender on this stream.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// Flow-control credit (tolerated, not enforced).
    WindowUpdate {
        /// The stream (0: the session).
        stream_id: u32,
        /// The credit.
        delta: u32,
    },
    /// A control frame of a type this codec does not know (skipped).
    Unknown {
        /// Its type.
        kind: u16,
    },
}

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A control frame of another SPDY version.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// A frame too short for its type, or a bad header block.
    #[error("malformed SPDY {what}: {why}")]
    Malformed {
        /// The frame type.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
}

fn malformed(what: &'static str, why: impl Into<String>) -> FrameError {
    FrameError::Malformed {
        what,
        why: why.into(),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A 31-bit stream id (the top bit is reserved).
fn id_at(b: &[u8], at: usize) -> u32 {
    u32_at(b, at) & 0x7fff_ffff
}

/// Reads frames from a byte stream, inflating header blocks.
pub struct FrameReader {
    inflate: Decompress,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameReader")
    }
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            inflate: Decompress::new(true),
        }
    }
}

impl FrameReader {
    /// Takes one whole frame off the front of `buf`, if `buf` holds one.
    pub fn parse(&mut self, buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = (u32_at(buf, 4) & 0x00ff_ffff) as usize;
        if buf.len() < 8 + length {
            return Ok(None);
        }
        let frame: Vec<u8> = buf.drain(..8 + length).collect();
        self.decode(&frame).map(Some)
    }

    fn decode(&mut self, f: &[u8]) -> Result<Frame, FrameError> {
        let flags = f[4];
        let fin = flags & FLAG_FIN != 0;
        let p = &f[8..];
        if f[0] & 0x80 == 0 {
            return Ok(Frame::Data {
                stream_id: id_at(f, 0),
                fin,
                data: p.to_vec(),
            });
        }
        let version = u16::from_be_bytes([f[0], f[1]]) & 0x7fff;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let ty = u16::from_be_bytes([f[2], f[3]]);
        let need = |what: &'static str, n: usize| {
            if p.len() < n {
                Err(malformed(what, format!("{} bytes, need {n}", p.len())))
            } else {
                Ok(())
            }
        };
        Ok(match ty {
            kind::SYN_STREAM => {
                need("SYN_STREAM", 10)?;
                Frame::SynStream {
                    stream_id: id_at(p, 0),
                    associated_to: id_at(p, 4),
                    priority: p[8] >> 5,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.headers("SYN_STREAM", &p[10..])?,
                }
            }
            kind::SYN_REPLY => {
                need("SYN_REPLY", 4)?;
                Frame::SynReply {
                    stream_id: id_at(p, 0),
                    fin,
                    headers: self.headers("SYN_REPLY", &p[4..])?,
                }
            }
            kind::HEADERS => {
                need("HEADERS", 4)?;
                Frame::Headers {
                    stream_id: id_at(p, 0),
                    fin,
                    headers: self.headers("HEADERS", &p[4..])?,
                }
            }
            kind::RST_STREAM => {
                need("RST_STREAM", 8)?;
                Frame::RstStream {
                    stream_id: id_at(p, 0),
                    status: u32_at(p, 4),
                }
            }
            kind::SETTINGS => Frame::Settings,
            kind::PING => {
                need("PING", 4)?;
                Frame::Ping { id: u32_at(p, 0) }
            }
            kind::GOAWAY => {
                need("GOAWAY", 4)?;
                Frame::GoAway {
                    last_good_stream_id: id_at(p, 0),
                    status: if p.len() >= 8 { u32_at(p, 4) } else { 0 },
                }
            }
            kind::WINDOW_UPDATE => {
                need("WINDOW_UPDATE", 8)?;
                Frame::WindowUpdate {
                    stream_id: id_at(p, 0),
                    delta: id_at(p, 4),
                }
            }
            other => Frame::Unknown { kind: other },
        })
    }

    /// Inflates and parses a header block (continuing this direction's
    /// zlib stream).
    fn headers(&mut self, what: &'static str, block: &[u8]) -> Result<Headers, FrameError> {
        let raw = self.inflate(what, block)?;
        parse_header_block(what, &raw)
    }

    fn inflate(&mut self, what: &'static str, mut input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(malformed(what, "header block too large"));
                }
                out.reserve(out.len().max(256));
            }
            let before_in = self.inflate.total_in();
            let before_out = self.inflate.total_out();
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let consumed = (self.inflate.total_in() - before_in) as usize;
            input = &input[consumed..];
            let produced = self.inflate.total_out() - before_out;
            match result {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {
                    if input.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                    if consumed == 0 && produced == 0 && out.len() < out.capacity() {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| malformed(what, format!("header dictionary: {e}")))?;
                }
                Err(e) => return Err(malformed(what, format!("header block: {e}"))),
            }
        }
        Ok(out)
    }
}

/// Parses an uncompressed header block.
pub fn parse_header_block(what: &'static str, raw: &[u8]) -> Result<Headers, FrameError> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], FrameError> {
        let end = at
            .checked_add(n)
            .filter(|e| *e <= raw.len())
            .ok_or_else(|| malformed(what, "header block cut short"))?;
        let s = &raw[at..end];
        at = end;
        Ok(s)
    };
    let count = u32_at(take(4)?, 0) as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = u32_at(take(4)?, 0) as usize;
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = u32_at(take(4)?, 0) as usize;
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        if name.is_empty() {
            return Err(malformed(what, "empty header name"));
        }
        headers.push((name, value));
    }
    Ok(headers)
}

/// Writes frames, deflating header blocks.
pub struct FrameWriter {
    deflate: Compress,
    primed: bool,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameWriter")
    }
}

impl Default for FrameWriter {
    fn default() -> Self {
        FrameWriter {
            deflate: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

impl FrameWriter {
    /// Appends the encoding of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                // Larger payloads are split; FIN goes on the last piece.
                let mut chunks = data.chunks(MAX_PAYLOAD).peekable();
                if chunks.peek().is_none() {
                    data_header(out, *stream_id, *fin, 0);
                }
                while let Some(chunk) = chunks.next() {
                    let last = chunks.peek().is_none();
                    data_header(out, *stream_id, *fin && last, chunk.len());
                    out.extend_from_slice(chunk);
                }
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let mut p = Vec::new();
                p.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                p.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
                p.push((priority & 7) << 5);
                p.push(0);
                self.header_block(headers, &mut p);
                let flags = flag(*fin, FLAG_FIN) | flag(*unidirectional, FLAG_UNIDIRECTIONAL);
                control(out, kind::SYN_STREAM, flags, &p);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                self.header_block(headers, &mut p);
                control(out, kind::SYN_REPLY, flag(*fin, FLAG_FIN), &p);
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                self.header_block(headers, &mut p);
                control(out, kind::HEADERS, flag(*fin, FLAG_FIN), &p);
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(out, kind::RST_STREAM, 0, &p);
            }
            Frame::Settings => control(out, kind::SETTINGS, 0, &0u32.to_be_bytes()),
            Frame::Ping { id } => control(out, kind::PING, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut p = (last_good_stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(out, kind::GOAWAY, 0, &p);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
                control(out, kind::WINDOW_UPDATE, 0, &p);
            }
            Frame::Unknown { .. } => {}
        }
    }

    fn header_block(&mut self, headers: &Headers, out: &mut Vec<u8>) {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            raw.extend_from_slice(&(name.len() as u32).to_be_bytes());
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
            raw.extend_from_slice(value.as_bytes());
        }
        if !self.primed {
            // Cannot fail on a fresh zlib stream.
            let _ = self.deflate.set_dictionary(DICTIONARY);
            self.primed = true;
        }
        let mut input = raw.as_slice();
        let start = out.len();
        loop {
            out.reserve(input.len() + 64);
            let before_in = self.deflate.total_in();
            let before_out = self.deflate.total_out();
            let _ = self.deflate.compress_vec(input, out, FlushCompress::Sync);
            input = &input[(self.deflate.total_in() - before_in) as usize..];
            let produced = self.deflate.total_out() - before_out;
            // Done once everything is in and the flush left spare room.
            if input.is_empty() && out.len() < out.capacity() && produced > 0 {
                break;
            }
            if input.is_empty() && produced == 0 && out.len() > start {
                break;
            }
        }
    }
}

fn flag(set: bool, f: u8) -> u8 {
    if set {
        f
    } else {
        0
    }
}

fn control(out: &mut Vec<u8>, ty: u16, flags: u8, payload: &[u8]) {
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&ty.to_be_bytes());
    let len = (payload.len() as u32) & 0x00ff_ffff;
    out.extend_from_slice(&(u32::from(flags) << 24 | len).to_be_bytes());
    out.extend_from_slice(payload);
}

fn data_header(out: &mut Vec<u8>, stream_id: u32, fin: bool, len: usize) {
    out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
    let len = (len as u32) & 0x00ff_ffff;
    out.extend_from_slice(&(u32::from(flag(fin, FLAG_FIN)) << 24 | len).to_be_bytes());
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
