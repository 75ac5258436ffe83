#!/usr/bin/env bash
# Builds cortend (release) and starts it with its defaults: config from
# /etc/corten/config.toml if present, socket /run/corten/corten.sock.
# Extra arguments go to cortend (e.g. --log-level debug). Needs root.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"

# The CRI bindings are compiled by protox at build time: no protoc.
cargo build --release --bins
exec ./target/release/cortend "$@"
