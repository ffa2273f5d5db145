#!/usr/bin/env bash
# The component as an HTTP service under the wasmtime CLI (48.x): POST /sync, POST /check,
# GET /healthz. Settings are config vars; secrets reach the component through `--env NAME`, which
# passes the variable without putting its value on the command line.
# Tested: tests/e2e/tests/platforms.rs (wasmtime_serve_and_run_against_the_real_hub).
set -euo pipefail
: "${JUPYTERHUB_API_TOKEN:?}" "${GROUPER_PASSWORD:?}" "${GROUPER_SYNC_AUTH_TOKEN:?}"
wasm=${WASM:-target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm}
exec wasmtime serve -Scli -Shttp -Sconfig --addr "${ADDR:-127.0.0.1:8080}" \
  -Sconfig-var=jupyterhub_api_url="${JUPYTERHUB_API_URL:-http://127.0.0.1:8081/hub/api}" \
  -Sconfig-var=grouper_base_url="${GROUPER_BASE_URL:-https://calgroups.berkeley.edu/gws/servicesRest/json/v2_2_100}" \
  -Sconfig-var=grouper_user="${GROUPER_USER:-app-datahub-sync}" \
  -Sconfig-var=grouper_id_path="${GROUPER_ID_PATH:-edu:berkeley:app:datahub:datahub-users}" \
  --env JUPYTERHUB_API_TOKEN --env GROUPER_PASSWORD --env GROUPER_SYNC_AUTH_TOKEN \
  "$wasm"
# then: curl -X POST -H "Authorization: Bearer $GROUPER_SYNC_AUTH_TOKEN" http://127.0.0.1:8080/sync
