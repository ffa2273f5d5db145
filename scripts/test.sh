#!/usr/bin/env bash
# The project's whole test suite, as CI runs it: format, the release component build, lints (native
# and wasm, both builds), then every test (unit, simulator, fixtures, component-in-wasmtime, HTTP
# entry and the Spin build, real hub, real platforms, host, browser). The platform tests need
# `scripts/platforms.sh install` (outside CI they skip with a message if it was not run).
#
# Most of a test run is spent waiting on hubs, browsers and timers, so the tests run in groups side
# by side; every test file belongs to exactly one group (checked below), and each group's output is
# printed when it ends. The lints run before them: beside the tests they only took CPU the builds
# inside the tests needed (CI on 2 cores: 519 s for this script against 449 s with two groups).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:--Dwarnings}"
start=$SECONDS
step() { echo "== $* (at $((SECONDS - start)) s)"; }

step "format"
cargo fmt --all -- --check
step "the release component"
cargo build --release --target wasm32-wasip2 -p jupyterhub-grouper-sync
ls -l target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm
# The host embeds this same build instead of building the component a second time.
export GROUPER_SYNC_COMPONENT="$PWD/target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm"

# The groups: cargo arguments, one line each.
groups=(
  "-p jupyterhub-grouper-sync -p grouper-sim -p grouper-sync-testkit -p grouper-sync-bench"
  "-p grouper-sync-e2e --lib --test component --test faults"
  "-p grouper-sync-e2e --test platforms --test real_hub --test serverless --test targets --test tls"
  "-p grouper-sync-host --lib --bins --test browser --test host"
  "-p grouper-sync-host --test groups --test managed --test soak"
)
for file in tests/e2e/tests/*.rs host/tests/*.rs; do
  name=$(basename "$file" .rs)
  n=$(printf '%s\n' "${groups[@]}" | grep -c -- "--test $name\( \|$\)" || true)
  [ "$n" = 1 ] || { echo "$file is in $n test groups of scripts/test.sh, not 1"; exit 1; }
done

step "lints (native, wasm, wasm spin)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p jupyterhub-grouper-sync --target wasm32-wasip2 -- -D warnings
cargo clippy -p jupyterhub-grouper-sync --target wasm32-wasip2 --features spin -- -D warnings

# The tests build in the wheel's profile (host-release, Cargo.toml says why): wasmtime is compiled
# once for the wheel and the tests, and the grouper-sync the tests run is the one the wheel packs.
test=(cargo test --profile host-release)
step "the tests' build"
"${test[@]}" --workspace --no-run
# once, before two groups of tests could both create the venv or install the proxy
scripts/jupyterhub/hub.sh install
scripts/jupyterhub/hub.sh install-proxy

step "tests, ${#groups[@]} groups side by side"
logs=$(mktemp -d)
pids=()
for i in "${!groups[@]}"; do
  # shellcheck disable=SC2086 # a group is a list of arguments
  (set +e; "${test[@]}" ${groups[$i]} >"$logs/$i.log" 2>&1; echo "exit $?" >"$logs/$i.status") &
  pids+=($!)
done

status=0
for i in "${!groups[@]}"; do
  wait "${pids[$i]}" || true
  group_status=$(cat "$logs/$i.status" 2>/dev/null || echo "exit 1")
  step "${test[*]} ${groups[$i]}: ended ($group_status)"
  cat "$logs/$i.log"
  [ "$group_status" = "exit 0" ] || status=1
done
rm -rf "$logs"
[ "$status" = 0 ] || { echo "tests failed (the logs above say which)"; exit 1; }
echo "all tests passed"
