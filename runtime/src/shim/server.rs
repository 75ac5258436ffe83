//! The shim's side: set the container up, hold its stdio, write its log,
//! reap it, record how it ended, and answer the daemon. Single-threaded and
//! synchronous: this runs in `corten-shim`, never in the daemon.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::external::{Created, OciRuntime};
use super::protocol::{files, ExitStatus, Request, Response, State, Status};
use crate::cgroups::Cgroup;
use crate::logs::{LogWriter, Stream};
use crate::ErrorKind;

/// A connected daemon with what it has sent so far.
struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// The supervisor of one running (or created) container.
pub struct Supervisor {
    pub(crate) bundle: PathBuf,
    pub(crate) init: Option<Created>,
    pub(crate) pid: i32,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) log: LogWriter,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    pub(crate) tty_master: Option<OwnedFd>,
    pub(crate) listener: UnixListener,
    pub(crate) started_at_ns: i64,
    pub(crate) exit: Option<ExitStatus>,
    clients: Vec<Client>,
    waiters: VecDeque<UnixStream>,
    /// The external OCI runtime that made the container, if one did.
    external: Option<OciRuntime>,
    /// Attached connections (see [`super::attach`]).
    pub(crate) attach: super::attach::Attachments,
}

impl Supervisor {
    /// A supervisor for an init that waits for `Start`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bundle: &Path,
        init: impl Into<Created>,
        cgroup: Option<Cgroup>,
        log: LogWriter,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        tty_master: Option<OwnedFd>,
        listener: UnixListener,
    ) -> Supervisor {
        let init = init.into();
        let pid = init.pid();
        Supervisor {
            bundle: bundle.to_path_buf(),
            init: Some(init),
            pid,
            cgroup,
            log,
            stdout,
            stderr,
            tty_master,
            listener,
            started_at_ns: 0,
            exit: None,
            clients: Vec::new(),
            waiters: VecDeque::new(),
            external: None,
            attach: Default::default(),
        }
    }

    /// The container was made by `runtime`, which deletes it when it is gone.
    pub fn with_external(mut self, runtime: OciRuntime) -> Supervisor {
        self.external = Some(runtime);
        self
    }

    fn state(&self) -> State {
        let status = match (&self.exit, &self.init) {
            (Some(_), _) => Status::Exited,
            (None, Some(_)) => Status::Created,
            (None, None) => Status::Running,
        };
        State {
            status,
            pid: self.pid,
            started_at_ns: self.started_at_ns,
            exit: self.exit.clone(),
        }
    }

    /// Serves until the container has exited, its output is drained and
    /// every waiter has its answer.
    pub fn run(mut self, sigchld: SignalFd) -> Result<(), String> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| format!("socket: {e}"))?;
        loop {
            if self.exit.is_some()
                && self.stdout.is_none()
                && self.stderr.is_none()
                && self.tty_master.is_none()
            {
                self.finish();
                return Ok(());
            }
            let mut fds = vec![
                PollFd::new(sigchld.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            let outputs: Vec<(Stream, usize)> = [
                (Stream::Stdout, self.stdout.as_ref()),
                (Stream::Stderr, self.stderr.as_ref()),
                (Stream::Stdout, self.tty_master.as_ref()),
            ]
            .into_iter()
            .enumerate()
            .filter_map(|(slot, (stream, fd))| {
                fd.map(|fd| {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    (stream, slot)
                })
            })
            .collect();
            let first_attached = fds.len();
            for a in self.attach.clients() {
                fds.push(PollFd::new(a.as_fd(), PollFlags::POLLIN));
            }
            let first_client = fds.len();
            for c in &self.clients {
                fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[0] {
                while let Ok(Some(_)) = sigchld.read_signal() {}
                self.reap();
            }
            if ready[1] {
                self.accept();
            }
            for (i, (stream, slot)) in outputs.into_iter().enumerate() {
                if ready[2 + i] {
                    let _ = self.drain(stream, slot);
                }
            }
            let attached: Vec<usize> = (0..first_client - first_attached)
                .filter(|i| ready.get(first_attached + i).copied().unwrap_or(false))
                .collect();
            for i in attached.into_iter().rev() {
                self.serve_attached(i);
            }
            let readable: Vec<usize> = (0..self.clients.len())
                .filter(|i| ready.get(first_client + i).copied().unwrap_or(false))
                .collect();
            for i in readable.into_iter().rev() {
                self.serve_client(i);
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            self.clients.push(Client {
                stream,
                buf: Vec::new(),
            });
        }
    }

    /// Reads what every output holds into the log, until it is empty or
    /// closed. Run at the init's exit, before the exit is published: when
    /// the init of a pid namespace is reaped, every other process of it is
    /// gone too, so the pipes hold all the container wrote and then EOF,
    /// and whoever hears of the exit (kubelet reading the logs of a
    /// container that printed and exited) finds its whole output. Where a
    /// writer lives on (a shared pid namespace), the rest comes as before.
    fn drain_all_now(&mut self) {
        let outputs = [
            (Stream::Stdout, 0),
            (Stream::Stderr, 1),
            (Stream::Stdout, 2),
        ];
        for (stream, slot) in outputs {
            let fd = match slot {
                0 => self.stdout.as_ref(),
                1 => self.stderr.as_ref(),
                _ => self.tty_master.as_ref(),
            };
            let Some(fd) = fd else { continue };
            if set_nonblocking(fd).is_err() {
                continue;
            }
            // Each read takes up to 32 KiB; a pipe holds 64 KiB by default,
            // but bound the loop whatever it holds.
            for _ in 0..1024 {
                if !self.drain(stream, slot) {
                    break;
                }
            }
        }
    }

    /// Reads one readable output into the log; false when there is nothing
    /// more to read now (EOF, an error, or an empty non-blocking pipe).
    fn drain(&mut self, stream: Stream, slot: usize) -> bool {
        let fd = match slot {
            0 => &mut self.stdout,
            1 => &mut self.stderr,
            _ => &mut self.tty_master,
        };
        let Some(owned) = fd.as_ref() else {
            return false;
        };
        let mut buf = [0u8; 32 * 1024];
        match nix::unistd::read(owned, &mut buf) {
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => false,
            Ok(0) | Err(_) => {
                // EOF (or EIO on a tty whose other side closed).
                *fd = None;
                if let Err(e) = self.log.flush_partial(stream) {
                    eprintln!("corten-shim: {e}");
                }
                false
            }
            Ok(n) => {
                if let Err(e) = self.log.write(stream, &buf[..n]) {
                    eprintln!("corten-shim: {e}");
                }
                self.attach.broadcast(stream, &buf[..n]);
                true
            }
        }
    }

    fn serve_client(&mut self, i: usize) {
        let mut chunk = [0u8; 4096];
        let n = match self.clients[i].stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                self.clients.swap_remove(i);
                return;
            }
            Ok(n) => n,
        };
        self.clients[i].buf.extend_from_slice(&chunk[..n]);
        let Some(end) = self.clients[i].buf.iter().position(|&b| b == b'\n') else {
            return;
        };
        let client = self.clients.swap_remove(i);
        let line = &client.buf[..end];
        let request: Result<Request, _> = serde_json::from_slice(line);
        let mut stream = client.stream;
        let response = match request {
            Err(e) => Response::failed(ErrorKind::InvalidArgument, format!("bad request: {e}")),
            Ok(Request::Attach { stdin }) => {
                self.attach_client(stream, stdin);
                return;
            }
            Ok(Request::Wait) if self.exit.is_none() => {
                self.waiters.push_back(stream);
                return;
            }
            Ok(request) => self.handle(request),
        };
        reply(&mut stream, &response);
    }

    fn handle(&mut self, request: Request) -> Response {
        let ok = |state| Response::Ok { state };
        match request {
            Request::Start => match self.init.take() {
                Some(init) => match init.start() {
                    Ok(()) => {
                        self.started_at_ns = now_ns();
                        write_json(&self.bundle.join(files::STATE), &self.state());
                        ok(None)
                    }
                    // The process cannot run (its command is missing, say).
                    Err(e) => Response::refused(e.to_string()),
                },
                None => Response::refused("the container was started already"),
            },
            Request::Kill { signal, all } => {
                if self.exit.is_some() {
                    return ok(None);
                }
                let result = match (all, &self.cgroup) {
                    (true, Some(cg)) if signal == Signal::SIGKILL as i32 => cg
                        .kill_all()
                        .map_err(|e| Response::failed(e.kind(), e.to_string())),
                    _ => Signal::try_from(signal)
                        .map_err(|e| {
                            Response::failed(
                                ErrorKind::InvalidArgument,
                                format!("signal {signal}: {e}"),
                            )
                        })
                        .and_then(|s| {
                            nix::sys::signal::kill(Pid::from_raw(self.pid), s).map_err(|e| {
                                Response::failed(ErrorKind::Internal, format!("kill: {e}"))
                            })
                        }),
                };
                match result {
                    Ok(()) => ok(None),
                    Err(response) => response,
                }
            }
            Request::State | Request::Wait => ok(Some(self.state())),
            // Taken over by `attach_client` before it gets here.
            Request::Attach { .. } => Response::failed(
                ErrorKind::InvalidArgument,
                "attach needs a connection of its own",
            ),
            Request::ReopenLog => match self.log.reopen() {
                Ok(()) => ok(None),
                Err(e) => {
                    let message = format!("reopen the log: {e}");
                    Response::failed(crate::Error::from(e).kind(), message)
                }
            },
            Request::Resize { width, height } => match &self.tty_master {
                Some(master) => match crate::linux::resize_pty(master, width, height) {
                    Ok(()) => ok(None),
                    Err(e) => Response::failed(e.kind(), e.to_string()),
                },
                None => Response::refused("the container has no terminal"),
            },
        }
    }

    /// Reaps every exited child; the init's end is recorded.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == self.pid => {
                    self.record_exit(code, None);
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == self.pid => {
                    self.record_exit(128 + sig as i32, Some(sig as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn record_exit(&mut self, code: i32, signal: Option<i32>) {
        let oom_killed = self
            .cgroup
            .as_ref()
            .and_then(|cg| cg.oom_killed().ok())
            .unwrap_or(false);
        self.init = None;
        self.drain_all_now();
        self.exit = Some(ExitStatus {
            code,
            signal,
            oom_killed,
            finished_at_ns: now_ns(),
            shim_lost: None,
            not_created: None,
        });
        // The exit is on disk before anyone hears of it.
        write_json(&self.bundle.join(files::EXIT), &self.state());
        self.answer_waiters();
    }

    /// Everyone waiting for the exit hears the final state.
    fn answer_waiters(&mut self) {
        let state = self.state();
        while let Some(mut w) = self.waiters.pop_front() {
            reply(
                &mut w,
                &Response::Ok {
                    state: Some(state.clone()),
                },
            );
        }
    }

    /// The container is gone: answer the late waiters, free the cgroup.
    fn finish(&mut self) {
        self.answer_waiters();
        if let Some(oci) = self.external.take() {
            if let Err(e) = oci.delete() {
                eprintln!("corten-shim: {e}");
            }
        }
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                eprintln!("corten-shim: {e}");
            }
        }
        let _ = std::fs::remove_file(self.bundle.join(files::SOCKET));
    }
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

pub(crate) fn reply(stream: &mut UnixStream, response: &Response) {
    if let Ok(mut line) = serde_json::to_vec(response) {
        line.push(b'\n');
        let _ = stream.write_all(&line);
    }
}

/// Writes `value` as JSON to `path` atomically (temp file, rename). No
/// fsync: a crashed daemon or shim finds it in the page cache, and a power
/// loss ends the container and the bundle's state directory (a tmpfs on a
/// node) anyway; a file it would cut short reads as no file.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) {
    let tmp = path.with_extension("tmp");
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, value)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        eprintln!("corten-shim: cannot write {}: {e}", path.display());
    }
}

/// SIGCHLD as a file descriptor, blocked for ordinary delivery.
pub fn sigchld_fd() -> Result<SignalFd, String> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
