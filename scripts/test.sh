#!/usr/bin/env bash
# The project's whole test suite, as CI runs it: format, the release component build, lints (native
# and wasm, both builds), then every test (unit, simulator, fixtures, component-in-wasmtime, HTTP
# entry and the Spin build, real hub, real platforms, host). The platform tests need
# `scripts/platforms.sh install` (outside CI they skip with a message if it was not run).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:--Dwarnings}"
cargo fmt --all -- --check
cargo build --release --target wasm32-wasip2 -p jupyterhub-grouper-sync
ls -l target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm
# The host embeds this same build instead of building the component a second time.
export GROUPER_SYNC_COMPONENT="$PWD/target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p jupyterhub-grouper-sync --target wasm32-wasip2 -- -D warnings
cargo clippy -p jupyterhub-grouper-sync --target wasm32-wasip2 --features spin -- -D warnings
cargo test --workspace
