//! The CRI container log format, as kubelet and crictl read it:
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n`, where `P`
//! marks a partial line (split because it was too long, or cut by EOF) and
//! `F` a full one. The writer is synchronous: it runs in the shim.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::ErrorKind;

/// Longest content of one log line; longer lines are split into `P` parts.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Errors of the log writer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log file cannot be opened or written.
    #[error("container log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Writes one container's CRI log file, keeping an unfinished line per
/// stream until its newline arrives.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    pending: [Vec<u8>; 2],
    /// The stamp of the last line written: every line gets a later one.
    last: SystemTime,
}

impl LogWriter {
    /// Opens (creating, appending) the log at `path`; its directory is created.
    pub fn open(path: &Path) -> Result<LogWriter, Error> {
        let file = open(path)?;
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            pending: [Vec::new(), Vec::new()],
            last: SystemTime::UNIX_EPOCH,
        })
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the file at the same path (after kubelet rotated it).
    pub fn reopen(&mut self) -> Result<(), Error> {
        self.file = open(&self.path)?;
        Ok(())
    }

    /// Takes output of `stream`: every complete line is written as `F`,
    /// overlong ones in `P` parts; the unfinished rest waits.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<(), Error> {
        let idx = stream as usize;
        let mut buf = std::mem::take(&mut self.pending[idx]);
        buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let mut line = &buf[start..start + pos];
            while line.len() > MAX_LINE {
                format_line(&mut out, self.stamp(), stream, &line[..MAX_LINE], false);
                line = &line[MAX_LINE..];
            }
            format_line(&mut out, self.stamp(), stream, line, true);
            start += pos + 1;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            format_line(&mut out, self.stamp(), stream, &rest, false);
            rest = tail;
        }
        self.pending[idx] = rest;
        self.emit(&out)
    }

    /// Writes what is pending on `stream` as a partial line (its output ended
    /// without a final newline).
    pub fn flush_partial(&mut self, stream: Stream) -> Result<(), Error> {
        let rest = std::mem::take(&mut self.pending[stream as usize]);
        if rest.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        let at = self.stamp();
        format_line(&mut out, at, stream, &rest, false);
        self.emit(&out)
    }

    /// The time a line is read, as containerd stamps each line: lines that
    /// arrived in one read still get times of their own, each later than
    /// the one before, so their order in the file is their order in time.
    fn stamp(&mut self) -> SystemTime {
        let now = SystemTime::now();
        self.last = if now > self.last {
            now
        } else {
            self.last + std::time::Duration::from_nanos(1)
        };
        self.last
    }

    fn emit(&mut self, out: &[u8]) -> Result<(), Error> {
        if out.is_empty() {
            return Ok(());
        }
        self.file.write_all(out).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }
}

fn open(path: &Path) -> Result<File, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)
}

fn format_line(out: &mut Vec<u8>, at: SystemTime, stream: Stream, content: &[u8], full: bool) {
    let stamp = humantime::format_rfc3339_nanos(at).to_string();
    out.extend_from_slice(stamp.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.tag().as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .expect("read log")
            .lines()
            .map(|l| {
                let mut parts = l.splitn(4, ' ');
                let stamp = parts.next().expect("stamp");
                assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
                assert_eq!(
                    stamp.len(),
                    "2026-11-27T10:00:00.123456789Z".len(),
                    "{stamp}"
                );
                let s = parts.next().expect("stream").to_string();
                let t = parts.next().expect("tag").to_string();
                (s, t, parts.next().unwrap_or("").to_string())
            })
            .collect()
    }

    #[test]
    fn full_partial_and_interleaved_streams() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("pod/ctr/0.log");
        let mut w = LogWriter::open(&path).expect("open");
        w.write(Stream::Stdout, b"hello\nwor").expect("w");
        w.write(Stream::Stderr, b"oops\n").expect("w");
        w.write(Stream::Stdout, b"ld\n\nlast").expect("w");
        w.flush_partial(Stream::Stdout).expect("flush");
        w.flush_partial(Stream::Stderr).expect("flush nothing");
        let got = lines(&path);
        let want = [
            ("stdout", "F", "hello"),
            ("stderr", "F", "oops"),
            ("stdout", "F", "world"),
            ("stdout", "F", ""),
            ("stdout", "P", "last"),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2.as_str()), w);
        }
    }

    #[test]
    fn lines_read_in_one_chunk_get_times_of_their_own() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("0.log");
        let mut w = LogWriter::open(&path).expect("open");
        w.write(Stream::Stdout, b"a\nb\nc\n").expect("w");
        w.write(Stream::Stderr, b"d\ne\n").expect("w");
        let stamps: Vec<SystemTime> = std::fs::read_to_string(&path)
            .expect("read log")
            .lines()
            .map(|l| {
                let stamp = l.split(' ').next().expect("stamp");
                humantime::parse_rfc3339(stamp).expect("rfc3339")
            })
            .collect();
        assert_eq!(stamps.len(), 5);
        for pair in stamps.windows(2) {
            assert!(pair[0] < pair[1], "not increasing: {stamps:?}");
        }
    }

    #[test]
    fn overlong_lines_are_split_into_partials() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("0.log");
        let mut w = LogWriter::open(&path).expect("open");
        let mut data = vec![b'x'; MAX_LINE * 2 + 10];
        data.push(b'\n');
        w.write(Stream::Stdout, &data).expect("w");
        let got = lines(&path);
        let tags: Vec<_> = got.iter().map(|l| (l.1.as_str(), l.2.len())).collect();
        assert_eq!(tags, [("P", MAX_LINE), ("P", MAX_LINE), ("F", 10)]);
    }

    #[test]
    fn reopen_follows_rotation() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("0.log");
        let mut w = LogWriter::open(&path).expect("open");
        w.write(Stream::Stdout, b"before\n").expect("w");
        std::fs::rename(&path, tmp.path().join("0.log.1")).expect("rotate");
        w.reopen().expect("reopen");
        w.write(Stream::Stdout, b"after\n").expect("w");
        assert_eq!(lines(&path)[0].2, "after");
        assert_eq!(lines(&tmp.path().join("0.log.1"))[0].2, "before");
    }
}
