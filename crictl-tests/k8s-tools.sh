#!/usr/bin/env bash
# The Kubernetes parts of the test suite, pinned, built with the Go toolchain
# from the Go module proxy into .test-tools/bin: kubelet, kube-apiserver,
# kubectl, kube-controller-manager, kube-scheduler (the one-node cluster
# tests need the controllers: Deployments, Jobs, service accounts), etcd,
# agnhost, the node e2e test binary (e2e_node.test) and the ginkgo CLI that
# runs it on several processes.
# run.sh calls it; it also runs alone: `bash crictl-tests/k8s-tools.sh`.
# A binary already there at the right version is kept (checked with
# `go version -m`), so a second run only costs the checks.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod points its k8s.io/*
# staging modules at local paths. A scratch module requires it and replaces
# each of those with its published tag (v0.X.Y for v1.X.Y), then builds the
# commands from the module cache. etcd is built in the same module, at the
# version kubernetes itself requires, so the packages they share are
# compiled once.
#
# Measured on the 2-core machine (shared with other builds, load 5 to 14):
# cold Go build cache 24 min wall (880 s of CPU: module download 20 s,
# the five commands 760 s, e2e_node.test 694 s); warm cache 75 s (30 s
# of CPU: resolving 10 s, commands 42 s, e2e_node.test 22 s); all present
# 1 s (the checks alone). kube-controller-manager and kube-scheduler,
# added to a warm cache: 161 s wall at load 8 (80 s of CPU), the extra
# their own packages and links cost on a cold cache too.
set -euo pipefail

cd "$(dirname "$0")/.."
K8S_VERSION=v1.34.3
# The staging modules are tagged v0.<minor>.<patch> for v1.<minor>.<patch>.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
TOOLS="$PWD/.test-tools"
BIN="$TOOLS/bin"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
command -v go >/dev/null || { echo "go is required to build the Kubernetes binaries" >&2; exit 1; }

# `go version -m` names the module a binary's main package came from (as
# `mod`; a test binary names it as `dep`) and the -ldflags it was built
# with: both must be this version's.
k8s_ok() {
    local info
    info="$(go version -m "$1" 2>/dev/null)" || return 1
    grep -qE "(mod|dep)\s+k8s.io/kubernetes\s+$K8S_VERSION\b" <<<"$info" || return 1
    # agnhost and e2e_node.test do not print a Kubernetes version; the
    # servers and kubectl must, or kubelet and kube-apiserver refuse skew.
    case "$(basename "$1")" in
        agnhost | e2e_node.test) ;;
        *) grep -qF "version.gitVersion=$K8S_VERSION" <<<"$info" || return 1 ;;
    esac
}
# etcd at the version kubernetes requires (read from kubernetes' go.mod).
etcd_ok() {
    [ -n "${ETCD_VERSION:-}" ] || return 1
    go version -m "$1" 2>/dev/null | grep -qE "(mod|dep)\s+go.etcd.io/etcd/server/v3\s+$ETCD_VERSION\b"
}
# The ginkgo CLI at the version of the library kubernetes' tests use.
ginkgo_ok() {
    [ -n "${GINKGO_VERSION:-}" ] || return 1
    go version -m "$1" 2>/dev/null | grep -qE "mod\s+github.com/onsi/ginkgo/v2\s+$GINKGO_VERSION\b"
}

# main packages, by the file name they get in $BIN
declare -A mains=(
    [kubelet]=k8s.io/kubernetes/cmd/kubelet
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
    [agnhost]=k8s.io/kubernetes/test/images/agnhost
)
E2E_NODE=k8s.io/kubernetes/test/e2e_node

need_mains=()
for name in "${!mains[@]}"; do
    k8s_ok "$BIN/$name" || need_mains+=("$name")
done
need_e2e=0
k8s_ok "$BIN/e2e_node.test" || need_e2e=1
# Cheap case first: everything there (etcd's version is known only from
# kubernetes' go.mod, which a previous build left in the module cache).
kmod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
[ -f "$kmod" ] && ETCD_VERSION="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$kmod")"
[ -f "$kmod" ] && GINKGO_VERSION="$(awk '$1 == "github.com/onsi/ginkgo/v2" { print $2 }' "$kmod")"
need_etcd=0
etcd_ok "$BIN/etcd" || need_etcd=1
need_ginkgo=0
ginkgo_ok "$BIN/ginkgo" || need_ginkgo=1
if [ ${#need_mains[@]} -eq 0 ] && [ $need_e2e -eq 0 ] && [ $need_etcd -eq 0 ] && [ $need_ginkgo -eq 0 ]; then
    echo "== Kubernetes $K8S_VERSION binaries, etcd $ETCD_VERSION and ginkgo $GINKGO_VERSION already built"
    exit 0
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
printf 'module corten.test/k8s\n\ngo 1.24.0\n' >go.mod
go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
kmod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
# Every staging module of kubernetes' replace block (`k8s.io/x => ./staging/...`).
staging="$(sed -n '/^replace (/,/^)/p' "$kmod" | awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }')"
[ -n "$staging" ] || { echo "no staging modules found in $kmod" >&2; exit 1; }
for m in $staging; do
    go mod edit -replace "$m=$m@$STAGING_VERSION"
done
ETCD_VERSION="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$kmod")"
[ -n "$ETCD_VERSION" ] || { echo "kubernetes $K8S_VERSION requires no etcd server?" >&2; exit 1; }
etcd_ok "$BIN/etcd" && need_etcd=0
GINKGO_VERSION="$(awk '$1 == "github.com/onsi/ginkgo/v2" { print $2 }' "$kmod")"
[ -n "$GINKGO_VERSION" ] || { echo "kubernetes $K8S_VERSION requires no ginkgo?" >&2; exit 1; }

echo "== resolving Kubernetes $K8S_VERSION and etcd $ETCD_VERSION modules"
# -t: also what the e2e_node test files import.
go get -t "k8s.io/kubernetes/cmd/kubelet@$K8S_VERSION" "$E2E_NODE@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" \
    "k8s.io/kubernetes/test/images/agnhost@$K8S_VERSION" "go.etcd.io/etcd/server/v3@$ETCD_VERSION"

# The version stamps of hack/lib/version.sh; the date is the tag's.
minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"
date="$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
done
mkdir -p "$BIN"
export CGO_ENABLED=0

# One `go build` for every main package missing, so shared packages are
# compiled once and linked concurrently.
pkgs=()
for name in "${need_mains[@]}"; do pkgs+=("${mains[$name]}"); done
[ $need_etcd -eq 1 ] && pkgs+=(go.etcd.io/etcd/server/v3)
if [ ${#pkgs[@]} -gt 0 ]; then
    echo "== building ${pkgs[*]}"
    start=$SECONDS
    mkdir out
    go build -ldflags "$ldflags" -o out/ "${pkgs[@]}"
    # etcd's main package is go.etcd.io/etcd/server/v3: go names it "server".
    [ -f out/server ] && mv out/server out/etcd
    mv out/* "$BIN/"
    echo "== built in $((SECONDS - start)) s"
fi
if [ $need_e2e -eq 1 ]; then
    echo "== building $E2E_NODE (go test -c)"
    start=$SECONDS
    go test -c -ldflags "$ldflags" -o "$BIN/e2e_node.test" "$E2E_NODE"
    echo "== built in $((SECONDS - start)) s"
fi
if [ $need_ginkgo -eq 1 ]; then
    # A module of its own: its tool dependencies stay out of kubernetes' graph.
    echo "== building the ginkgo CLI $GINKGO_VERSION"
    start=$SECONDS
    GOBIN="$BIN" go install "github.com/onsi/ginkgo/v2/ginkgo@$GINKGO_VERSION"
    echo "== built in $((SECONDS - start)) s"
fi
