//! Pseudo-terminals for tty containers: opened by the shim, the slave side
//! becomes the container's stdio, the master side the shim's.

use std::os::fd::{AsRawFd as _, OwnedFd};

use super::{Error, Result};

nix::ioctl_write_ptr_bad!(set_window_size, libc::TIOCSWINSZ, libc::winsize);

/// Opens a new pty pair: (master, slave).
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let pty = nix::pty::openpty(None, None).map_err(|source| Error::Sys {
        op: "openpty".into(),
        source,
    })?;
    Ok((pty.master, pty.slave))
}

/// Sets the window size of the terminal behind `master`.
pub fn resize_pty(master: &OwnedFd, width: u16, height: u16) -> Result<()> {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which points to
    // a live local value; the fd is owned and open for the call.
    unsafe { set_window_size(master.as_raw_fd(), &size) }.map_err(|source| Error::Sys {
        op: format!("resize terminal to {width}x{height}"),
        source,
    })?;
    Ok(())
}

/// Receives the one file descriptor sent over `sock` with SCM_RIGHTS (a
/// pty master that an OCI runtime hands over on its `--console-socket`).
pub fn recv_fd(sock: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd as _;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|source| Error::Sys {
        op: "recvmsg on the console socket".into(),
        source,
    })?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for cmsg in msg.cmsgs().map_err(|source| Error::Sys {
        op: "read control messages of the console socket".into(),
        source,
    })? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel installed each of these descriptors in this
            // process for this message; nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (Some(fd), None) => Ok(fd),
        _ => Err(Error::Io {
            op: "receive the pty master from the console socket".into(),
            source: std::io::Error::other("the message did not carry exactly one descriptor"),
        }),
    }
}

/// Makes a FIFO at `path` (mode 0600) and opens it read-write and
/// non-blocking, so the open never waits for a reader and the FIFO never
/// reports end-of-file to one while this end is open. Used to send resize
/// events to an exec helper's pty.
pub fn open_resize_fifo(path: &std::path::Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
        |source| Error::Sys {
            op: format!("mkfifo {}", path.display()),
            source,
        },
    )?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| Error::Io {
            op: format!("open {}", path.display()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_resize() {
        let (master, slave) = open_pty().expect("openpty");
        resize_pty(&master, 100, 40).expect("resize");
        let size = nix::sys::termios::tcgetattr(&slave).map(|_| ());
        assert!(size.is_ok());
    }
}
