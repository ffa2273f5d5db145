#!/usr/bin/env python3
"""A stand-in single-user server for the test hub (JHUB_USER_SERVERS=1).

JupyterHub's SimpleLocalProcessSpawner starts it as a user's server. The hub only waits for an
HTTP answer at JUPYTERHUB_SERVICE_URL, so answering 200 there makes the server ready (`server`
set in the users API) without jupyter-server. Exits on SIGINT/SIGTERM (the hub's stop) and when
the hub that started it is gone. Standard library only.
"""
import http.server
import os
import signal
import sys
import threading
import time
from urllib.parse import urlparse


# What the user put in their home (a test's page with JavaScript, as any user's server can serve).
PAGE = os.path.join(os.environ.get("HOME", "/nonexistent"), "index.html")


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if os.path.isfile(PAGE):
            with open(PAGE, "rb") as f:
                body, kind = f.read(), "text/html; charset=utf-8"
        else:
            body, kind = b"stand-in single-user server\n", "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def exit_with_the_hub(hub_pid):
    while os.getppid() == hub_pid:
        time.sleep(1)
    os._exit(0)


url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
server = http.server.ThreadingHTTPServer((url.hostname, url.port), Ok)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
threading.Thread(target=exit_with_the_hub, args=(os.getppid(),), daemon=True).start()
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
