//! The end-to-end harness of corten: a cortend of its own on temporary
//! directories and socket, driven by the real `crictl`.
//!
//! Everything a test starts is owned by a guard that stops it and removes
//! its files when dropped, so a failing test leaves nothing behind.

pub mod daemon;
pub mod tools;

pub use daemon::{Daemon, DaemonBuilder};
