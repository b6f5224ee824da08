"""A local identity provider and key server for the signed-in chat tests.

One plain ``http.server`` on 127.0.0.1, port 0, in a thread. It plays both parties a business
brings to Switchboard:

* the portal's **public key endpoints** (``GET /keys`` or any path given), each answering one PEM
  or the Dynamics 365 JSON array of ``{kid, publicKey: base64 of a CRLF PEM, expiry}``, switchable
  at any time (rotation);
  the portal's private keys live here too, so :meth:`FakeIdp.token` signs the JWT a portal would;
* an **OAuth 2.0 / OpenID Connect provider**: ``GET /authorize`` (the customer "signs in" as the
  user queued with :meth:`FakeIdp.expect_sign_in` and is redirected with a code and the state),
  ``POST /token`` (checks the client's credentials and the single-use code, as a provider does)
  and ``GET /userinfo`` (answers the user's claims for the bearer access token).

Every request is recorded (method, path, query, form, headers) so tests can check what Switchboard
sent, e.g. that the client secret travelled in the form and never anywhere else.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]  # names lower-cased


@dataclass
class _State:
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    key_documents: dict[str, bytes] = field(default_factory=dict)  # path -> what GET answers
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> userinfo claims
    access: dict[str, dict[str, Any]] = field(default_factory=dict)  # access token -> userinfo claims
    next_user: dict[str, Any] | None = None
    requests: list[Recorded] = field(default_factory=list)


class FakeIdp:
    def __init__(self, *, client_id: str = "switchboard-e2e", client_secret: str | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret or "idp-client-secret-" + secrets.token_hex(8)
        self._state = _State()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # request lines carry codes and states
                return

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-idp", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeIdp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeIdp:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- the portal's keys ---------------------------------------------------------------------------
    def new_key(self, kid: str) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self._lock:
            self._state.keys[kid] = key
        return key

    def public_pem(self, kid: str) -> bytes:
        return (
            self._state.keys[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def key_url(self, path: str = "/keys") -> str:
        return self.url + path

    def serve_pem(self, kid: str, *, path: str = "/keys") -> None:
        """``GET path`` answers the one PEM of ``kid`` (the single-key form)."""
        document = self.public_pem(kid)
        with self._lock:
            self._state.key_documents[path] = document

    def serve_array(self, *entries: tuple[str, int], path: str = "/keys") -> None:
        """``GET path`` answers the JSON array form: ``(kid, expiry unix seconds)`` per key, PEMs with CRLF line ends."""
        array = [
            {"kid": kid, "publicKey": base64.b64encode(self.public_pem(kid).replace(b"\n", b"\r\n")).decode(), "expiry": expiry}
            for kid, expiry in entries
        ]
        with self._lock:
            self._state.key_documents[path] = json.dumps(array).encode()

    def token(self, claims: dict[str, Any], *, kid: str, header_kid: bool = True) -> str:
        """A portal's RS256 JWT signed with the private key of ``kid``."""
        return jwt.encode(claims, self._state.keys[kid], algorithm="RS256", headers={"kid": kid} if header_kid else None)

    # -- OAuth ---------------------------------------------------------------------------------------
    def issue_code(self, user: dict[str, Any]) -> str:
        """A single-use authorization code for ``user`` (its userinfo claims), as if they had signed in."""
        code = "code-" + secrets.token_urlsafe(16)
        with self._lock:
            self._state.codes[code] = dict(user)
        return code

    def expect_sign_in(self, user: dict[str, Any]) -> None:
        """The next ``/authorize`` visit signs in as ``user`` (a customer typing their password)."""
        with self._lock:
            self._state.next_user = dict(user)

    # -- what was asked ------------------------------------------------------------------------------
    def requests(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self._state.requests if path is None or r.path == path]

    def clear_requests(self) -> None:
        with self._lock:
            self._state.requests.clear()

    # -- serving -------------------------------------------------------------------------------------
    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self._state.requests.append(Recorded(request.command, parts.path, query, form, headers))
        route = (request.command, parts.path)
        with self._lock:
            document = self._state.key_documents.get(parts.path) if request.command == "GET" else None
        if document is not None:
            self._reply(request, 200, document, "application/octet-stream")
        elif route == ("GET", "/authorize"):
            self._authorize(request, query)
        elif route == ("POST", "/token"):
            self._token(request, form, headers)
        elif route == ("GET", "/userinfo"):
            self._userinfo(request, headers)
        else:
            self._reply(request, 404, b'{"error":"not_found"}')

    def _authorize(self, request: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        with self._lock:
            user, self._state.next_user = self._state.next_user, None
        if query.get("response_type") != "code" or query.get("client_id") != self.client_id or not query.get("redirect_uri"):
            self._reply(request, 400, b'{"error":"invalid_request"}')
            return
        back = {"state": query["state"]} if "state" in query else {}
        if user is None:
            back["error"] = "access_denied"
        else:
            back["code"] = self.issue_code(user)
        separator = "&" if urlsplit(query["redirect_uri"]).query else "?"
        request.send_response(302)
        request.send_header("Location", f"{query['redirect_uri']}{separator}{urlencode(back)}")
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _token(self, request: BaseHTTPRequestHandler, form: dict[str, str], headers: dict[str, str]) -> None:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            client_id, client_secret = unquote_plus(user), unquote_plus(password)
        if client_id != self.client_id or client_secret != self.client_secret:
            self._reply(request, 401, b'{"error":"invalid_client"}')
            return
        with self._lock:
            user = self._state.codes.pop(form.get("code", ""), None)  # single use, as RFC 6749 requires
            if form.get("grant_type") != "authorization_code" or user is None:
                user = None
            else:
                access = "at-" + secrets.token_urlsafe(16)
                self._state.access[access] = user
        if user is None:
            self._reply(request, 400, b'{"error":"invalid_grant"}')
            return
        self._reply(request, 200, json.dumps({"access_token": access, "token_type": "Bearer", "expires_in": 3600}).encode())

    def _userinfo(self, request: BaseHTTPRequestHandler, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        with self._lock:
            user = self._state.access.get(auth[7:]) if auth.startswith("Bearer ") else None
        if user is None:
            self._reply(request, 401, b'{"error":"invalid_token"}')
            return
        self._reply(request, 200, json.dumps(user).encode())

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json") -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
