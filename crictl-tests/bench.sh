#!/usr/bin/env bash
# corten against containerd on this machine, side by side in one run: the
# table of crictl-tests/src/bin/bench-peer/, also written as JSON and
# Markdown under target/bench/. From a fresh machine: installs what it
# needs (Debian packages; containerd, runc and critest built by the Go
# toolchain from the Go module proxy), builds a release cortend, runs the
# benchmark.
# Usage (as root): bash crictl-tests/bench.sh [REPETITIONS]
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/.cargo/bin:$HOME/go/bin"
export CARGO_INCREMENTAL=0

if [ "$(id -u)" != 0 ]; then
    echo "crictl-tests/bench.sh: run as root (it runs pods under two runtimes)" >&2
    exit 1
fi

# The parts both runtimes use; libseccomp for the runc that peer-tools.sh
# builds.
packages=(containernetworking-plugins iptables iproute2 docker-registry libseccomp-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bash crictl-tests/peer-tools.sh
# critest, for `critest -benchmark` against both.
bash crictl-tests/cri-tools.sh
echo "== building (release)"
cargo build --release --quiet -p corten-cri --bin cortend -p corten-runtime --bin corten-shim \
    -p crictl-tests --bin bench-peer
CORTEND_BIN="$PWD/target/release/cortend" exec target/release/bench-peer "$@"
