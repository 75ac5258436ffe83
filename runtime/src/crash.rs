//! Deterministic crash points, for the tests that prove a crash at any step
//! leaves state that a restart or a retry completes or removes.
//!
//! With `CORTEN_CRASH_AT=<name>` in its environment, a process aborts (no
//! destructor, no flush: as `kill -9` would end it) the moment it reaches
//! the point of that name. Without the variable a point costs one load of
//! a cached value. [`POINTS`] lists every point, so a test can visit all.

use std::sync::OnceLock;

/// The environment variable naming the point to abort at.
pub const ENV: &str = "CORTEN_CRASH_AT";

/// Every crash point, by the operation it cuts.
pub const POINTS: &[&str] = &[
    // RunPodSandbox
    "pod.run.after_record",
    "pod.run.after_cgroup",
    "pod.run.after_shm",
    "pod.run.after_pin",
    "pod.run.after_init",
    "pod.run.after_cni_add",
    "pod.run.before_ready",
    // StopPodSandbox
    "pod.stop.after_containers",
    "pod.stop.after_cni_del",
    "pod.stop.before_record",
    // RemovePodSandbox
    "pod.remove.after_containers",
    "pod.remove.after_teardown",
    "pod.remove.after_files",
    // CreateContainer
    "container.create.after_bundle",
    "container.create.after_shim",
    // StartContainer
    "container.start.after_shim_start",
    // StopContainer
    "container.stop.after_kill",
    // RemoveContainer
    "container.remove.after_stop",
    "container.remove.after_delete",
    // PullImage
    "image.pull.during_unpack",
    "image.pull.after_layers",
    // RemoveImage (its garbage collection, after the lock is released)
    "image.remove.gc_before_delete",
    // The shim (which inherits cortend's environment): an external
    // runtime's create done, the daemon not told yet.
    "shim.external.after_create",
];

/// Aborts the process if `name` is the crash point it was told to stop at.
pub fn point(name: &'static str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()));
    if at.as_deref() == Some(name) {
        debug_assert!(POINTS.contains(&name), "crash point {name} is not listed");
        eprintln!("corten: crash point {name} reached: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_unique_and_a_point_not_chosen_returns() {
        let mut names = POINTS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), POINTS.len());
        // The test process has no CORTEN_CRASH_AT: nothing aborts.
        for p in POINTS {
            point(p);
        }
    }
}
