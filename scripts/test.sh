#!/usr/bin/env bash
# The project's whole test suite, as CI runs it: format, lints (native and wasm), the release
# component build, then every test (unit, simulator, fixtures, component-in-wasmtime, real hub).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:--Dwarnings}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p jupyterhub-grouper-sync --target wasm32-wasip2 -- -D warnings
cargo build --release --target wasm32-wasip2 -p jupyterhub-grouper-sync
ls -l target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm
cargo test --workspace
