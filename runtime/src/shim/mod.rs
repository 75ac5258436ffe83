//! The per-container supervisor: its protocol, the daemon's client, and the
//! server loop that runs inside the `corten-shim` binary.

pub mod attach;
pub mod client;
mod error;
pub mod exec;
pub mod external;
pub mod pin;
pub mod pod_init;
pub mod protocol;
pub mod server;
pub mod setup;

pub use client::ShimClient;
pub use error::Error;
pub use protocol::{ExitStatus, Request, Response, State, Status};
