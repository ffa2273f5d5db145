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

if os.environ.get("JHUB_PROXY") == "chp":
    # The hub's real proxy (hub.sh install-proxy), started by the hub as in production.
    c.ConfigurableHTTPProxy.command = [os.environ["JHUB_CHP"]]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['JHUB_PROXY_API_PORT']}"
    c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "proxy.pid")
    c.ConfigurableHTTPProxy.debug = False
else:
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
    {"name": "grouper-sync-groups", "api_token": os.environ["JHUB_GROUPS_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {"name": "admin", "users": ["admin"], "services": ["test-admin"]},
    # exactly what the README tells admins to grant
    {"name": "grouper-sync", "scopes": ["list:users", "read:users", "admin:auth_state"], "services": ["grouper-sync"]},
    {"name": "list-only", "scopes": ["list:users", "read:users"], "services": ["list-only"]},
    # what the README adds for to_hub targets (groups) and create_missing_groups (admin:groups)
    {
        "name": "grouper-sync-groups",
        "scopes": ["list:users", "read:users", "admin:auth_state", "groups", "admin:groups"],
        "services": ["grouper-sync-groups"],
    },
]

# Optional: an authenticator that manages groups, as OAuthenticator's manage_groups does: every login
# sets the user's groups to what it returns. JHUB_LOGIN_GROUPS = {"user": ["group", ...]} (JSON).
if os.environ.get("JHUB_LOGIN_GROUPS"):
    import json

    from jupyterhub.auth import DummyAuthenticator

    login_groups = json.loads(os.environ["JHUB_LOGIN_GROUPS"])

    class GroupsAuthenticator(DummyAuthenticator):
        async def authenticate(self, handler, data):
            name = data["username"]
            return {"name": name, "groups": login_groups.get(name, [])}

    c.JupyterHub.authenticator_class = GroupsAuthenticator
    c.Authenticator.manage_groups = True

# Optional: the post_auth_hook the README gives for manage_groups hubs: a login keeps the user's
# membership of the groups grouper-sync keeps (JHUB_KEEP_GROUPS, comma-separated).
if os.environ.get("JHUB_KEEP_GROUPS"):
    SYNC_KEPT_GROUPS = set(os.environ["JHUB_KEEP_GROUPS"].split(","))

    def keep_sync_groups(authenticator, handler, auth_model):
        user = handler.find_user(auth_model["name"])
        if user is not None and auth_model.get("groups") is not None:
            kept = {g.name for g in user.groups if g.name in SYNC_KEPT_GROUPS}
            auth_model["groups"] = sorted(set(auth_model["groups"]) | kept)
        return auth_model

    c.Authenticator.post_auth_hook = keep_sync_groups

# Optional: users can start servers (POST /users/{name}/server): user_server.py answers HTTP where the
# hub waits for it, so the users API shows a running server without jupyter-server installed.
if os.environ.get("JHUB_USER_SERVERS") == "1":
    import sys

    c.JupyterHub.spawner_class = "simple"
    c.Spawner.cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "user_server.py")]
    c.Spawner.args = []
    c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(state, "homes", "{username}")

# Optional: run grouper-sync as a hub-managed service, exactly as an admin would configure it.
# JHUB_SYNC_SERVICE = {"command": [...], "environment": {...}} (JSON), and for the status page as a
# hub service page (README): "service" (more keys of the service entry: url, oauth_no_confirm,
# oauth_client_allowed_scopes), "roles" (more load_roles entries) and "custom_scopes".
if os.environ.get("JHUB_SYNC_SERVICE"):
    import json

    spec = json.loads(os.environ["JHUB_SYNC_SERVICE"])
    service = {"name": "grouper-sync-managed", "command": spec["command"], "environment": spec.get("environment", {})}
    service.update(spec.get("service", {}))
    c.JupyterHub.services.append(service)
    c.JupyterHub.load_roles.append(
        {
            "name": "grouper-sync-managed",
            "scopes": ["list:users", "read:users", "admin:auth_state"],
            "services": ["grouper-sync-managed"],
        }
    )
    c.JupyterHub.load_roles.extend(spec.get("roles", []))
    if spec.get("custom_scopes"):
        c.JupyterHub.custom_scopes = spec["custom_scopes"]
