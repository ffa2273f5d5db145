#!/usr/bin/env bash
# One real sync pass on the bundled demo setup: a real JupyterHub (pip-installed into a venv,
# 127.0.0.1) with seeded users and auth_state, the Grouper simulator holding a stale member, and
# grouper-sync (the host with the embedded component): `check`, `once`, then the service for one
# pass with its metrics endpoint. Prints the report and the group before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
state=target/demo
mkdir -p "$state"
group="edu:example:app:datahub:datahub-users"

echo "== building grouper-sync (with the release component embedded) and the simulator"
cargo build -q -p grouper-sync-host -p grouper-sim

cleanup() {
  [ -n "${sim_pid:-}" ] && kill "$sim_pid" 2>/dev/null || true
  [ -n "${svc_pid:-}" ] && kill "$svc_pid" 2>/dev/null || true
  scripts/jupyterhub/hub.sh stop "$state/hub" || true
}
trap cleanup EXIT

echo "== starting JupyterHub"
scripts/jupyterhub/hub.sh start "$state/hub"
set -a; . "$state/hub/hub.env"; set +a
py=target/jhub-venv/bin/python

echo "== seeding hub users (canvas_user, oauth_user, no auth_state, an admin)"
"$py" - <<'PY'
import json, os, urllib.request
api, token = os.environ["JUPYTERHUB_API_URL"], os.environ["JHUB_ADMIN_TOKEN"]
def call(method, path, body):
    req = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode(),
                                 headers={"Authorization": "token " + token})
    return urllib.request.urlopen(req).status
call("POST", "/users", {"usernames": ["ana", "ben", "chen", "dee", "prof"]})
call("PATCH", "/users/prof", {"admin": True})
call("PATCH", "/users/ana", {"auth_state": {"canvas_user": {"login_id": "100001"}}})
call("PATCH", "/users/ben", {"auth_state": {"oauth_user": {"login_id": "100002"}}})
call("PATCH", "/users/chen", {"auth_state": {"canvas_user": {"login_id": "100003"}}})
call("PATCH", "/users/prof", {"auth_state": {"canvas_user": {"login_id": "100009"}}})
# dee never logged in with auth_state: skipped and counted, never fatal
PY

echo "== starting the Grouper simulator (group holds one stale member, 199999)"
export GROUPER_PASSWORD="demo-$RANDOM$RANDOM"
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/debug/grouper-sim --listen "127.0.0.1:$port" --user sync --password-env GROUPER_PASSWORD \
  --group "$group" --subjects 100001,100002,100003,100009 --member 199999 &
sim_pid=$!
sleep 0.5

members() {
  "$py" - "$port" "$group" <<'PY'
import base64, json, os, sys, urllib.parse, urllib.request
port, group = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}/grouper-ws/servicesRest/json/v2_2_100/groups/{urllib.parse.quote(group, safe='')}/members"
auth = base64.b64encode(f"sync:{os.environ['GROUPER_PASSWORD']}".encode()).decode()
body = json.load(urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": "Basic " + auth})))
print(sorted(s["id"] for s in body["WsGetMembersLiteResult"].get("wsSubjects", [])))
PY
}
echo "group before: $(members)"

export JUPYTERHUB_API_TOKEN="$JHUB_SYNC_TOKEN"
export GROUPER_BASE_URL="http://127.0.0.1:$port/grouper-ws/servicesRest/json/v2_2_100"
export GROUPER_USER=sync GROUPER_ID_PATH="$group"
# the user state of incremental passes: `once` reads every record, the service's pass only the list
export GROUPER_SYNC_STATE_DIR="$state/sync-state"
rm -rf "$GROUPER_SYNC_STATE_DIR"

echo "== grouper-sync check (read-only)"
target/debug/grouper-sync check

echo "== grouper-sync once"
status=0
target/debug/grouper-sync once || status=$?
echo "exit status: $status"
echo "group after:  $(members)"

echo "== grouper-sync as a service: a pass at start, then /metrics"
mport=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/debug/grouper-sync --metrics-addr "127.0.0.1:$mport" 2>"$state/service.log" &
svc_pid=$!
for _ in $(seq 1 60); do
  "$py" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$mport/readyz')" 2>/dev/null && break
  sleep 0.5
done
"$py" -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$mport/metrics').read().decode())" | grep -v '^#'
kill -INT "$svc_pid"; wait "$svc_pid" || true; svc_pid=
cat "$state/service.log"
exit "$status"
