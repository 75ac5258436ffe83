//! The helper's side of a tty exec: copy its stdin to the pty master and
//! the master to its stdout until the process has exited.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{read, Pid};

use super::error::{Context, Result};
use super::exec::exit_code;
use super::sync::write_all;

/// Blocks SIGCHLD and returns a descriptor that reports it (the child
/// unblocks it before its exec).
pub(super) fn sigchld_fd() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().ctx(|| "block SIGCHLD")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .ctx(|| "signalfd SIGCHLD")
}

/// Relays until `child` has exited; returns its exit code. `resize`, when
/// given, carries lines `WIDTH HEIGHT` applied to the pty as they come.
pub(super) fn run(
    child: Pid,
    master: &OwnedFd,
    sigchld: SignalFd,
    resize: Option<&OwnedFd>,
) -> Result<i32> {
    // SAFETY: fds 0 and 1 are the helper's stdio, open for its whole life.
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut stdin_open = true;
    let mut master_open = true;
    let mut resize_open = resize.is_some();
    let mut sizes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(code) = reaped(child)? {
            drain(master, stdout, &mut buf);
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sigchld.as_fd(), PollFlags::POLLIN)];
        if master_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        let resize_at = fds.len();
        if let (true, Some(r)) = (resize_open, resize) {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).ctx(|| "poll the exec's terminal"),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready) = (ready(0), master_open && ready(1));
        let stdin_ready = stdin_open && ready(if master_open { 2 } else { 1 });
        let resize_ready = resize_open && ready(resize_at);
        drop(fds);
        if let (true, Some(r)) = (resize_ready, resize) {
            match read(r, &mut buf) {
                Ok(0) => resize_open = false,
                Ok(n) => {
                    sizes.extend_from_slice(&buf[..n]);
                    apply_sizes(master, &mut sizes);
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => resize_open = false,
            }
        }
        if sig_ready {
            while let Ok(Some(_)) = sigchld.read_signal() {}
        }
        if master_ready {
            match read(master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => master_open = false,
                Ok(n) => {
                    // The reader went away: keep draining, drop the output.
                    let _ = write_all(stdout, &buf[..n]);
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(e).ctx(|| "read the exec's terminal"),
            }
        }
        if stdin_ready {
            match read(stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if write_all(master, &buf[..n]).is_err() {
                        stdin_open = false;
                    }
                }
            }
        }
    }
}

/// Applies every complete `WIDTH HEIGHT` line of `pending`; keeps the rest.
fn apply_sizes(master: &OwnedFd, pending: &mut Vec<u8>) {
    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line);
        let mut words = text.split_whitespace().map(str::parse::<u16>);
        if let (Some(Ok(w)), Some(Ok(h))) = (words.next(), words.next()) {
            let _ = super::resize_pty(master, w, h);
        }
    }
    if pending.len() > 4096 {
        pending.clear();
    }
}

fn reaped(child: Pid) -> Result<Option<i32>> {
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => Ok(exit_code(status)),
        Err(Errno::EINTR) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("wait for exec process {child}")),
    }
}

/// Copies what the terminal still holds once the process has exited.
fn drain(master: &OwnedFd, stdout: BorrowedFd<'_>, buf: &mut [u8]) {
    if let Ok(flags) = fcntl(master, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(master, FcntlArg::F_SETFL(flags));
    }
    while let Ok(n) = read(master, buf) {
        if n == 0 || write_all(stdout, &buf[..n]).is_err() {
            break;
        }
    }
}
