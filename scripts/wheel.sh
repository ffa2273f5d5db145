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
# The component compiled ahead of time, shipped in the wheel's data (share/grouper-sync/) where the
# installed binary looks for it: built by the binary the wheel packs (maturin then finds it fresh).
cargo build --profile host-release -p grouper-sync-host --bin grouper-sync
shipped=host/wheel-data/data/share/grouper-sync
target/host-release/grouper-sync precompile "$shipped"
"$tools/bin/maturin" build --profile host-release --out target/wheels
wheel=$(ls target/wheels/jupyterhub_grouper_sync-*.whl)
python3 -m venv --clear target/wheel-venv
target/wheel-venv/bin/pip install -q --disable-pip-version-check "$wheel"
# The installed command must find its own compiled component: the same name from a fresh compile.
installed=$(ls target/wheel-venv/share/grouper-sync/*.cwasm)
fresh=$(target/wheel-venv/bin/grouper-sync precompile "$(mktemp -d)")
[ "$(basename "$installed")" = "$(basename "$fresh")" ] ||
  { echo "the wheel's compiled component $installed is not the installed binary's ($fresh)"; exit 1; }
rm -rf "$(dirname "$fresh")"
echo "installed $wheel into target/wheel-venv: $(target/wheel-venv/bin/grouper-sync --version), with $installed"
