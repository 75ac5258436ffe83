#!/usr/bin/env bash
# crictl and critest of one pinned cri-tools release, built by the Go
# toolchain from the Go module proxy into .test-tools/bin (skipped when the
# binaries there are that release already). run.sh and bench.sh call it.
set -euo pipefail

cd "$(dirname "$0")/.."
CRI_TOOLS_VERSION=v1.34.0
# critest of a later release, only for the specs v1.34.0 lacks (image volumes,
# [Feature:ImageVolume]); it needs a newer Go (go.mod of v1.37.0: go 1.26.6).
CRITEST_NEXT_VERSION=v1.37.0
TOOLS="$PWD/.test-tools"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

# crictl, pinned, built from the Go module proxy into .test-tools/bin.
command -v go >/dev/null || { echo "go is required to build crictl" >&2; exit 1; }
# (go install leaves the binary's own version "unknown"; the module version
# recorded in the binary tells which one it is.)
if ! go version -m "$TOOLS/bin/crictl" 2>/dev/null | grep -qE "mod\s+sigs.k8s.io/cri-tools\s+$CRI_TOOLS_VERSION\b"; then
    echo "== building crictl $CRI_TOOLS_VERSION"
    GOBIN="$TOOLS/bin" go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
fi

# critest, the CRI validation suite, of one cri-tools release: a Go test
# binary, built with `go test -c` inside a scratch module whose only
# requirement is cri-tools (tools.go pulls in what its test file imports).
# build_critest VERSION GO_DIRECTIVE OUTPUT
build_critest() {
    local version="$1" go_directive="$2" out="$3"
    if go version -m "$out" 2>/dev/null | grep -qE "(mod|dep)\s+sigs.k8s.io/cri-tools\s+$version\b"; then
        return 0
    fi
    echo "== building critest $version as $out"
    local scratch
    scratch="$(mktemp -d)"
    printf 'module corten.test/critest\n\ngo %s\n' "$go_directive" > "$scratch/go.mod"
    cat > "$scratch/tools.go" <<'GOEOF'
//go:build tools

package tools

import (
	_ "github.com/onsi/ginkgo/v2/types"
	_ "sigs.k8s.io/cri-tools/pkg/benchmark"
	_ "sigs.k8s.io/cri-tools/pkg/validate"
	_ "sigs.k8s.io/cri-tools/pkg/version"
)
GOEOF
    (cd "$scratch" && go get "sigs.k8s.io/cri-tools@$version" && go mod tidy \
        && CGO_ENABLED=0 go test -c -o "$out.partial" \
            -ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=${version#v}" \
            sigs.k8s.io/cri-tools/cmd/critest) || { rm -rf "$scratch" "$out.partial"; return 1; }
    mv "$out.partial" "$out"
    rm -rf "$scratch"
}

build_critest "$CRI_TOOLS_VERSION" 1.24.1 "$TOOLS/bin/critest"
# critest-1.37: the image volume specs (tests/critest.rs, image_volume_specs).
build_critest "$CRITEST_NEXT_VERSION" 1.26.6 "$TOOLS/bin/critest-1.37"
