#!/usr/bin/env bash
# Builds cortend (release) and starts it with its defaults: config from
# /etc/corten/config.toml if present, socket /run/corten/corten.sock.
# Extra arguments go to cortend (e.g. --log-level debug). Needs root.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"

# The CRI bindings are generated at build time and need protoc.
if ! command -v protoc >/dev/null; then
    echo "== installing protobuf-compiler (protoc)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler
fi
cargo build --release --bins
exec ./target/release/cortend "$@"
