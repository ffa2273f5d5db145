#!/usr/bin/env bash
# Re-vendor the WIT dependencies from the pinned crates (they must be in the cargo registry:
# run `cargo fetch` first; spin-sdk is no dependency of ours, so fetch it with
# `cargo add spin-sdk@5.2.0` in a scratch crate). Rewrites wit/deps and wit/deps.lock; commit both.
set -euo pipefail
cd "$(dirname "$0")/.."
reg=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ | head -1)
waki="$reg/waki-0.5.1/wit/deps"
config="$reg/wasmtime-wasi-config-48.0.8/wit/deps/config"
spin_config="$reg/spin-sdk-5.2.0/wit/deps/wasi-runtime-config-2024-09-27"
[ -d "$waki" ] && [ -d "$config" ] && [ -d "$spin_config" ] || { echo "pinned crates missing from $reg; run cargo fetch" >&2; exit 1; }
rm -rf wit/deps && mkdir -p wit/deps
cp -r "$waki"/* wit/deps/ && cp -r "$config" wit/deps/config
cp -r "$spin_config" wit/deps/config-draft-2024-09-27
{
  echo "# Vendored WIT packages. Builds read only these files; nothing is fetched."
  echo "# Refresh with scripts/vendor-wit.sh and commit the result together with this file."
  echo "wasi:cli@0.2.2 wasi:clocks@0.2.2 wasi:filesystem@0.2.2 wasi:http@0.2.2 wasi:io@0.2.2 wasi:random@0.2.2 wasi:sockets@0.2.2  from crate waki 0.5.1 (wit/deps)"
  echo "wasi:config@0.2.0-rc.1  from crate wasmtime-wasi-config 48.0.8 (wit/deps/config)"
  echo "wasi:config@0.2.0-draft-2024-09-27  from crate spin-sdk 5.2.0 (wit/deps/wasi-runtime-config-2024-09-27)"
  (cd wit/deps && find . -name '*.wit' | sort | xargs sha256sum)
} > wit/deps.lock
echo "vendored into wit/deps; pins in wit/deps.lock"
