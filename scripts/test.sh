#!/usr/bin/env bash
# The project's whole test suite, as CI runs it: format, the release component and the test build
# (both linted by clippy as they compile, scripts/build-env.sh), then every test (unit, simulator,
# fixtures, component-in-wasmtime, HTTP entry and the Spin build, real hub, real platforms, host)
# in groups side by side, the Spin build beside the first ones. The platform tests need `scripts/platforms.sh
# install` (outside CI they skip with a message if it was not run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/build-env.sh
start=$SECONDS
step() { echo "== $* (at $((SECONDS - start)) s)"; }
step "format; the release component, linted"
cargo fmt --all -- --check
component=(cargo build --release --target wasm32-wasip2 -p jupyterhub-grouper-sync)
"${component[@]}"
ls -l target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm
# The host's build script embeds this same build (its nested cargo finds it fresh).
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
# The groups, side by side. Each runs its test binaries one after the other, so the longest
# group is the suite's time: they are balanced by what they took on CI's 2 cores (seconds, in
# brackets). The soak mostly waits (a pass a second for a minute) and is alone. The Spin build
# (tests/e2e `build_component`, into target/spin) compiles while the first groups wait on their
# hubs; the group that runs it starts once it is built. Every test file must be in one group;
# the unit tests (every crate's lib and bins) run in the hub's group.
host_tests=(groups host managed)                                   # [21 23 25]
alone_tests=(soak)                                                 # [84]
hub_tests=(real_hub faults google grouper_fixtures properties)     # [38 33 8 0 0], units 4
spin_tests=(component serverless targets tls platforms browser)    # [5 21 0 0 20 22], after the Spin build (19)
for f in host/tests/*.rs tests/e2e/tests/*.rs tests/*.rs; do
  name=$(basename "$f" .rs)
  [[ " ${host_tests[*]} ${alone_tests[*]} ${hub_tests[*]} ${spin_tests[*]} " == *" $name "* ]] ||
    { echo "$f is in no group of scripts/test.sh; add it to one"; exit 1; }
done
# Every group selects the whole workspace and filters by test: features are unified per selected
# package, so a group selecting fewer packages could compile a crate again (differently) and
# overwrite its rlib under the other groups' running tests.
host_group=("${test[@]}" --workspace)
for t in "${host_tests[@]}"; do host_group+=(--test "$t"); done
alone_group=("${test[@]}" --workspace)
for t in "${alone_tests[@]}"; do alone_group+=(--test "$t"); done
hub_group=("${test[@]}" --workspace --lib --bins)
for t in "${hub_tests[@]}"; do hub_group+=(--test "$t"); done
spin_group=("${test[@]}" --workspace)
for t in "${spin_tests[@]}"; do spin_group+=(--test "$t"); done
for group in host_group alone_group hub_group spin_group; do
  declare -n cmd=$group
  # (the whole output first: `grep -q` on a pipe would stop cargo halfway and pass)
  built=$("${cmd[@]}" --no-run 2>&1)
  if grep -q "Compiling" <<<"$built"; then
    echo "${cmd[*]} compiled again after the tests' build:"; echo "$built"
    exit 1
  fi
done
# The Spin build differs from the default one in this crate's features only: every dependency
# it compiles is the default build's. Copied with their times (cargo then finds them fresh) into
# a target/spin that has none yet, only this crate compiles there: 12 s instead of 100 CPU-s.
if [ ! -d target/spin/wasm32-wasip2/release ]; then
  mkdir -p target/spin/wasm32-wasip2 target/spin/release
  cp -a target/wasm32-wasip2/release target/spin/wasm32-wasip2/
  cp -a target/release/.fingerprint target/release/build target/release/deps target/spin/release/
fi
step "tests: the host's, the soak, the hub's and (once the Spin build is done) the rest side by side"
logs=$(mktemp -d)
"${host_group[@]}" >"$logs/host.log" 2>&1 &
host=$!
"${alone_group[@]}" >"$logs/alone.log" 2>&1 &
alone=$!
"${hub_group[@]}" >"$logs/hub.log" 2>&1 &
hub=$!
{
  CARGO_TARGET_DIR=target/spin "${component[@]}" --features spin && echo "== the Spin build done (at $((SECONDS - start)) s)" &&
    "${spin_group[@]}"
} >"$logs/spin.log" 2>&1 &
spin=$!
status=0
for group in hub spin host alone; do
  wait "${!group}" || status=1
  step "group $group ended"; cat "$logs/$group.log"
done
rm -rf "$logs"
[ "$status" = 0 ] || { echo "tests failed (the logs above say which)"; exit 1; }
echo "all tests passed"
