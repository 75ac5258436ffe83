#!/usr/bin/env bash
# The whole corten test suite, from a fresh machine: installs every test
# dependency (Debian packages; crictl and the Kubernetes binaries built by
# the Go toolchain from the Go module proxy), checks formatting and lints,
# builds, and runs every test.
# Needs root (namespaces, mounts, cgroups), as CI has. .ci/run calls this.
set -euo pipefail

cd "$(dirname "$0")/.."
TOOLS="$PWD/.test-tools"
export PATH="$PATH:/usr/local/go/bin:$HOME/.cargo/bin:$HOME/go/bin"
# A from-scratch build gains nothing from incremental state, and it costs disk.
export CARGO_INCREMENTAL=0
# No protoc anywhere: the CRI bindings are compiled by protox (a Rust
# protobuf compiler); a protoc call would fail on this path.
export PROTOC=/nonexistent/protoc-is-not-needed

if [ "$(id -u)" != 0 ]; then
    echo "crictl-tests/run.sh: run as root (the tests create namespaces, mounts and cgroups)" >&2
    exit 1
fi

# Debian packages: the real parts the tests use. (No protoc: the CRI
# bindings are compiled by protox, and PROTOC below makes sure of it.)
packages=(containernetworking-plugins iptables iproute2 docker-registry busybox-static runc crun)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A hybrid cgroup host (v1 controllers, cgroup2 at /sys/fs/cgroup/unified)
# whose init left some controllers on the unified hierarchy (hugetlb, here):
# crun, a test runtime handler, refuses such a host ("cgroups in hybrid mode
# not supported, drop all controllers from cgroupv2"). systemd mounts them
# on v1 on a hybrid host; so does this step, as a node would have them.
unified=/sys/fs/cgroup/unified
if [ -s "$unified/cgroup.controllers" ] && [ ! -s "$unified/cgroup.subtree_control" ]; then
    for c in $(cat "$unified/cgroup.controllers"); do
        echo "== mounting the $c cgroup controller on v1 (hybrid host)"
        mkdir -p "/sys/fs/cgroup/$c"
        # A controller v1 cannot take stays where it is: the crun tests
        # then fail saying so, and everything else runs.
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" ||
            echo "warning: cannot mount the $c controller on v1: crun will refuse this host" >&2
    done
fi

# crictl and critest, pinned, built from the Go module proxy into
# .test-tools/bin.
command -v cargo >/dev/null || { echo "cargo is required" >&2; exit 1; }
bash crictl-tests/cri-tools.sh
export CRICTL="$TOOLS/bin/crictl"
export CRITEST="$TOOLS/bin/critest"

# Kubernetes v1.34 (kubelet, kube-apiserver, kubectl, etcd, agnhost, the
# e2e_node test binary), pinned, built from the Go module proxy into
# .test-tools/bin; the kubelet tests drive cortend with them.
bash crictl-tests/k8s-tools.sh

# Debian's dynamically linked busybox for critest's images (its shell runs
# /bin/ls rather than a built-in, as critest's masked-path spec needs). It
# conflicts with busybox-static as a package, so it is unpacked, not installed.
if [ ! -x "$TOOLS/busybox/bin/busybox" ]; then
    echo "== unpacking Debian busybox (dynamic) for critest images"
    debs="$(mktemp -d)"
    (cd "$debs" && { apt-get download busybox || { apt-get update -qq && apt-get download busybox; }; })
    dpkg-deb -x "$debs"/busybox_*.deb "$TOOLS/busybox"
    rm -rf "$debs"
fi
export CRITEST_BUSYBOX="$TOOLS/busybox/bin/busybox"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build"
cargo build --workspace --quiet
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --lib --bins --tests --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
