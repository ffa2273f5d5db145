#!/usr/bin/env bash
# The project's whole test suite, as CI runs it: format, the release and Spin component builds, the
# test build (all three linted by clippy as they compile, scripts/build-env.sh), then every test
# (unit, simulator, fixtures, component-in-wasmtime, HTTP entry and the Spin build, real hub, real
# platforms, host), the host's beside the rest. The platform tests need `scripts/platforms.sh
# install` (outside CI they skip with a message if it was not run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/build-env.sh
start=$SECONDS
step() { echo "== $* (at $((SECONDS - start)) s)"; }
step "format; the release and Spin components, linted"
cargo fmt --all -- --check
component=(cargo build --release --target wasm32-wasip2 -p jupyterhub-grouper-sync)
"${component[@]}"
ls -l target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm
# The host embeds this same build instead of building the component a second time.
export GROUPER_SYNC_COMPONENT="$PWD/target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm"
# The Spin build, where tests/e2e (`build_component`) builds it: there it is then fresh.
CARGO_TARGET_DIR=target/spin "${component[@]}" --features spin
# The tests build in the wheel's profile (host-release, Cargo.toml says why): wasmtime is compiled
# once for the wheel and the tests, and the grouper-sync the tests run is the one the wheel packs.
test=(cargo test --profile host-release)
# Everything is built first; then the host's tests and the rest run side by side (two cargo
# processes may run tests at once; most of the time is spent waiting on hubs and timers). Each
# group's output is printed when it ends.
step "the tests' build (every workspace crate and target, linted)"
"${test[@]}" --workspace --no-run
# once, before two groups of tests could both create the venv or install the proxy
scripts/jupyterhub/hub.sh install
scripts/jupyterhub/hub.sh install-proxy
# The two groups, balanced by their running times (CI, 2 cores: the host's 211 s against the rest's
# 137 s until groups.rs moved): the host's tests but groups.rs, and the rest with groups.rs. Every
# file of host/tests must be in one of the lists.
host_tests=(browser host managed soak)
moved_tests=(groups)
for f in host/tests/*.rs; do
  name=$(basename "$f" .rs)
  [[ " ${host_tests[*]} ${moved_tests[*]} " == *" $name "* ]] ||
    { echo "host/tests/$name.rs is in neither group of scripts/test.sh; add it to one"; exit 1; }
done
host_group=("${test[@]}" -p grouper-sync-host --lib --bins)
for t in "${host_tests[@]}"; do host_group+=(--test "$t"); done
moved_group=("${test[@]}" -p grouper-sync-host)
for t in "${moved_tests[@]}"; do moved_group+=(--test "$t"); done
step "tests: the host's and the rest side by side"
logs=$(mktemp -d)
"${host_group[@]}" >"$logs/host.log" 2>&1 &
host=$!
{ "${test[@]}" --workspace --exclude grouper-sync-host && "${moved_group[@]}"; } >"$logs/rest.log" 2>&1 &
rest=$!
status=0
wait "$rest" || status=1
step "${test[*]} --workspace --exclude grouper-sync-host; ${moved_group[*]}"; cat "$logs/rest.log"
wait "$host" || status=1
step "${host_group[*]}"; cat "$logs/host.log"
rm -rf "$logs"
[ "$status" = 0 ] || { echo "tests failed (the logs above say which)"; exit 1; }
echo "all tests passed"
