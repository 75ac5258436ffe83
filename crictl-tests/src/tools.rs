//! Where the binaries under test and the test tools are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds `bins` (`-p PACKAGE --bin NAME` pairs) of the workspace, debug,
/// and returns the path of the first; panics when cargo fails.
fn build(bins: &[(&str, &str)]) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet"]);
    for (package, bin) in bins {
        cmd.args(["-p", package, "--bin", bin]);
    }
    match cmd.current_dir(workspace_root()).status() {
        Ok(s) if s.success() => {}
        other => panic!("cannot build {bins:?}: {other:?}"),
    }
    target_dir().join("debug").join(bins[0].1)
}

/// The `cortend` binary: `$CORTEND_BIN`, or the workspace's debug build
/// (with the `corten-shim` beside it), brought up to date once per test
/// process so a test never runs a stale one.
pub fn cortend() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("CORTEND_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => build(&[("corten-cri", "cortend"), ("corten-runtime", "corten-shim")]),
    })
    .clone()
}

/// The `critest-double` test program (see its source), built once per
/// test process.
pub fn critest_double() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build(&[("crictl-tests", "critest-double")]))
        .clone()
}

/// The real `crictl`: `$CRICTL`, the copy the test script installs under
/// `.test-tools/bin`, or the one on `PATH`.
pub fn crictl() -> PathBuf {
    if let Some(bin) = std::env::var_os("CRICTL") {
        return PathBuf::from(bin);
    }
    let local = workspace_root().join(".test-tools/bin/crictl");
    if local.is_file() {
        return local;
    }
    if let Some(found) = which("crictl") {
        return found;
    }
    panic!(
        "crictl not found: run crictl-tests/run.sh (it installs crictl into .test-tools/bin), \
         or set CRICTL"
    );
}

/// A Kubernetes binary (`kubelet`, `kube-apiserver`, `kubectl`,
/// `kube-controller-manager`, `kube-scheduler`, `etcd`, `agnhost`,
/// `e2e_node.test`): `$K8S_BIN_DIR/<name>`, else the copy
/// `crictl-tests/k8s-tools.sh` builds under `.test-tools/bin`. Panics with
/// what to run when it is not there: a test must not pass without it.
pub fn k8s_binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("K8S_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".test-tools/bin"));
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} not found: build the Kubernetes test binaries with crictl-tests/k8s-tools.sh \
         (crictl-tests/run.sh runs it), or set K8S_BIN_DIR",
        bin.display()
    );
    bin
}

/// Panics unless running as root: what needs it (`why`) would fail less
/// clearly. CI runs the tests as root; a test must never pass by skipping.
pub fn require_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root ({why}): run the tests as root, as CI does (crictl-tests/run.sh)"
    );
}

/// The first executable called `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// For the benchmarks: unless `CORTEND_BIN` names one already, builds a
/// release `cortend` with the `corten-shim` beside it and points
/// `CORTEND_BIN` at it, so [`cortend`] hands it out.
pub fn use_release_cortend() -> Result<(), String> {
    if std::env::var_os("CORTEND_BIN").is_some() {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .args(["-p", "corten-cri", "--bin", "cortend"])
        .args(["-p", "corten-runtime", "--bin", "corten-shim"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cannot build a release cortend: cargo {status}"));
    }
    std::env::set_var("CORTEND_BIN", target_dir().join("release/cortend"));
    Ok(())
}
