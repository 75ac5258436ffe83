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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code; 128 + signal when killed by a signal.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended it (or a process of its cgroup).
    pub oom_killed: bool,
    /// When it ended, Unix nanoseconds.
    pub finished_at_ns: i64,
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
    /// Refused or failed, with why.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// The files a shim keeps in its bundle directory.
pub mod files {
    /// The OCI runtime spec.
    pub const SPEC: &str = "config.json";
    /// The layers to mount as the root filesystem.
    pub const ROOTFS: &str = "rootfs.json";
    /// The mount point of the root filesystem (in the shim's mount namespace).
    pub const ROOTFS_DIR: &str = "rootfs";
    /// The control socket.
    pub const SOCKET: &str = "shim.sock";
    /// The shim's own diagnostics.
    pub const SHIM_LOG: &str = "shim.log";
    /// The exit status, written atomically when the container exits.
    pub const EXIT: &str = "exit.json";
    /// The init's pid and start time, written when it starts.
    pub const STATE: &str = "state.json";
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Response::Error {
                message: "x".into()
            }
        );
    }
}
