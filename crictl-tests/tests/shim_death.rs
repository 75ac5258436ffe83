//! A container's shim killed with SIGKILL (issue 12): the container's
//! processes are killed through its cgroup, it reports EXITED with a reason
//! and message that say so, Stop and Remove succeed, its pod is removable,
//! and nothing is left; also when the shim dies while cortend is down.

mod container_env;

use std::os::unix::net::UnixStream;
use std::time::Duration;

use container_env::Env;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The shim of container `id`: the peer of a connection to its socket
/// (the process this test's daemon started, found without a name).
fn shim_pid(env: &Env, id: &str) -> i32 {
    let socket = env
        .d
        .dir()
        .join("state/containers")
        .join(id)
        .join("shim.sock");
    let (_dir, addr) =
        corten_runtime::shim::protocol::socket_address(&socket).expect("socket address");
    let stream = UnixStream::connect(&addr).expect("the shim answers");
    let cred = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .expect("SO_PEERCRED");
    cred.pid()
}

/// Whether `pid` still runs (a zombie does not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_for(what: &str, ok: impl FnMut() -> bool) {
    crictl_tests::wait::until(what, Duration::from_secs(30), ok);
}

fn cgroup_exists(path: &str) -> bool {
    let h = corten_runtime::cgroups::detect().expect("cgroups");
    corten_runtime::cgroups::Cgroup::open(&h, path).is_ok()
}

struct Victim {
    id: String,
    pid: i32,
    cgroup: String,
    shim: i32,
}

/// A running container of `pod` with a child process of its own (so more
/// than the init must be killed).
fn victim(env: &Env, pod: &str, pod_name: &str, name: &str) -> Victim {
    let id = env.run(
        pod,
        pod_name,
        name,
        &["sh", "-c", "sleep 3600 & exec sleep 3600"],
    );
    let v = env.inspect(&id);
    let pid = v["info"]["pid"].as_i64().expect("pid") as i32;
    let cgroup = v["info"]["runtimeSpec"]["linux"]["cgroupsPath"]
        .as_str()
        .expect("cgroups path")
        .to_string();
    assert!(alive(pid) && cgroup_exists(&cgroup));
    let shim = shim_pid(env, &id);
    assert_ne!(shim, pid);
    Victim {
        id,
        pid,
        cgroup,
        shim,
    }
}

fn cgroup_pids(path: &str) -> Vec<i32> {
    let h = corten_runtime::cgroups::detect().expect("cgroups");
    corten_runtime::cgroups::Cgroup::open(&h, path)
        .and_then(|c| c.pids())
        .unwrap_or_default()
}

/// After the shim's death has been noticed: the container ended, said why,
/// and everything of it is gone once removed, pod included.
fn check_ended_and_removable(env: &Env, pod: &str, v: &Victim, procs: &[i32]) {
    let status = env.wait_state(&v.id, "CONTAINER_EXITED", Duration::from_secs(30));
    assert_eq!(status["status"]["reason"], "ShimDied", "{status}");
    let message = status["status"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("shim") && message.contains(&v.cgroup),
        "{status}"
    );
    assert_eq!(status["status"]["exitCode"], 137, "{status}");
    for pid in procs {
        wait_for(&format!("process {pid} of {} killed", v.id), || {
            !alive(*pid)
        });
    }
    assert!(!cgroup_exists(&v.cgroup), "cgroup {} left", v.cgroup);
    env.d.crictl(&["stop", "--timeout", "0", &v.id]).ok();
    env.d.crictl(&["rm", &v.id]).ok();
    let bundle = env.d.dir().join("state/containers").join(&v.id);
    assert!(!bundle.exists(), "bundle {} left", bundle.display());
    env.d.crictl(&["stopp", pod]).ok();
    env.d.crictl(&["rmp", pod]).ok();
    let pods = env.d.crictl(&["pods", "-q"]).ok();
    assert!(!pods.contains(pod), "{pods}");
}

#[test]
fn a_killed_shim_takes_its_container_with_it() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("needs root (namespaces, cgroups)");
    }
    let env = Env::new();
    let pod = env.pod("shimdeath");
    let v = victim(&env, &pod, "shimdeath", "victim");
    let procs = cgroup_pids(&v.cgroup);
    assert!(procs.len() >= 2, "init and its child: {procs:?}");
    kill(Pid::from_raw(v.shim), Signal::SIGKILL).expect("kill the shim");
    check_ended_and_removable(&env, &pod, &v, &procs);
}

#[test]
fn a_shim_killed_while_the_daemon_is_down_is_found_at_restart() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("needs root (namespaces, cgroups)");
    }
    let mut env = Env::new();
    let pod = env.pod("shimdown");
    let v = victim(&env, &pod, "shimdown", "victim");
    let procs = cgroup_pids(&v.cgroup);
    let status = env.d.terminate();
    assert!(status.success(), "cortend exited with {status}");
    kill(Pid::from_raw(v.shim), Signal::SIGKILL).expect("kill the shim");
    wait_for("the shim gone", || !alive(v.shim));
    // Its container runs on, orphaned, until the daemon is back.
    assert!(alive(v.pid));
    env.d.resume();
    check_ended_and_removable(&env, &pod, &v, &procs);
}
