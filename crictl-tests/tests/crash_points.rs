//! Nothing lost, nothing stuck (issue 12): cortend aborted at every named
//! crash point of RunPodSandbox, StopPodSandbox, RemovePodSandbox,
//! Create/Start/Stop/RemoveContainer and PullImage (each with a plain pod
//! and with a pod in a user namespace), then restarted: every
//! object is complete or removable, RemovePodSandbox succeeds, and no
//! mount, pin, cgroup, veth, address, shim, process or temporary file is
//! left. Then a `kill -9` loop under pod and container churn.

mod container_env;

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use container_env::{path, Env};
use corten_runtime::crash;
use crictl_tests::network::mounts_under;
use crictl_tests::{wait, Compression, ImageBuilder};
use serde_json::json;

/// The image the pull points cut: a layer busybox does not have.
const CRASHY: &str = "crashy";

fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    crictl_tests::wait::until(what, Duration::from_secs(60), ok);
}

/// The test's own cgroup parent: every pod cgroup of a [`World`] goes
/// under it (one per World: the tests of this file run side by side).
fn cgroup_parent() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("/corten-crash-{}-{n}", std::process::id())
}

struct World {
    env: Env,
    parent: String,
    next: u32,
    /// The scenarios' pods have a user namespace.
    userns: bool,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let img = ImageBuilder::busybox()
            .marker("crashy")
            .and_then(|b| b.build(Compression::Gzip))
            .expect("build the crashy image");
        img.push(&env.reg, &format!("library/{CRASHY}"), "latest")
            .expect("push");
        World {
            env,
            parent: cgroup_parent(),
            next: 0,
            userns: false,
        }
    }

    /// A new pod under the test's cgroup parent; its name. With
    /// `self.userns` it has a user namespace (`hostUsers: false`).
    fn pod(&mut self) -> (String, String) {
        self.next += 1;
        let name = format!("crash{}", self.next);
        let mut linux = json!({"cgroup_parent": format!("{}/{name}", self.parent)});
        if self.userns {
            let map = json!([{"host_id": 200000, "container_id": 0, "length": 65536}]);
            linux["security_context"] = json!({"namespace_options": {
                "userns_options": {"mode": 0, "uids": map, "gids": map}
            }});
        }
        let mut pod = self.env.pod_config(&name);
        pod["linux"] = linux;
        let config = self.env.file(&format!("pod-{name}.json"), &pod);
        let out = self.env.d.crictl(&["runp", path(&config)]);
        (out.stdout().trim().to_string(), name)
    }

    fn crictl(&self, args: &[&str]) -> bool {
        self.env.d.crictl(args).output.status.success()
    }

    /// Runs the requests that reach `point`, up to the first that fails
    /// (the daemon aborted under it).
    fn scenario(&mut self, point: &str) {
        let op = point.split('.').take(2).collect::<Vec<_>>().join(".");
        if op == "image.pull" {
            self.crictl(&["pull", CRASHY]);
            return;
        }
        if op == "image.remove" {
            if self.crictl(&["pull", CRASHY]) {
                self.crictl(&["rmi", CRASHY]);
            }
            return;
        }
        let (pod, name) = self.pod();
        if pod.len() != 64 || op == "pod.run" {
            return;
        }
        let config = self
            .env
            .container_config("c", &["sh", "-c", "sleep 3600 & exec sleep 3600"]);
        let c = self.env.try_create(&pod, &name, &config);
        let id = c.stdout().trim().to_string();
        if id.len() != 64 || op == "container.create" {
            return;
        }
        if !self.crictl(&["start", &id]) || op == "container.start" {
            return;
        }
        match op.as_str() {
            "container.stop" => {
                self.crictl(&["stop", "--timeout", "0", &id]);
            }
            "container.remove" => {
                self.crictl(&["rm", "-f", &id]);
            }
            "pod.stop" => {
                self.crictl(&["stopp", &pod]);
            }
            "pod.remove" => {
                if self.crictl(&["stopp", &pod]) {
                    self.crictl(&["rmp", &pod]);
                }
            }
            other => panic!("no scenario for {other}"),
        }
    }

    /// After a restart: every pod is stopped and removed (each must
    /// succeed), the crashy image is pulled again and removed.
    fn converge(&self) {
        let pods = self.env.d.crictl(&["pods", "-q"]).ok();
        for pod in pods.lines().filter(|l| !l.is_empty()) {
            self.env.d.crictl(&["stopp", pod]).ok();
            self.env.d.crictl(&["rmp", pod]).ok();
        }
        self.env.d.crictl(&["pull", CRASHY]).ok();
        self.env.d.crictl(&["rmi", CRASHY]).ok();
    }

    /// Nothing of any pod, container or pull is left.
    fn assert_clean(&self, after: &str) {
        let d = &self.env.d;
        let pods = d.crictl(&["pods", "-q"]).ok();
        assert!(pods.trim().is_empty(), "{after}: pods left: {pods}");
        let ps = d.crictl(&["ps", "-a", "-q"]).ok();
        assert!(ps.trim().is_empty(), "{after}: containers left: {ps}");
        assert_eq!(
            mounts_under(d.dir()),
            Vec::<String>::new(),
            "{after}: mounts left"
        );
        // Removed containers' files are deleted in the background, from
        // the trash directories (which a start empties).
        for trash in [
            d.dir().join("state/containers.trash"),
            d.root_dir().join("containers.trash"),
        ] {
            let emptied = wait::within(Duration::from_secs(30), || entries(&trash).is_empty());
            assert!(
                emptied,
                "{after}: {}: {:?}",
                trash.display(),
                entries(&trash)
            );
        }
        for dir in [
            d.dir().join("state/pods"),
            d.dir().join("state/containers"),
            d.root_dir().join("containers"),
            d.root_dir().join("snapshots/tmp"),
            d.root_dir().join("content/ingest"),
        ] {
            assert_eq!(
                entries(&dir),
                Vec::<String>::new(),
                "{after}: {}",
                dir.display()
            );
        }
        assert_eq!(
            self.env.net.allocations(),
            Vec::<String>::new(),
            "{after}: addresses left"
        );
        assert_eq!(
            self.env.net.ports(),
            Vec::<String>::new(),
            "{after}: veths left"
        );
        assert_eq!(
            crictl_tests::cgroups::children(&self.parent),
            Vec::<PathBuf>::new(),
            "{after}: cgroups left"
        );
        let strays = processes_mentioning(&[&d.dir().display().to_string(), &self.parent], d.pid());
        assert_eq!(strays, Vec::<String>::new(), "{after}: processes left");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.env.d.crictl(&["rmp", "-a", "-f"]);
        crictl_tests::cgroups::remove_all(&self.parent);
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Processes (but `daemon`) whose command line mentions any of `needles`:
/// shims name their bundle, pod inits their cgroup.
fn processes_mentioning(needles: &[&str], daemon: Option<u32>) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if Some(pid) == daemon || pid == std::process::id() {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
            .unwrap_or(true);
        if !zombie && needles.iter().any(|n| cmdline.contains(n)) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[test]
fn every_crash_point_leaves_state_a_restart_completes_or_removes() {
    let mut w = World::new();
    // The shim's points are visited by their own test (the daemon lives).
    let points = crash::POINTS.iter().filter(|p| !p.starts_with("shim."));
    // Each point with a plain pod, then with a pod in a user namespace.
    for (point, userns) in points.flat_map(|p| [(p, false), (p, true)]) {
        w.userns = userns;
        w.env.d.set_env(crash::ENV, Some(point));
        w.env.d.restart();
        w.scenario(point);
        wait_until(&format!("cortend aborts at {point}"), || w.env.d.exited());
        let log = w.env.d.log();
        assert!(
            log.contains(&format!("crash point {point} reached")),
            "the scenario of {point} did not reach it:\n{log}"
        );
        w.env.d.set_env(crash::ENV, None);
        w.env.d.resume();
        w.converge();
        w.assert_clean(&format!("{point} (user namespace: {userns})"));
        println!("crash point {point} (user namespace: {userns}): recovered, nothing left");
    }
}

/// A tiny xorshift: how many requests go by before the next kill.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

#[test]
fn thirty_kills_under_churn_leak_nothing() {
    const KILLS: usize = 30;
    let mut w = World::new();
    let socket = format!("unix://{}", w.env.d.socket().display());
    let crictl = crictl_tests::tools::crictl();
    let dir = w.env.dir.path().to_path_buf();
    let parent = w.parent.clone();
    let stop = Arc::new(AtomicBool::new(false));
    // A rendezvous: the churn goes on only while the killer listens.
    let (about_to, requests) = mpsc::sync_channel::<()>(0);
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let run = |args: &[&str]| -> String {
                let _ = about_to.send(());
                Command::new(&crictl)
                    .args(["--runtime-endpoint", &socket, "--image-endpoint", &socket])
                    .args(["--timeout", "20s"])
                    .args(args)
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_default()
            };
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let name = format!("churn{n}");
                let pod = json!({
                    "metadata": {"name": name, "namespace": "churn", "uid": format!("uid-{name}"), "attempt": 0},
                    "hostname": name,
                    "log_directory": dir.join("logs").join(&name).display().to_string(),
                    "linux": {"cgroup_parent": format!("{parent}/{name}")},
                });
                let pod_file = dir.join(format!("churn-pod-{n}.json"));
                let ctr_file = dir.join(format!("churn-ctr-{n}.json"));
                let ctr = json!({
                    "metadata": {"name": "c"},
                    "image": {"image": "busybox"},
                    "command": ["sleep", "3600"],
                    "log_path": "c.log",
                    "linux": {}
                });
                let _ = std::fs::write(&pod_file, pod.to_string());
                let _ = std::fs::write(&ctr_file, ctr.to_string());
                let pod_id = run(&["runp", path(&pod_file)]);
                if pod_id.len() != 64 {
                    continue;
                }
                let id = run(&[
                    "create",
                    "--no-pull",
                    &pod_id,
                    path(&ctr_file),
                    path(&pod_file),
                ]);
                if id.len() == 64 {
                    run(&["start", &id]);
                    run(&["stop", "--timeout", "0", &id]);
                    run(&["rm", &id]);
                }
                run(&["stopp", &pod_id]);
                run(&["rmp", &pod_id]);
            }
        })
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("kill loop seed {seed}");
    let mut dice = Dice(seed);
    for kill in 0..KILLS {
        // Kill as the k-th next request is about to go out: it lands before,
        // during or after that request, wherever the daemon is.
        for _ in 0..=dice.roll(10) {
            if requests.recv().is_err() {
                break;
            }
        }
        // Random timing, not synchronisation: where in that request (or
        // between two) the kill lands.
        std::thread::sleep(Duration::from_millis(dice.roll(40)));
        let status = w.env.d.kill9();
        assert!(status.is_some_and(|s| s.signal() == Some(9)), "kill {kill}");
        w.env.d.resume();
    }
    stop.store(true, Ordering::SeqCst);
    // Let the churn thread finish its round: it ends once it sees the flag.
    while requests.recv().is_ok() {}
    churn.join().expect("churn thread");
    let log = w.env.d.log();
    let (ready, created) = (
        log.matches("pod ready").count(),
        log.matches("container created").count(),
    );
    println!("{KILLS} kills; the churn made {ready} pods and {created} containers");
    assert!(
        ready >= KILLS / 3,
        "too little churn to mean anything: {ready} pods"
    );
    w.env.d.crictl(&["rmp", "-a", "-f"]).ok();
    w.converge();
    w.assert_clean("the kill loop");
}
