#!/usr/bin/env bash
# The benchmarks' peer runtime, pinned, built with the Go toolchain from the
# Go module proxy into .test-tools/bin: containerd 2.x, its runc shim
# (containerd-shim-runc-v2) and runc at the version containerd's CI uses
# (its script/setup/runc-version). Debian 12's runc 1.1.5 cannot start
# containerd 2.4's pause container ("can't get final child's PID from
# pipe: EOF"). A binary already there at the right version is kept
# (checked with `go version -m`).
#
# Build tags: no_btrfs (its snapshotter needs the btrfs C headers, and the
# benchmarks use overlayfs); the shim also gets no_grpc, as containerd's
# own Makefile builds it. CGO is off: neither binary needs it then. runc
# needs CGO (its nsenter is C) and gets seccomp (libseccomp-dev, which
# bench.sh installs), as its releases have.
set -euo pipefail

cd "$(dirname "$0")/.."
CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.2
BIN="$PWD/.test-tools/bin"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
command -v go >/dev/null || { echo "go is required to build containerd" >&2; exit 1; }

ok() {
    go version -m "$BIN/$1" 2>/dev/null \
        | grep -qE "mod\s+github.com/containerd/containerd/v2\s+$CONTAINERD_VERSION\b"
}

mkdir -p "$BIN"
if ! ok containerd; then
    echo "== building containerd $CONTAINERD_VERSION"
    CGO_ENABLED=0 GOBIN="$BIN" go install -tags "no_btrfs urfave_cli_no_docs" \
        -ldflags "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION"
fi
if ! ok containerd-shim-runc-v2; then
    echo "== building containerd-shim-runc-v2 $CONTAINERD_VERSION"
    CGO_ENABLED=0 GOBIN="$BIN" go install -tags "no_btrfs no_grpc urfave_cli_no_docs" \
        -ldflags "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
fi
if ! go version -m "$BIN/runc" 2>/dev/null \
        | grep -qE "mod\s+github.com/opencontainers/runc\s+$RUNC_VERSION\b"; then
    echo "== building runc $RUNC_VERSION"
    CGO_ENABLED=1 GOBIN="$BIN" go install -tags seccomp \
        "github.com/opencontainers/runc@$RUNC_VERSION"
fi
