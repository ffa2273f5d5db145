#!/usr/bin/env bash
# One pass under `wasmtime run` with only the original tool's six environment variables; the report
# is one JSON line on stdout, the exit status 0 only when the group converged. Set
# GROUPER_SYNC_EVERY_SECONDS=3600 (and pass it with --env) to loop instead.
# Tested: tests/e2e/tests/platforms.rs (wasmtime_serve_and_run_against_the_real_hub).
set -euo pipefail
: "${JUPYTERHUB_API_URL:?}" "${JUPYTERHUB_API_TOKEN:?}" "${GROUPER_BASE_URL:?}"
: "${GROUPER_USER:?}" "${GROUPER_PASSWORD:?}" "${GROUPER_ID_PATH:?}"
wasm=${WASM:-target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm}
exec wasmtime run -Shttp -Sconfig \
  --env JUPYTERHUB_API_URL --env JUPYTERHUB_API_TOKEN --env GROUPER_BASE_URL \
  --env GROUPER_USER --env GROUPER_PASSWORD --env GROUPER_ID_PATH \
  "$wasm"
