//! Connecting to a port inside a pod's network namespace (port forwarding)
//! from the threaded daemon: a short-lived thread of its own enters the
//! namespace, makes the socket (a socket belongs to the namespace it was
//! created in) and ends; the daemon only ever sees the connected socket.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

/// Connects to `port` on the loopback address (127.0.0.1, then ::1) of the
/// network namespace pinned at `netns`, or of the host when `None`.
pub fn connect_in_netns(
    netns: Option<&Path>,
    port: u16,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let addrs = [
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ];
    let connect = move || {
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
    };
    let Some(netns) = netns else {
        return connect();
    };
    let netns: PathBuf = netns.to_owned();
    std::thread::Builder::new()
        .name("netns-connect".into())
        .spawn(move || {
            let file = std::fs::File::open(&netns)?;
            // Only this thread moves; it ends right after connecting.
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            connect()
        })?
        .join()
        .map_err(|_| std::io::Error::other("the netns thread panicked"))?
}
