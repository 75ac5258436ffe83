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

/// The traffic counters of one network interface (from /proc/net/dev).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// The interface name (`eth0`).
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on sending.
    pub tx_dropped: u64,
}

/// The counters of every interface but loopback in the network namespace
/// pinned at `netns`, read by a short-lived thread that enters it (a
/// thread's /proc/thread-self/net is its own namespace's).
pub fn interfaces_in_netns(netns: &Path) -> std::io::Result<Vec<InterfaceCounters>> {
    let netns: PathBuf = netns.to_owned();
    std::thread::Builder::new()
        .name("netns-stats".into())
        .spawn(move || {
            let file = std::fs::File::open(&netns)?;
            // Only this thread moves; it ends right after reading.
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let text = std::fs::read_to_string("/proc/thread-self/net/dev")?;
            Ok(parse_net_dev(&text))
        })?
        .join()
        .map_err(|_| std::io::Error::other("the netns thread panicked"))?
}

/// Parses /proc/net/dev: two header lines, then `name: <8 receive
/// counters> <8 transmit counters>` per interface; loopback is left out.
fn parse_net_dev(text: &str) -> Vec<InterfaceCounters> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            let n: Vec<u64> = counters
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            (name != "lo" && n.len() >= 16).then(|| InterfaceCounters {
                name: name.to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_counters_without_loopback() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    9216      80    3    4    0     0          0         0     5025      40    1    2    0     0       0          0
";
        assert_eq!(
            parse_net_dev(text),
            [InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 9216,
                rx_packets: 80,
                rx_errors: 3,
                rx_dropped: 4,
                tx_bytes: 5025,
                tx_packets: 40,
                tx_errors: 1,
                tx_dropped: 2,
            }]
        );
    }
}
