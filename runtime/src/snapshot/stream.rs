//! Readers between the caller's layer stream and the tar reader.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::Digest as _;

use super::Error;

/// A read error is the layer's fault (corrupt compression or tar) unless
/// the caller's reader failed under it.
pub(super) fn classify_stream_error(e: io::Error, source_failed: bool) -> Error {
    if source_failed {
        Error::Read { source: e }
    } else {
        Error::Corrupt { source: e }
    }
}

/// The caller's (compressed) reader, noting whether it ever failed.
pub(super) struct SourceReader<R> {
    pub(super) inner: R,
    pub(super) failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        if matches!(&result, Err(e) if e.kind() != io::ErrorKind::Interrupted) {
            self.failed.set(true);
        }
        result
    }
}

/// Hashes and counts the uncompressed stream as the tar reader reads it.
pub(super) struct HashingReader<R> {
    pub(super) inner: R,
    pub(super) hasher: sha2::Sha256,
    pub(super) len: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.len += n as u64;
        Ok(n)
    }
}
