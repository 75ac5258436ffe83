//! `corten-shim pod-init`: start the init of a pod's shared pid namespace
//! (see [`crate::linux::spawn_pod_init`]), print its pid on stdout and exit.
//! The daemon records the pid; containers join `/proc/<pid>/ns/pid`; the pod
//! is torn down with SIGKILL to that pid (which ends the whole namespace).

use crate::linux;

/// Runs `corten-shim pod-init [--cgroup PATH] [--userns PATH]`: returns
/// the process exit code. With a cgroup, the init is born there (removing
/// the pod's cgroup kills it, recorded or not); this helper itself never
/// joins it. With a user namespace, the pid namespace is made inside it.
pub fn main(cgroup: Option<&str>, userns: Option<&str>) -> u8 {
    let birth = match cgroup.map(open_birth).transpose() {
        Ok(birth) => birth,
        Err(e) => {
            eprintln!("corten-shim pod-init: {e}");
            return 1;
        }
    };
    match linux::spawn_pod_init(birth.as_ref(), userns.map(std::path::Path::new)) {
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

/// The pod's cgroup, opened for the init to be born in.
fn open_birth(path: &str) -> Result<linux::CgroupBirth, String> {
    let cg = crate::cgroups::detect()
        .and_then(|h| crate::cgroups::Cgroup::open(&h, path))
        .map_err(|e| format!("open cgroup {path}: {e}"))?;
    linux::CgroupBirth::open(cg.v1_dirs(), cg.unified_dir())
        .map_err(|e| format!("open cgroup {path}: {e}"))
}
