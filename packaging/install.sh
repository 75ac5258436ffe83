#!/usr/bin/env bash
# Installs a release build of corten on this host: binaries in
# /usr/local/bin, the systemd unit, and /etc/corten/config.toml (written
# from `cortend config` only when absent, so local edits survive).
set -euo pipefail

cd "$(dirname "$0")/.."
PREFIX="${PREFIX:-/usr/local}"
[ -x target/release/cortend ] || { echo "build first: cargo build --release" >&2; exit 1; }

install -D -m 0755 target/release/cortend "$PREFIX/bin/cortend"
install -D -m 0755 target/release/corten-shim "$PREFIX/bin/corten-shim"
install -D -m 0644 packaging/cortend.service /etc/systemd/system/cortend.service
if [ ! -e /etc/corten/config.toml ]; then
    install -d -m 0755 /etc/corten
    "$PREFIX/bin/cortend" config > /etc/corten/config.toml
fi
echo "installed; start with: systemctl daemon-reload && systemctl enable --now cortend"
