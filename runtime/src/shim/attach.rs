//! Attach: a connection that receives the container's output as frames
//! and, when asked, feeds its stdin. Output also still goes to the log.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::protocol::{frame, Response};
use super::server::{reply, Supervisor};
use crate::logs::Stream;

/// A slow reader gets this long per write before it is dropped: the shim
/// never stalls the container's output (or the log) for one client.
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);

struct Attached {
    stream: UnixStream,
    stdin: bool,
    buf: Vec<u8>,
}

/// The attached connections and the container's stdin.
#[derive(Default)]
pub struct Attachments {
    clients: Vec<Attached>,
    /// The write end of the container's stdin pipe, while it is open.
    stdin: Option<OwnedFd>,
    /// stdin is the terminal (write to the pty master instead).
    stdin_is_tty: bool,
    /// Close stdin once the first client that fed it detaches.
    stdin_once: bool,
}

impl Attachments {
    /// The connections to poll for input.
    pub fn clients(&self) -> impl Iterator<Item = &UnixStream> {
        self.clients.iter().map(|a| &a.stream)
    }

    /// Sends output to every attached connection; drops those that fail.
    pub fn broadcast(&mut self, stream: Stream, data: &[u8]) {
        let id = match stream {
            Stream::Stdout => frame::STDOUT,
            Stream::Stderr => frame::STDERR,
        };
        let bytes = frame::encode(id, data);
        self.clients
            .retain_mut(|a| a.stream.write_all(&bytes).is_ok());
    }
}

impl Supervisor {
    /// Keeps stdin's write end for attach (`tty`: input goes to the pty).
    pub fn with_stdin(mut self, stdin: Option<OwnedFd>, tty: bool, once: bool) -> Supervisor {
        self.attach.stdin = stdin;
        self.attach.stdin_is_tty = tty;
        self.attach.stdin_once = once;
        self
    }

    /// Turns a control connection into an attached one.
    pub(crate) fn attach_client(&mut self, mut stream: UnixStream, stdin: bool) {
        let has_stdin = self.attach.stdin.is_some() || self.attach.stdin_is_tty;
        if stdin && !has_stdin {
            reply(
                &mut stream,
                &Response::refused("the container was not created with stdin"),
            );
            return;
        }
        if self.exit.is_some() {
            reply(&mut stream, &Response::refused("the container has exited"));
            return;
        }
        reply(&mut stream, &Response::Ok { state: None });
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        self.attach.clients.push(Attached {
            stream,
            stdin,
            buf: Vec::new(),
        });
    }

    /// Reads what attached connection `i` sent: stdin frames, or its end.
    pub(crate) fn serve_attached(&mut self, i: usize) {
        let mut chunk = [0u8; 32 * 1024];
        // A read error ends the attachment like an EOF.
        let n: usize = self.attach.clients[i]
            .stream
            .read(&mut chunk)
            .unwrap_or_default();
        if n == 0 {
            let gone = self.attach.clients.swap_remove(i);
            if gone.stdin {
                self.detached_stdin();
            }
            return;
        }
        let client = &mut self.attach.clients[i];
        client.buf.extend_from_slice(&chunk[..n]);
        let feeds = client.stdin;
        let frames = frame::decode(&mut client.buf);
        for (stream, data) in frames {
            if stream != frame::STDIN || !feeds {
                continue;
            }
            if data.is_empty() {
                self.close_stdin();
            } else {
                self.write_stdin(&data);
            }
        }
    }

    fn write_stdin(&mut self, data: &[u8]) {
        let target = if self.attach.stdin_is_tty {
            self.tty_master.as_ref()
        } else {
            self.attach.stdin.as_ref()
        };
        if let Some(fd) = target {
            let mut rest = data;
            while !rest.is_empty() {
                match nix::unistd::write(fd, rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => break,
                }
            }
        }
    }

    /// The client closed stdin: the container sees EOF (a tty gets ^D).
    fn close_stdin(&mut self) {
        if self.attach.stdin_is_tty {
            self.write_stdin(&[4]);
        } else {
            self.attach.stdin = None;
        }
    }

    fn detached_stdin(&mut self) {
        if self.attach.stdin_once {
            self.close_stdin();
        }
    }
}
