//! The node's own mount namespace: cortend, the e2e suite and the kubelet
//! it launches all run in it, so they see one filesystem, as on a real
//! node, while the machine's stays as it was.
//!
//! A holder process (`sleep infinity` under util-linux `unshare --mount
//! --propagation private`) keeps the namespace; the others join it with
//! `nsenter`. Before it sleeps, the holder's script (that of the kubelet
//! fixture, [`crate::kubelet::host::namespace_script`], and more) sets up:
//!
//! - the kernel tunables kubelet insists on setting, each /proc/sys file
//!   covered by a file of the test's holding the host's value;
//! - /var/lib and /var/log covered by overlays whose upper layers are the
//!   test's (kubelet writes there whatever its flags say);
//! - /var/lib/kubelet (the suite's fixed kubelet root) and /var/log/pods
//!   (kubelet's pod log dir) bind mounts of directories of the test's, so
//!   they are on a real filesystem that kubelet's cAdvisor can measure;
//! - `systemd-run` covered by a file that is not executable: the suite
//!   runs kubelet as a systemd unit when it finds one, and these machines
//!   have the program but no systemd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::kubelet::host;
use crate::wait;

/// How long the holder gets to set the namespace up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Directories of the node bind-mounted over fixed paths, by the name of
/// their directory in the test's.
pub const NODE_DIRS: [(&str, &str); 2] = [
    ("kubelet-root", "/var/lib/kubelet"),
    ("pod-logs", "/var/log/pods"),
];

/// The process holding the namespace; killed (and reaped) when dropped.
pub struct Namespace {
    child: Option<Child>,
    dir: PathBuf,
}

impl Namespace {
    /// Sets the namespace up with its files under `dir` and waits until it
    /// is ready (the script writes `dir/ready` last).
    pub fn create(dir: &Path) -> Result<Namespace> {
        for tool in ["unshare", "nsenter", "mount", "findmnt"] {
            if crate::tools::which(tool).is_none() {
                bail!("{tool} (util-linux) is needed for the node's mount namespace");
            }
        }
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let script = script(dir)?;
        let log = std::fs::File::create(dir.join("namespace.log")).context("namespace.log")?;
        let err = log.try_clone().context("namespace.log")?;
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .args([
                "/bin/sh",
                "-c",
                &script,
                "node-mount-ns",
                "sleep",
                "infinity",
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .context("run unshare for the node's mount namespace")?;
        let mut ns = Namespace {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let mut exited = None;
        let ready = wait::within(SETUP_TIMEOUT, || {
            if let Some(Ok(Some(status))) = ns.child.as_mut().map(Child::try_wait) {
                exited = Some(status);
                return true;
            }
            dir.join("ready").exists()
        });
        let log = std::fs::read_to_string(dir.join("namespace.log")).unwrap_or_default();
        if let Some(status) = exited {
            ns.child = None;
            bail!("the node's mount namespace script exited with {status}:\n{log}");
        }
        if !ready {
            bail!("the node's mount namespace is not ready after {SETUP_TIMEOUT:?}:\n{log}");
        }
        Ok(ns)
    }

    /// The holder's pid (`nsenter --target`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The command prefix that runs a program in the namespace:
    /// `nsenter --target PID --mount --` (nsenter execs the program).
    pub fn enter(&self) -> Result<Vec<String>> {
        let pid = self
            .pid()
            .context("the node's mount namespace holder is gone")?;
        Ok(vec![
            "nsenter".into(),
            "--target".into(),
            pid.to_string(),
            "--mount".into(),
            "--".into(),
        ])
    }

    /// The directory holding the namespace's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What kubelet wrote into one of [`host::SHADOWED`].
    pub fn shadow_upper(&self, shadowed: &str) -> PathBuf {
        host::shadow_upper(&self.dir, shadowed)
    }

    /// The current value of `tunable` as the node sees it.
    pub fn tunable(&self, tunable: &str) -> String {
        host::tunable_seen_by_kubelet(&self.dir, tunable)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The holder's script: the kubelet fixture's (tunables, shadowed
/// directories), then the node's directories and the hidden
/// `systemd-run`, then `dir/ready`, then it execs its arguments.
fn script(dir: &Path) -> Result<String> {
    let base = host::namespace_script(dir)?;
    let mut script = base
        .strip_suffix("exec \"$@\"\n")
        .context("the kubelet fixture's namespace script does not end with its exec")?
        .to_string();
    for (name, target) in NODE_DIRS {
        let source = dir.join(name);
        std::fs::create_dir_all(&source).with_context(|| format!("create {}", source.display()))?;
        script.push_str(&format!(
            "mkdir -p {target}\nmount --bind {} {target}\n",
            quote(&source.display().to_string())
        ));
    }
    let blocker = dir.join("not-systemd-run");
    std::fs::write(
        &blocker,
        "# covers systemd-run in the node's mount namespace: no systemd here\n",
    )
    .with_context(|| format!("write {}", blocker.display()))?;
    for found in systemd_runs() {
        let at = quote(&found.display().to_string());
        script.push_str(&format!(
            "mount --bind {} {at}\n",
            quote(&blocker.display().to_string())
        ));
    }
    script.push_str(&format!(
        "touch {}\nexec \"$@\"\n",
        quote(&dir.join("ready").display().to_string())
    ));
    Ok(script)
}

/// Every `systemd-run` on `PATH` (its real file).
fn systemd_runs() -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = std::env::split_paths(&path)
        .map(|d| d.join("systemd-run"))
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// `s` single-quoted for sh.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_binds_the_node_dirs_hides_systemd_run_and_execs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = script(dir.path()).expect("script");
        for (name, target) in NODE_DIRS {
            let line = format!(
                "mount --bind '{}' {target}\n",
                dir.path().join(name).display()
            );
            assert!(s.contains(&line), "{s}");
            assert!(dir.path().join(name).is_dir());
        }
        for t in host::TUNABLES {
            assert!(s.contains(&format!(" /proc/sys/{t}\n")), "{s}");
        }
        for found in systemd_runs() {
            assert!(
                s.contains(&format!("' '{}'\n", found.display())),
                "{found:?} not covered: {s}"
            );
        }
        assert!(s.ends_with("/ready'\nexec \"$@\"\n"), "{s}");
        assert_eq!(s.matches("exec ").count(), 1, "{s}");
    }
}
