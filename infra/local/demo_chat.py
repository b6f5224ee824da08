"""The demo portal of `switchboard local`: a sample page at ``/demo/chat`` that embeds the demo widget, signed in.

A newcomer opens ``<gateway URL>/demo/chat``, chats as a signed-in visitor, and answers with
`switchboard reply`. The page plays a portal's part as docs/chat-auth.md describes it: its token
function (``auth.getAuthenticationToken``, in ``demo_portal/portal.js``) fetches a fresh JWT from
``/demo/token``, which this module signs with a demo RSA key; the demo widget's auth setting
(``demo-portal`` in demo.yaml) reads the public half from a small key server this module runs, so the
token is checked exactly as a real portal's would be (RS256, issuer, expiry, context from
``lwicontexts``).

Local only, and why it is built this way: the key pair is made fresh for each run and never written
anywhere, so no private key lives in the repository and a token from one run means nothing to the
next; the routes are served by the local gateway's page hook (infra/local/gateway.py), never declared
in template.yaml, so a deployed stack has no ``/demo`` at all. The page is on the gateway's own
origin, so the widget's calls are same-origin and the demo widget lists no ``allowed_origins``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from infra.local.gateway import LocalPage

WIDGET: Final = "demo-web"
AUTH_SETTING: Final = "demo-portal"
ISSUER: Final = "demo-portal.switchboard.local"
CONTACT: Final = "demo-contact-0001"  # the signed-in visitor of the demo portal
CONTEXT: Final = {"plan": "gold", "cart_value": "120"}  # lwicontexts: the demo workstream routes gold plans to vip
TOKEN_SECONDS: Final = 300
KEY_PATH: Final = "/publickey"
FILES: Final = Path(__file__).resolve().parent / "demo_portal"
# The page allows nothing but its own origin: it shows that the widget needs no inline script or style.
PAGE_POLICY: Final = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
_PAGES: Final = {
    "/demo/chat": ("index.html", "text/html; charset=utf-8"),
    "/demo/portal.js": ("portal.js", "application/javascript; charset=utf-8"),
    "/demo/portal.css": ("portal.css", "text/css; charset=utf-8"),
}


class DemoPortal:
    """The demo portal's key pair, its public key server and the gateway pages (:meth:`page`)."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = self._key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                found = self.path == KEY_PATH
                body = public if found else b"not found\n"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/x-pem-file" if found else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-portal-keys", daemon=True)

    @property
    def key_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{KEY_PATH}"

    def start(self) -> DemoPortal:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def configure(self, document: dict[str, Any]) -> None:
        """Point the demo auth setting of a configuration document at this run's public key."""
        for setting in document.get("auth_settings") or []:
            if setting.get("id") == AUTH_SETTING:
                setting["public_key_url"] = self.key_url

    def token(self, now: float | None = None) -> str:
        """A fresh JWT for the demo visitor, as a portal's server signs one (docs/chat-auth.md, 1.3)."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": ISSUER,
            "sub": CONTACT,
            "iat": issued,
            "nbf": issued,
            "exp": issued + TOKEN_SECONDS,
            "lwicontexts": json.dumps(CONTEXT),
        }
        return jwt.encode(claims, self._key, algorithm="RS256")

    def page(self, method: str, path: str) -> LocalPage | None:
        """The gateway's page hook: the demo's routes, or None for every other path (the API's)."""
        if path == "/demo/token" and method == "GET":
            body = json.dumps({"token": self.token()}).encode()
            return LocalPage(200, "application/json", body, {"Cache-Control": "no-store"})
        served = _PAGES.get(path)
        if served is None:
            return None
        if method != "GET":
            return LocalPage(405, "application/json", b'{"message":"Method Not Allowed"}')
        name, content_type = served
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if name.endswith(".html"):
            headers["Content-Security-Policy"] = PAGE_POLICY
        return LocalPage(200, content_type, (FILES / name).read_bytes(), headers)
