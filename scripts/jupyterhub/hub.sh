#!/usr/bin/env bash
# Runs a real JupyterHub (from PyPI, in a venv) on 127.0.0.1 for tests and the demo.
#
#   hub.sh install        create the venv and pip-install jupyterhub (once)
#   hub.sh install-proxy  npm-install the hub's real proxy, configurable-http-proxy (pinned by
#                         scripts/jupyterhub/proxy/package-lock.json), into target/chp
#   hub.sh start DIR      start a hub with its state in DIR; waits until ready; writes DIR/hub.env
#   hub.sh stop DIR       stop that hub (SIGTERM, then SIGKILL after 20 s)
#
# Knobs: JHUB_VENV (default target/jhub-venv), JUPYTERHUB_VERSION (default 6.1.1), PYTHON (python3),
# JHUB_KEEP_DB=1 (keep users from an earlier start in DIR), JUPYTERHUB_CRYPT_KEY (64 hex; default fresh;
# keep it across restarts or auth_state cannot be read), JHUB_SYNC_SERVICE, JHUB_LOGIN_GROUPS,
# JHUB_KEEP_GROUPS, JHUB_USER_SERVERS=1, JHUB_PROXY=chp (the real proxy in front, as in production:
# /hub/, /services/<name>/ and /user/<name>/ on one origin; hub.env then has JHUB_PUBLIC_URL)
# (see jupyterhub_config.py).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${JHUB_VENV:-$root/target/jhub-venv}"
version="${JUPYTERHUB_VERSION:-6.1.1}"
py="$venv/bin/python"

log() { echo "[hub.sh] $*" >&2; }

install() {
  if [ ! -x "$py" ]; then
    log "creating venv $venv"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  if ! "$py" -c "import jupyterhub, sys; sys.exit(jupyterhub.__version__ != '$version')" 2>/dev/null; then
    log "pip install jupyterhub==$version"
    # cryptography is needed for auth_state and only arrives indirectly otherwise
    "$py" -m pip install -q --disable-pip-version-check "jupyterhub==$version" cryptography
  fi
}

chp_dir="${JHUB_CHP_DIR:-$root/target/chp}"
chp="$chp_dir/node_modules/.bin/configurable-http-proxy"

install_proxy() {
  local want
  want=$(sed -n 's/.*"configurable-http-proxy": "\(.*\)".*/\1/p' "$here/proxy/package.json")
  if [ -x "$chp" ] && [ "$("$chp" --version 2>/dev/null)" = "$want" ]; then return 0; fi
  log "npm ci configurable-http-proxy@$want into $chp_dir"
  mkdir -p "$chp_dir"
  cp "$here/proxy/package.json" "$here/proxy/package-lock.json" "$chp_dir/"
  (cd "$chp_dir" && npm ci --no-audit --no-fund --loglevel=error)
}

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

token() { "$py" -c 'import secrets; print(secrets.token_hex(24))'; }

start() {
  local dir="$1"
  install
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -f "$dir/hub.env" ]; then stop "$dir" || true; fi
  rm -f "$dir/hub.env"
  [ "${JHUB_KEEP_DB:-0}" = 1 ] || rm -f "$dir/jupyterhub.sqlite" "$dir/cookie_secret"
  local hub_port proxy_port proxy_api_port
  hub_port=$(free_port); proxy_port=$(free_port); proxy_api_port=$(free_port)
  export JHUB_STATE_DIR="$dir" JHUB_HUB_PORT="$hub_port" JHUB_PROXY_PORT="$proxy_port" JHUB_PROXY_API_PORT="$proxy_api_port"
  if [ "${JHUB_PROXY:-}" = chp ]; then
    install_proxy
    export JHUB_CHP="$chp" CONFIGPROXY_AUTH_TOKEN
    CONFIGPROXY_AUTH_TOKEN=$(token)
  fi
  export JHUB_ADMIN_TOKEN JHUB_SYNC_TOKEN JHUB_LISTONLY_TOKEN JHUB_GROUPS_TOKEN JUPYTERHUB_CRYPT_KEY
  JHUB_ADMIN_TOKEN=$(token); JHUB_SYNC_TOKEN=$(token); JHUB_LISTONLY_TOKEN=$(token); JHUB_GROUPS_TOKEN=$(token)
  JUPYTERHUB_CRYPT_KEY="${JUPYTERHUB_CRYPT_KEY:-$("$py" -c 'import secrets; print(secrets.token_hex(32))')}"
  (cd "$dir" && exec setsid "$venv/bin/jupyterhub" -f "$here/jupyterhub_config.py" >"$dir/jupyterhub.log" 2>&1) &
  local pid=$!
  local url="http://127.0.0.1:$hub_port/hub/api"
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "the hub exited during start-up; log follows"; tail -30 "$dir/jupyterhub.log" >&2; exit 1
    fi
    if grep -q "JupyterHub is now running" "$dir/jupyterhub.log" 2>/dev/null; then
      umask 077
      cat >"$dir/hub.env" <<ENV
JHUB_PID=$pid
JUPYTERHUB_API_URL=$url
JHUB_ADMIN_TOKEN=$JHUB_ADMIN_TOKEN
JHUB_SYNC_TOKEN=$JHUB_SYNC_TOKEN
JHUB_LISTONLY_TOKEN=$JHUB_LISTONLY_TOKEN
JHUB_GROUPS_TOKEN=$JHUB_GROUPS_TOKEN
JHUB_HUB_URL=http://127.0.0.1:$hub_port/hub
JHUB_PUBLIC_URL=http://127.0.0.1:$proxy_port
ENV
      log "JupyterHub $version ready at $url (state in $dir)"
      return 0
    fi
    sleep 0.5
  done
  log "the hub did not become ready in 300 s"; kill "$pid" 2>/dev/null || true; exit 1
}

stop() {
  local dir="$1" pid
  [ -f "$dir/hub.env" ] || { log "no hub.env in $dir"; return 0; }
  pid=$(sed -n 's/^JHUB_PID=//p' "$dir/hub.env")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # the hub stops the proxy it started; one left behind by a killed hub goes too
  if [ -f "$dir/proxy.pid" ]; then
    pid=$(cat "$dir/proxy.pid")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    rm -f "$dir/proxy.pid"
  fi
  rm -f "$dir/hub.env"
}

case "${1:-}" in
  install) install ;;
  install-proxy) install_proxy ;;
  start) start "${2:?usage: hub.sh start DIR}" ;;
  stop) stop "${2:?usage: hub.sh stop DIR}" ;;
  *) echo "usage: hub.sh install | install-proxy | start DIR | stop DIR" >&2; exit 2 ;;
esac
