#!/usr/bin/env bash
# Builds the pip wheel of grouper-sync (maturin, `bin` bindings, the host in the `host-release`
# profile with the release component embedded) into target/wheels, and installs it into a fresh
# venv, target/wheel-venv, the way a hub admin installs it: afterwards target/wheel-venv/bin/grouper-sync is the installed command.
# Set GROUPER_SYNC_COMPONENT=path.wasm to embed a component built beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/maturin-venv
if [ ! -x "$tools/bin/maturin" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check --require-hashes -r /dev/stdin <<'PINS'
maturin==1.16.0 --hash=sha256:837db2f4d93d4899c3ac393fb3cc9eebf35b6002336e5d574f4a4fb6c49fe283
PINS
fi
rm -rf target/wheels
"$tools/bin/maturin" build --profile host-release --out target/wheels
wheel=$(ls target/wheels/jupyterhub_grouper_sync-*.whl)
python3 -m venv --clear target/wheel-venv
target/wheel-venv/bin/pip install -q --disable-pip-version-check "$wheel"
echo "installed $wheel into target/wheel-venv: $(target/wheel-venv/bin/grouper-sync --version)"
