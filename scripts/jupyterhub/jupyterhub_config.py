# A throw-away JupyterHub on 127.0.0.1 for tests and the demo (started by scripts/jupyterhub/hub.sh).
# Everything comes from environment variables set by hub.sh.
import os

c = get_config()  # noqa: F821

state = os.environ["JHUB_STATE_DIR"]
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["JHUB_HUB_PORT"])
c.JupyterHub.port = int(os.environ["JHUB_PROXY_PORT"])
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = os.path.join(state, "cookie_secret")
c.JupyterHub.pid_file = os.path.join(state, "jupyterhub.pid")

# No configurable-http-proxy: the REST API is served on the hub port directly.
from jupyterhub.proxy import Proxy  # noqa: E402


class NullProxy(Proxy):
    should_start = False

    async def add_route(self, routespec, target, data):
        pass

    async def delete_route(self, routespec):
        pass

    async def get_all_routes(self):
        return {}


c.JupyterHub.proxy_class = NullProxy

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.enable_auth_state = True  # needs JUPYTERHUB_CRYPT_KEY in the environment

c.JupyterHub.services = [
    {"name": "test-admin", "api_token": os.environ["JHUB_ADMIN_TOKEN"]},
    {"name": "grouper-sync", "api_token": os.environ["JHUB_SYNC_TOKEN"]},
    {"name": "list-only", "api_token": os.environ["JHUB_LISTONLY_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {"name": "admin", "users": ["admin"], "services": ["test-admin"]},
    # exactly what the README tells admins to grant
    {"name": "grouper-sync", "scopes": ["list:users", "read:users", "admin:auth_state"], "services": ["grouper-sync"]},
    {"name": "list-only", "scopes": ["list:users", "read:users"], "services": ["list-only"]},
]

# Optional: run grouper-sync as a hub-managed service, exactly as an admin would configure it.
# JHUB_SYNC_SERVICE = {"command": [...], "environment": {...}} (JSON).
if os.environ.get("JHUB_SYNC_SERVICE"):
    import json

    spec = json.loads(os.environ["JHUB_SYNC_SERVICE"])
    c.JupyterHub.services.append(
        {"name": "grouper-sync-managed", "command": spec["command"], "environment": spec.get("environment", {})}
    )
    c.JupyterHub.load_roles.append(
        {
            "name": "grouper-sync-managed",
            "scopes": ["list:users", "read:users", "admin:auth_state"],
            "services": ["grouper-sync-managed"],
        }
    )
