//! `corten-shim pod-init`: start the init of a pod's shared pid namespace
//! (see [`crate::linux::spawn_pod_init`]), print its pid on stdout and exit.
//! The daemon records the pid; containers join `/proc/<pid>/ns/pid`; the pod
//! is torn down with SIGKILL to that pid (which ends the whole namespace).

use crate::linux;

/// Runs `corten-shim pod-init`: returns the process exit code.
pub fn main() -> u8 {
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
