//! CNI with the real plugins (Debian `containernetworking-plugins`), as root
//! (failing otherwise). Each test makes its own network namespaces, its own
//! bridge (`ctb…`), its own /24 under 10.209.0.0/16 and its own host-local
//! `dataDir`, and guards remove all of it even when the test fails. Traffic
//! goes only between namespaces the test made, on its own bridge.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use corten_runtime::network::{Error, PortMapping};
use corten_runtime::ErrorKind;
use support::{in_netns, Net, Netns};

#[cfg(test)]
mod support {
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use corten_runtime::network::{Cni, PodNetwork};

    static NEXT: AtomicU32 = AtomicU32::new(0);
    /// How many fixtures are alive, and the host's ip_forward before the
    /// first (the bridge plugin turns it on for a gateway): the last
    /// fixture to go puts it back.
    static FORWARD: Mutex<(u32, Option<String>)> = Mutex::new((0, None));
    const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

    fn unique() -> u32 {
        NEXT.fetch_add(1, Ordering::SeqCst)
    }

    pub fn run(cmd: &[&str]) -> std::process::Output {
        let out = Command::new(cmd[0]).args(&cmd[1..]).output().expect("run");
        out
    }

    /// A network namespace of ours (`ip netns add`), deleted on drop.
    pub struct Netns {
        pub name: String,
        deleted: bool,
    }

    impl Netns {
        pub fn new() -> Netns {
            let name = format!("corten-test-{}-{}", std::process::id(), unique());
            let out = run(&["ip", "netns", "add", &name]);
            assert!(out.status.success(), "ip netns add: {out:?}");
            Netns {
                name,
                deleted: false,
            }
        }

        pub fn path(&self) -> PathBuf {
            PathBuf::from(format!("/var/run/netns/{}", self.name))
        }

        pub fn delete(&mut self) {
            if !self.deleted {
                run(&["ip", "netns", "del", &self.name]);
                self.deleted = true;
            }
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            self.delete();
        }
    }

    /// A test network: conf dir, cache dir and IPAM store in a tempdir, a
    /// bridge of its own and a /24 of its own. Drop deletes every pod added
    /// through it, then the bridge.
    pub struct Net {
        pub tmp: tempfile::TempDir,
        pub cni: Cni,
        pub bridge: String,
        pub name: String,
        /// `10.209.<octet>.0/24`.
        pub octet: u32,
        pub pods: Mutex<Vec<(String, PathBuf)>>,
    }

    impl Net {
        /// Panics unless root with the plugins installed.
        pub fn new() -> Net {
            crate::common::require_root("network namespaces, bridges");
            crate::common::require_installed("/usr/lib/cni/bridge", "containernetworking-plugins");
            {
                let mut fwd = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
                if fwd.0 == 0 {
                    fwd.1 = std::fs::read_to_string(IP_FORWARD).ok();
                }
                fwd.0 += 1;
            }
            let n = unique();
            let pid = std::process::id();
            let tmp = tempfile::tempdir().expect("tempdir");
            let net = Net {
                cni: Cni::new(
                    tmp.path().join("net.d"),
                    vec![tmp.path().join("nobin"), PathBuf::from("/usr/lib/cni")],
                    tmp.path().join("cache"),
                ),
                bridge: format!("ctb{}x{n}", pid % 100_000),
                name: format!("corten-test-{pid}-{n}"),
                octet: (pid * 7 + n * 13) % 250 + 2,
                pods: Mutex::new(Vec::new()),
                tmp,
            };
            std::fs::create_dir(net.conf_dir()).expect("mkdir net.d");
            net.write_conf("10-test.conflist", &net.conflist("store", &[]));
            net
        }

        pub fn conf_dir(&self) -> PathBuf {
            self.tmp.path().join("net.d")
        }

        /// The host-local store of the network named `name` under `store`.
        pub fn allocations(&self, store: &str) -> Vec<String> {
            let dir = self.tmp.path().join(store).join(&self.name);
            let mut names: Vec<String> = std::fs::read_dir(dir)
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

        /// bridge + host-local (dataDir `<tmp>/<store>`) + `extra` + portmap.
        pub fn conflist(&self, store: &str, extra: &[serde_json::Value]) -> serde_json::Value {
            let mut plugins = vec![serde_json::json!({
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": format!("10.209.{}.0/24", self.octet)}]],
                    "dataDir": self.tmp.path().join(store),
                }
            })];
            plugins.extend(extra.iter().cloned());
            plugins.push(serde_json::json!({
                "type": "portmap",
                "capabilities": {"portMappings": true},
            }));
            serde_json::json!({"cniVersion": "1.0.0", "name": self.name, "plugins": plugins})
        }

        pub fn write_conf(&self, file: &str, conf: &serde_json::Value) {
            std::fs::write(self.conf_dir().join(file), conf.to_string()).expect("write conf");
        }

        pub fn pod(&self, id: &str, ns: &Netns) -> PodNetwork {
            self.pods
                .lock()
                .expect("lock")
                .push((id.to_string(), ns.path()));
            PodNetwork {
                id: id.into(),
                name: format!("pod-{id}"),
                namespace: "test".into(),
                uid: format!("uid-{id}"),
                netns_path: ns.path(),
                port_mappings: Vec::new(),
            }
        }
    }

    impl Drop for Net {
        fn drop(&mut self) {
            let pods = std::mem::take(&mut *self.pods.lock().unwrap_or_else(|e| e.into_inner()));
            // On a thread of its own: the test's runtime may still be
            // current here, and a runtime cannot run inside another.
            let cni = &self.cni;
            std::thread::scope(|s| {
                s.spawn(|| {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    for (id, netns) in pods {
                        let _ = rt.block_on(cni.del(&id, Some(&netns)));
                    }
                });
            });
            run(&["ip", "link", "del", &self.bridge]);
            let mut fwd = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
            fwd.0 -= 1;
            if fwd.0 == 0 {
                if let Some(v) = fwd.1.take() {
                    let _ = std::fs::write(IP_FORWARD, v);
                }
            }
        }
    }

    /// Runs `f` on a thread that has entered the network namespace `ns`.
    pub fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(ns.path()).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("netns thread")
        })
    }
}

fn ip_in(net: &Net, ip: IpAddr) -> bool {
    ip.to_string()
        .starts_with(&format!("10.209.{}.", net.octet))
}

/// A TCP connection from `from` to a listener in `to` on `to_ip`, one
/// message across.
fn connect(from: &Netns, to: &Netns, to_ip: IpAddr) {
    let listener = in_netns(to, || TcpListener::bind((to_ip, 0)).expect("bind in pod"));
    let addr = listener.local_addr().expect("addr");
    let client = in_netns(from, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
        s.write_all(b"hi").expect("write");
        s
    });
    let (mut conn, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 2];
    conn.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"hi");
    drop(client);
}

fn nat_rules_mention(id: &str) -> bool {
    let out = support::run(&["iptables-save", "-t", "nat"]);
    String::from_utf8_lossy(&out.stdout).contains(id)
}

#[tokio::test]
async fn two_pods_get_distinct_ips_reach_each_other_and_del_frees_them() {
    let net = Net::new();
    let ns1 = Netns::new();
    let mut ns2 = Netns::new();
    let id1 = format!("{}-a", net.name);
    let id2 = format!("{}-b", net.name);
    let r1 = net.cni.add(&net.pod(&id1, &ns1)).await.expect("add 1");
    let r2 = net.cni.add(&net.pod(&id2, &ns2)).await.expect("add 2");
    let (ip1, ip2) = (r1.pod_ips()[0], r2.pod_ips()[0]);
    assert!(
        ip_in(&net, ip1) && ip_in(&net, ip2) && ip1 != ip2,
        "{ip1} {ip2}"
    );
    assert_eq!(r1.ips[0].prefix_len, 24);
    assert!(
        r1.interfaces
            .iter()
            .any(|i| i.name == "eth0" && i.sandbox.is_some()),
        "{r1:?}"
    );
    assert_eq!(net.allocations("store"), {
        let mut v = vec![ip1.to_string(), ip2.to_string()];
        v.sort();
        v
    });
    net.cni.check(&id1).await.expect("check");

    connect(&ns2, &ns1, ip1);
    connect(&ns1, &ns2, ip2);

    net.cni.del(&id1, Some(&ns1.path())).await.expect("del 1");
    assert_eq!(net.allocations("store"), [ip2.to_string()]);
    net.cni
        .del(&id1, Some(&ns1.path()))
        .await
        .expect("del 1 again");
    // The netns is gone before DEL: still fine, and the IP is freed.
    ns2.delete();
    net.cni
        .del(&id2, Some(&ns2.path()))
        .await
        .expect("del 2 without netns");
    assert!(net.allocations("store").is_empty());
    assert!(!net
        .tmp
        .path()
        .join("cache")
        .join(format!("{id2}.json"))
        .exists());
}

#[tokio::test]
async fn port_mapping_reaches_the_pod_and_del_removes_the_rules() {
    let net = Net::new();
    let ns = Netns::new();
    let id = format!("{}-p", net.name);
    let host_port = 20_000 + (net.octet as u16) * 100 + 7;
    let mut pod = net.pod(&id, &ns);
    pod.port_mappings.push(PortMapping {
        container_port: 8080,
        host_port,
        protocol: "TCP".into(),
        host_ip: "127.0.0.1".into(),
    });
    let r = net.cni.add(&pod).await.expect("add");
    let ip = r.pod_ips()[0];
    assert!(
        nat_rules_mention(&id),
        "portmap made DNAT rules for the pod"
    );
    let listener = in_netns(&ns, || TcpListener::bind((ip, 8080)).expect("bind"));
    let to = SocketAddr::from(([127, 0, 0, 1], host_port));
    let mut s =
        TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("connect via host port");
    s.write_all(b"pm").expect("write");
    let (mut conn, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 2];
    conn.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"pm");
    net.cni.del(&id, Some(&ns.path())).await.expect("del");
    assert!(!nat_rules_mention(&id), "portmap DEL removed its rules");
}

#[tokio::test]
async fn a_failing_plugin_gives_a_precise_error_and_leaves_no_allocation() {
    let net = Net::new();
    let ns = Netns::new();
    // tuning runs after bridge has allocated an address, then fails.
    let bad =
        serde_json::json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_knob": "1"}});
    net.write_conf("10-test.conflist", &net.conflist("store", &[bad]));
    let id = format!("{}-f", net.name);
    let err = net
        .cni
        .add(&net.pod(&id, &ns))
        .await
        .expect_err("tuning fails");
    match &err {
        Error::Plugin {
            plugin,
            command,
            msg,
            ..
        } => {
            assert_eq!(
                (plugin.as_str(), command.as_str()),
                ("tuning", "ADD"),
                "{err}"
            );
            assert!(msg.contains("no_such_knob"), "{err}");
        }
        other => panic!("not a plugin error: {other}"),
    }
    assert!(
        net.allocations("store").is_empty(),
        "rolled back: {:?}",
        net.allocations("store")
    );
    assert!(!net
        .tmp
        .path()
        .join("cache")
        .join(format!("{id}.json"))
        .exists());
    assert!(!nat_rules_mention(&id));

    // A config the plugin refuses: a bad subnet.
    let mut conf = net.conflist("store", &[]);
    conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] = "10.209.999.0/24".into();
    net.write_conf("10-test.conflist", &conf);
    let err = net
        .cni
        .add(&net.pod(&id, &ns))
        .await
        .expect_err("bad subnet");
    assert!(
        matches!(&err, Error::Plugin { plugin, .. } if plugin == "bridge"),
        "{err}"
    );
    assert!(err.to_string().contains("10.209.999.0/24"), "{err}");
    assert!(matches!(
        err.kind(),
        ErrorKind::InvalidArgument | ErrorKind::Internal
    ));
    assert!(net.allocations("store").is_empty());
}

#[tokio::test]
async fn del_uses_the_cached_config_after_the_conf_dir_changed() {
    let net = Net::new();
    let ns = Netns::new();
    let id = format!("{}-c", net.name);
    let r = net.cni.add(&net.pod(&id, &ns)).await.expect("add");
    assert_eq!(net.allocations("store"), [r.pod_ips()[0].to_string()]);
    // Now the conf dir points at another store: DEL must still free the
    // address in the one ADD used.
    net.write_conf("10-test.conflist", &net.conflist("other-store", &[]));
    net.cni.del(&id, Some(&ns.path())).await.expect("del");
    assert!(net.allocations("store").is_empty());
    assert!(
        !Path::new(&net.tmp.path().join("other-store")).exists()
            || net.allocations("other-store").is_empty()
    );
}
