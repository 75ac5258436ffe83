//! `corten-shim pod-init`: start the init of a pod's shared pid namespace
//! (see [`crate::linux::spawn_pod_init`]), print its pid on stdout and exit.
//! The daemon records the pid; containers join `/proc/<pid>/ns/pid`; the pod
//! is torn down with SIGKILL to that pid (which ends the whole namespace).

use crate::linux;

/// Runs `corten-shim pod-init [--cgroup PATH]`: returns the process exit
/// code. With a cgroup, this helper joins it first, so the init is born
/// there (removing the pod's cgroup kills it, recorded or not).
pub fn main(cgroup: Option<&str>) -> u8 {
    if let Some(path) = cgroup {
        let joined = crate::cgroups::detect()
            .and_then(|h| crate::cgroups::Cgroup::open(&h, path))
            .and_then(|cg| cg.add_pid(std::process::id() as i32));
        if let Err(e) = joined {
            eprintln!("corten-shim pod-init: join cgroup {path}: {e}");
            return 1;
        }
    }
    match linux::spawn_pod_init() {
        Ok(pid) => {
            println!("{pid}");
            0
        }
        Err(e) => {
            eprintln!("corten-shim pod-init: {e}");
            1
        }
    }
}
