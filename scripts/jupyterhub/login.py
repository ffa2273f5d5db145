"""Logs a user in through the hub's login form, as a browser would (for tests).

    python login.py HUB_URL USERNAME    (HUB_URL ends in /hub)

Exits 0 when the hub accepted the login (a redirect away from the login page with a cookie).
"""
import http.cookiejar
import sys
import urllib.parse
import urllib.request

hub, name = sys.argv[1].rstrip("/"), sys.argv[2]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
opener.open(f"{hub}/login").read()
xsrf = next(c.value for c in jar if c.name == "_xsrf")
form = urllib.parse.urlencode({"username": name, "password": "x", "_xsrf": xsrf}).encode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
try:
    resp = opener.open(f"{hub}/login?next=", data=form)
    status = resp.status
except urllib.error.HTTPError as e:
    status = e.code
if status != 302 or not any(c.name.startswith("jupyterhub-hub-login") for c in jar):
    sys.exit(f"login of {name} failed: HTTP {status}")
print(f"logged in {name}")
