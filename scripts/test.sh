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
# Everything is built first; then the tests run in groups side by side (cargo processes may run
# tests at once; most of the time is spent waiting on hubs and timers). Each group's output is
# printed when it ends.
step "the tests' build (every workspace crate and target, linted)"
"${test[@]}" --workspace --no-run
# The built grouper-sync finds its component compiled beside it, as the wheel's does (a test that
# needs the compile at start runs a copy without it): every process the tests start skips it.
target/host-release/grouper-sync precompile target/share/grouper-sync
# once, before two groups of tests could both create the venv or install the proxy
scripts/jupyterhub/hub.sh install
scripts/jupyterhub/hub.sh install-proxy
# Three groups side by side: the rest; the host's tests; and the soak alone, which mostly waits (a
# pass a second for a minute) and would otherwise end the host's group a minute later (CI, 2 cores:
# the host's group took 211 s with it, the rest 137 s). Every file of host/tests must be in one of
# the lists.
host_tests=(browser groups host managed)
alone_tests=(soak)
for f in host/tests/*.rs; do
  name=$(basename "$f" .rs)
  [[ " ${host_tests[*]} ${alone_tests[*]} " == *" $name "* ]] ||
    { echo "host/tests/$name.rs is in no group of scripts/test.sh; add it to one"; exit 1; }
done
host_group=("${test[@]}" -p grouper-sync-host --lib --bins)
for t in "${host_tests[@]}"; do host_group+=(--test "$t"); done
alone_group=("${test[@]}" -p grouper-sync-host)
for t in "${alone_tests[@]}"; do alone_group+=(--test "$t"); done
rest_group=("${test[@]}" --workspace --exclude grouper-sync-host)
# The groups run what the tests' build made: a group that compiles again (features unified
# differently for `-p grouper-sync-host` than for `--workspace`) would overwrite this crate's rlib
# under the other groups' running tests.
for group in host_group alone_group rest_group; do
  declare -n cmd=$group
  if "${cmd[@]}" --no-run 2>&1 | grep -q "Compiling"; then
    echo "${cmd[*]} compiled again after the tests' build: unify its features with --workspace (Cargo.toml, num-traits)"
    exit 1
  fi
done
step "tests: the rest, the host's and the soak side by side"
logs=$(mktemp -d)
"${host_group[@]}" >"$logs/host.log" 2>&1 &
host=$!
"${alone_group[@]}" >"$logs/alone.log" 2>&1 &
alone=$!
"${rest_group[@]}" >"$logs/rest.log" 2>&1 &
rest=$!
status=0
wait "$rest" || status=1
step "${rest_group[*]}"; cat "$logs/rest.log"
wait "$host" || status=1
step "${host_group[*]}"; cat "$logs/host.log"
wait "$alone" || status=1
step "${alone_group[*]}"; cat "$logs/alone.log"
rm -rf "$logs"
[ "$status" = 0 ] || { echo "tests failed (the logs above say which)"; exit 1; }
echo "all tests passed"
