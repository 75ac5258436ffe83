//! Processes a test starts itself, and ports it borrows.

use std::net::TcpListener;
use std::process::Child;

/// A child process of the test, killed and reaped when dropped (also when
/// the test panics).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free on 127.0.0.1 right now (bound, noted, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
