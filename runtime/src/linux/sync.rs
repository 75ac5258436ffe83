//! The byte protocol between the shim and the container init (see the
//! module docs of [`super`]).

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::{read, write};

use super::error::Error;
use crate::ErrorKind;

/// Parent to child: exec the command.
pub(super) const START: u8 = b'S';
/// Child to parent: set up, waiting for [`START`].
pub(super) const READY: u8 = b'R';
/// Child to parent: an error record follows (kind byte, message), then EOF.
pub(super) const FAILED: u8 = b'E';
/// Child to parent: the child forked the real init (the pid 1 of a pid
/// namespace it made inside a user namespace) and exits; its host pid
/// follows (4 bytes, native order), then the init's own reports.
pub(super) const PID: u8 = b'P';
/// Parent to the init forked in a child's place: the child is reaped, the
/// init is the shim's child now (its parent-death signal may be set).
pub(super) const ADOPTED: u8 = b'A';

/// What the child said.
#[derive(Debug)]
pub(super) enum Report {
    /// [`READY`].
    Ready,
    /// An error record.
    Failed { kind: ErrorKind, message: String },
    /// The child closed its end without a word (exec succeeded, or it died).
    Eof,
}

/// Writes all of `buf`, retrying on EINTR.
pub(super) fn write_all(fd: impl AsFd, mut buf: &[u8]) -> nix::Result<()> {
    let fd = fd.as_fd();
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one byte; `None` at end of file.
pub(super) fn read_byte(fd: impl AsFd) -> nix::Result<Option<u8>> {
    let mut b = [0u8; 1];
    loop {
        match read(fd.as_fd(), &mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_to_end(fd: impl AsFd) -> nix::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match read(fd.as_fd(), &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads the child's next report.
pub(super) fn read_report(fd: &OwnedFd) -> nix::Result<Report> {
    let first = read_byte(fd)?;
    report_from(first, fd)
}

/// Reads the child's first report, or the pid of the init it forked
/// instead of being it ([`PID`]) when it sends one (`Ok(pid)`).
pub(super) fn read_pid_or_report(fd: &OwnedFd) -> nix::Result<Result<i32, Report>> {
    match read_byte(fd)? {
        Some(PID) => {
            let mut pid = [0u8; 4];
            for b in pid.iter_mut() {
                *b = read_byte(fd)?.ok_or(Errno::EPIPE)?;
            }
            Ok(Ok(i32::from_ne_bytes(pid)))
        }
        first => Ok(Err(report_from(first, fd)?)),
    }
}

/// Child side: sends the pid of the init forked in its place.
pub(super) fn send_pid(fd: &OwnedFd, pid: i32) -> nix::Result<()> {
    let mut record = vec![PID];
    record.extend_from_slice(&pid.to_ne_bytes());
    write_all(fd, &record)
}

fn report_from(first: Option<u8>, fd: &OwnedFd) -> nix::Result<Report> {
    match first {
        None => Ok(Report::Eof),
        Some(READY) => Ok(Report::Ready),
        Some(FAILED) => {
            let rest = read_to_end(fd)?;
            let (kind, message) = match rest.split_first() {
                Some((k, m)) => (Error::kind_from_code(*k), String::from_utf8_lossy(m)),
                None => (ErrorKind::Internal, "(no message)".into()),
            };
            Ok(Report::Failed {
                kind,
                message: message.into_owned(),
            })
        }
        Some(other) => Ok(Report::Failed {
            kind: ErrorKind::Internal,
            message: format!("unexpected sync byte {other:#04x}"),
        }),
    }
}

/// Child side: sends an error record. Failures are ignored: the parent sees
/// the exit status instead.
pub(super) fn send_error(fd: &OwnedFd, err: &Error) {
    let mut record = vec![FAILED, err.kind_code()];
    record.extend_from_slice(err.to_string().as_bytes());
    let _ = write_all(fd, &record);
}
