//! The control protocol between cortend and a corten-shim: one JSON
//! request per line on the shim's Unix socket, one JSON response line back.

use serde::{Deserialize, Serialize};

/// What the daemon asks of a shim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Let the created container exec its process.
    Start,
    /// Send a signal to the init (or, with `all`, to every process of the container).
    Kill {
        /// The signal number.
        signal: i32,
        /// Every process in the container's cgroup, not only the init.
        all: bool,
    },
    /// Report the container's state.
    State,
    /// Answer only once the container has exited.
    Wait,
    /// Reopen the log file (kubelet rotated it).
    ReopenLog,
    /// Stream the container's output to this connection (and, with
    /// `stdin`, take its input from it). After the `ok` line the connection
    /// carries frames (see [`frame`]) both ways until the container exits.
    Attach {
        /// Forward input from this connection to the container's stdin.
        stdin: bool,
    },
    /// Resize the terminal of a tty container.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its process is set up and waits for `Start`.
    Created,
    /// Its process runs.
    Running,
    /// Its process has exited.
    Exited,
}

/// How a container's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code; 128 + signal when killed by a signal.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended it (or a process of its cgroup).
    pub oom_killed: bool,
    /// When it ended, Unix nanoseconds.
    pub finished_at_ns: i64,
    /// Set when the shim was gone before the container's end: the daemon
    /// ended the container itself, and this says how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim_lost: Option<String>,
    /// Set when the shim could not create the container (it never ran):
    /// the daemon's record of why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_created: Option<String>,
}

/// The state a shim reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Where the container is.
    pub status: Status,
    /// The init's pid in the host's pid namespace.
    pub pid: i32,
    /// When the process was started (exec'd), Unix nanoseconds; 0 before.
    pub started_at_ns: i64,
    /// How it ended, once it has.
    pub exit: Option<ExitStatus>,
}

/// A shim's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Done; for `State` and `Wait` the state.
    Ok {
        /// The state, for requests that report it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<State>,
    },
    /// Refused or failed, with why and what kind of failure it is (so the
    /// kind survives the process boundary: a refusal stays a refusal, a
    /// full disk stays ResourceExhausted).
    Error {
        /// What went wrong.
        message: String,
        /// The kind; a shim that does not say is taken to have failed.
        #[serde(default = "internal")]
        kind: crate::ErrorKind,
    },
}

fn internal() -> crate::ErrorKind {
    crate::ErrorKind::Internal
}

impl Response {
    /// A refusal: the request does not fit the container's state.
    pub fn refused(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
            kind: crate::ErrorKind::FailedPrecondition,
        }
    }

    /// A failure of kind `kind`.
    pub fn failed(kind: crate::ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
            kind,
        }
    }

    /// A failure of an I/O operation: a full disk is ResourceExhausted.
    pub fn io_failed(what: &str, e: &std::io::Error) -> Response {
        let kind = if crate::error::is_out_of_space(e) {
            crate::ErrorKind::ResourceExhausted
        } else {
            crate::ErrorKind::Internal
        };
        Response::failed(kind, format!("{what}: {e}"))
    }
}

/// The frames of an attached connection: `[stream: u8][len: u32 BE][data]`.
/// Stream 0 is stdin (client to shim; a zero-length frame closes stdin),
/// 1 stdout and 2 stderr (shim to client; a tty's output is all stdout).
pub mod frame {
    /// Input to the container.
    pub const STDIN: u8 = 0;
    /// The container's stdout.
    pub const STDOUT: u8 = 1;
    /// The container's stderr.
    pub const STDERR: u8 = 2;
    /// Header size.
    pub const HEADER: usize = 5;

    /// One frame's bytes.
    pub fn encode(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + data.len());
        out.push(stream);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    /// Takes every complete frame off the front of `buf`.
    pub fn decode(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        let mut at = 0;
        while buf.len() - at >= HEADER {
            let len =
                u32::from_be_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]) as usize;
            if buf.len() - at - HEADER < len {
                break;
            }
            frames.push((buf[at], buf[at + HEADER..at + HEADER + len].to_vec()));
            at += HEADER + len;
        }
        buf.drain(..at);
        frames
    }
}

/// The files a shim keeps in its bundle directory.
pub mod files {
    /// The OCI runtime spec.
    pub const SPEC: &str = "config.json";
    /// The layers to mount as the root filesystem.
    pub const ROOTFS: &str = "rootfs.json";
    /// The mount point of the root filesystem (in the shim's mount namespace).
    pub const ROOTFS_DIR: &str = "rootfs";
    /// Where the shim mounts the container's image volumes (`<n>` each),
    /// beside the rootfs: their layers id-mapped already when the
    /// container has a user namespace.
    pub const IMAGE_VOLUMES_DIR: &str = "image-volumes";
    /// The control socket.
    pub const SOCKET: &str = "shim.sock";
    /// The shim's own diagnostics.
    pub const SHIM_LOG: &str = "shim.log";
    /// The exit status, written atomically when the container exits.
    pub const EXIT: &str = "exit.json";
    /// The init's pid and start time, written when it starts.
    pub const STATE: &str = "state.json";
    /// The external OCI runtime that makes the container, if one does
    /// ([`crate::shim::external::RuntimeRecord`]): what a removal needs to
    /// delete that runtime's state when the shim could not.
    pub const RUNTIME: &str = "runtime.json";

    /// Reads the spec at `path` (a bundle's [`SPEC`]) whole, then parses it:
    /// several times faster than parsing from a reader, which counts with
    /// a spec of 10,000 mounts (a megabyte) read at every create and exec.
    /// The error names the path.
    pub fn read_spec(
        path: &std::path::Path,
    ) -> Result<oci_spec::runtime::Spec, oci_spec::OciSpecError> {
        let text = std::fs::read(path)?;
        Ok(serde_json::from_slice(&text)?)
    }
}

/// Longest socket path that fits a `sockaddr_un` (108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// A path to reach `socket` by, short enough for `bind`/`connect`: the path
/// itself, or, when it is too long (a deep state dir), the same file
/// through `/proc/self/fd/N` of its directory, held open by the returned
/// handle, which must live until the bind or connect is done.
pub fn socket_address(
    socket: &std::path::Path,
) -> std::io::Result<(Option<std::fs::File>, std::path::PathBuf)> {
    use std::os::fd::AsRawFd as _;
    if socket.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((None, socket.to_path_buf()));
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Ok((None, socket.to_path_buf()));
    };
    let handle = std::fs::File::open(dir)?;
    let short =
        std::path::PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd())).join(name);
    Ok((Some(handle), short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_socket_paths_bind_and_connect_through_proc() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let deep = tmp.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let socket = deep.join("shim.sock");
        let (_held, addr) = socket_address(&socket).expect("address");
        assert!(addr.as_os_str().len() <= SUN_PATH_MAX, "{}", addr.display());
        let _listener = std::os::unix::net::UnixListener::bind(&addr).expect("bind");
        assert!(socket.exists(), "the socket is where it belongs");
        let (_held2, addr2) = socket_address(&socket).expect("address");
        std::os::unix::net::UnixStream::connect(&addr2).expect("connect");
        let short = tmp.path().join("s.sock");
        assert_eq!(socket_address(&short).expect("short").1, short);
    }

    #[test]
    fn wire_format_is_stable() {
        let r = Request::Kill {
            signal: 15,
            all: false,
        };
        assert_eq!(
            serde_json::to_string(&r).expect("json"),
            r#"{"op":"kill","signal":15,"all":false}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Start).expect("json"),
            r#"{"op":"start"}"#
        );
        let ok = Response::Ok { state: None };
        assert_eq!(
            serde_json::to_string(&ok).expect("json"),
            r#"{"result":"ok"}"#
        );
        let back: Response =
            serde_json::from_str(r#"{"result":"error","message":"x"}"#).expect("parse");
        assert_eq!(
            back,
            Response::failed(crate::ErrorKind::Internal, "x"),
            "a shim that gives no kind has failed"
        );
        let refused = serde_json::to_string(&Response::refused("no")).expect("json");
        assert_eq!(
            refused,
            r#"{"result":"error","message":"no","kind":"failed_precondition"}"#
        );
        let back: Response = serde_json::from_str(&refused).expect("parse");
        assert_eq!(back, Response::refused("no"));
    }
}
