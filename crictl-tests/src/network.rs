//! A CNI network of the test's own for a test daemon: its own bridge
//! (`ctc…`), its own /24 under 10.210.0.0/16, its own host-local store in
//! the daemon's directory, `ipMasq: false` and no route out, so pod traffic
//! stays between the host and the test's pods.
//!
//! Declare it *before* the daemon: the daemon goes first when both drop
//! (removing its pods), then this deletes the bridge and, once the last
//! network of the process is gone, puts back the host's `ip_forward` (the
//! bridge plugin turns it on for a gateway).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::daemon::DaemonBuilder;

static NEXT: AtomicU32 = AtomicU32::new(0);
/// Live networks, and `ip_forward` as it was before the first.
static FORWARD: Mutex<(u32, Option<String>)> = Mutex::new((0, None));
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The Debian CNI plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/cni";

/// One test network.
pub struct TestNetwork {
    /// The network name in the conflist.
    pub name: String,
    /// The bridge device.
    pub bridge: String,
    /// The third octet of the /24.
    pub octet: u32,
    ipam_dir: PathBuf,
    conf_dir: PathBuf,
}

impl TestNetwork {
    /// Writes a bridge + host-local + portmap + loopback conflist into the
    /// daemon's conf dir. Panics without root or the plugins: both are test
    /// dependencies that `crictl-tests/run.sh` installs.
    pub fn new(builder: &DaemonBuilder) -> TestNetwork {
        TestNetwork::in_dir(builder.dir())
    }

    /// The same for any runtime whose CNI conf dir is `dir/net.d` (host-local
    /// keeps its leases in `dir/ipam`): the benchmarks' peer.
    pub fn in_dir(dir: &Path) -> TestNetwork {
        crate::tools::require_root("pod tests: namespaces, bridges");
        assert!(
            Path::new(PLUGIN_DIR).join("bridge").exists(),
            "the CNI plugins are missing from {PLUGIN_DIR}: apt-get install containernetworking-plugins"
        );
        {
            let mut fwd = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
            if fwd.0 == 0 {
                fwd.1 = std::fs::read_to_string(IP_FORWARD).ok();
            }
            fwd.0 += 1;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let net = TestNetwork {
            name: format!("corten-e2e-{pid}-{n}"),
            bridge: format!("ctc{}x{n}", pid % 100_000),
            octet: free_octet((pid * 11 + n * 17) % 250 + 2),
            ipam_dir: dir.join("ipam"),
            conf_dir: dir.join("net.d"),
        };
        net.write("10-test.conflist", &net.conflist(&[]));
        net
    }

    /// The conflist: bridge, host-local, then `extra` plugins, portmap and
    /// loopback.
    pub fn conflist(&self, extra: &[serde_json::Value]) -> serde_json::Value {
        let mut plugins = vec![serde_json::json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": format!("10.210.{}.0/24", self.octet)}]],
                "dataDir": self.ipam_dir,
            }
        })];
        plugins.extend(extra.iter().cloned());
        plugins
            .push(serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}));
        plugins.push(serde_json::json!({"type": "loopback"}));
        serde_json::json!({"cniVersion": "1.0.0", "name": self.name, "plugins": plugins})
    }

    /// Writes `conf` as `file` in the conf dir.
    pub fn write(&self, file: &str, conf: &serde_json::Value) {
        std::fs::write(self.conf_dir.join(file), conf.to_string()).expect("write CNI conf");
    }

    /// Writes raw text as `file` in the conf dir.
    pub fn write_raw(&self, file: &str, text: &str) {
        std::fs::write(self.conf_dir.join(file), text).expect("write CNI conf");
    }

    /// Removes every file of the conf dir.
    pub fn clear(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.conf_dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// `10.210.<octet>.` — every pod address starts with it.
    pub fn prefix(&self) -> String {
        format!("10.210.{}.", self.octet)
    }

    /// The addresses host-local has handed out and not taken back.
    pub fn allocations(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.ipam_dir.join(&self.name))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The interfaces attached to the bridge (one veth per pod).
    pub fn ports(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output();
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let mut fwd = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
        fwd.0 = fwd.0.saturating_sub(1);
        if fwd.0 == 0 {
            if let Some(old) = fwd.1.take() {
                let _ = std::fs::write(IP_FORWARD, old);
            }
        }
    }
}

/// Mount points under `dir` (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// The first third octet from `start` (2..=251, wrapping) whose
/// 10.210.<octet>.0/24 no interface of the machine has an address in: a
/// bridge left by a test process that was killed keeps its gateway
/// address, and a second bridge with the same /24 takes the host's route
/// to the pods away (kubelet's HTTP hooks then saw "no route to host").
fn free_octet(start: u32) -> u32 {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let used: Vec<u32> = out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("10.210."))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect();
    let mut octet = start;
    for _ in 0..250 {
        if !used.contains(&octet) {
            return octet;
        }
        octet = (octet - 2 + 1) % 250 + 2;
    }
    start
}

/// `GET path` of `ip:port` over HTTP/1.0, read to the end (the tests'
/// traffic to a pod's web server); the body's length. Panics unless the
/// reply is a 200.
pub fn http_get_body_len(ip: &str, port: u16, path: &str, timeout: std::time::Duration) -> usize {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect((ip, port)).expect("connect to the pod");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").expect("request");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("reply");
    let head_end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP reply");
    assert!(
        reply.starts_with(b"HTTP/1.") && reply[..head_end].windows(5).any(|w| w == b" 200 "),
        "not a 200: {}",
        String::from_utf8_lossy(&reply[..head_end])
    );
    reply.len() - head_end - 4
}
