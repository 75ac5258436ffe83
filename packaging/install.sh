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
# The default pod network, only where no CNI configuration exists yet.
CNI_CONF_DIR="${CNI_CONF_DIR:-/etc/cni/net.d}"
if [ -z "$(ls -A "$CNI_CONF_DIR" 2>/dev/null)" ]; then
    install -D -m 0644 packaging/cni/10-corten-bridge.conflist "$CNI_CONF_DIR/10-corten-bridge.conflist"
fi
echo "installed; start with: systemctl daemon-reload && systemctl enable --now cortend"
