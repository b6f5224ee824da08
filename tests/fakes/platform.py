"""The messaging platforms' APIs and file URLs, played by one local server for attachment and name tests.

One plain ``http.server`` on 127.0.0.1, port 0, in a thread. Accounts point their base URLs at it
(``api_base_url``, ``data_base_url``, ``graph_base_url``), so it answers, as the platforms do:

* LINE content: ``GET /v2/bot/message/{messageId}/content`` with ``Authorization: Bearer {channel
  access token}``, answering the bytes registered with :meth:`FakePlatform.line_content`;
* LINE profile: ``GET /v2/bot/profile/{userId}`` (same token) answering ``{displayName, userId}``;
* Facebook's User Profile API: ``GET /{psid}?fields=first_name,last_name&access_token=...&appsecret_proof=...``,
  which checks the page token and, when the app secret is known, the proof (HMAC-SHA256 of the
  token keyed with the app secret), answering Graph's error JSON otherwise;
* plain file URLs (``/files/...``), standing in for Facebook's CDN, GBM's storage and LINE's
  external content providers.

Any path can be made to fail a number of times (:meth:`FakePlatform.fail`). Every request is
recorded (method, path, query, headers) so tests can check what Switchboard asked, and how often.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased


@dataclass
class _State:
    line_tokens: set[str] = field(default_factory=set)
    page_tokens: dict[str, str | None] = field(default_factory=dict)  # page token -> app secret (None: proof not checked)
    content: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (body, content type)
    undeclared: set[str] = field(default_factory=set)  # paths answered without Content-Length
    line_profiles: dict[str, str] = field(default_factory=dict)  # userId -> displayName
    graph_profiles: dict[str, dict[str, str]] = field(default_factory=dict)  # psid -> fields
    failures: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses still to answer
    requests: list[Recorded] = field(default_factory=list)


class FakePlatform:
    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # request lines carry access tokens
                return

            def do_GET(self) -> None:
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-platform", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakePlatform:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- what the platforms hold ---------------------------------------------------------------------
    def line_token(self, token: str) -> None:
        with self._lock:
            self._state.line_tokens.add(token)

    def page_token(self, token: str, app_secret: str | None = None) -> None:
        with self._lock:
            self._state.page_tokens[token] = app_secret

    def line_content(self, message_id: str, body: bytes, content_type: str) -> None:
        self.file(f"/v2/bot/message/{message_id}/content", body, content_type)

    def file(self, path: str, body: bytes, content_type: str, *, declare_length: bool = True) -> str:
        """Serve ``body`` at ``path``; returns its full URL. ``declare_length=False`` streams it with no
        Content-Length (closing the connection at its end), as a server that does not say its size."""
        with self._lock:
            self._state.content[path] = (body, content_type)
            if not declare_length:
                self._state.undeclared.add(path)
        return self.url + path

    def line_profile(self, user_id: str, display_name: str) -> None:
        with self._lock:
            self._state.line_profiles[user_id] = display_name

    def graph_profile(self, psid: str, first_name: str, last_name: str) -> None:
        with self._lock:
            self._state.graph_profiles[psid] = {"first_name": first_name, "last_name": last_name, "id": psid}

    def fail(self, path: str, status: int = 500, times: int = 1) -> None:
        """Answer ``path`` with ``status`` for the next ``times`` requests (before anything else is checked)."""
        with self._lock:
            self._state.failures.setdefault(path, []).extend([status] * times)

    # -- what was asked ------------------------------------------------------------------------------
    def requests(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self._state.requests if path is None or r.path == path]

    def requests_under(self, prefix: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self._state.requests if r.path.startswith(prefix)]

    # -- serving -------------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self._state.requests.append(Recorded("GET", parts.path, query, headers))
            pending = self._state.failures.get(parts.path)
            failure = pending.pop(0) if pending else None
        if failure is not None:
            return _answer(handler, failure, b'{"message":"injected failure"}', "application/json")
        if parts.path.startswith("/v2/bot/"):
            return self._line(handler, parts.path, headers)
        if parts.path.startswith("/files/"):
            return self._file(handler, parts.path)
        return self._graph(handler, parts.path, query)

    def _line(self, handler: BaseHTTPRequestHandler, path: str, headers: dict[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            known = scheme == "Bearer" and token in self._state.line_tokens
            content = self._state.content.get(path)
            profile_of = path.removeprefix("/v2/bot/profile/") if path.startswith("/v2/bot/profile/") else None
            name = self._state.line_profiles.get(profile_of) if profile_of else None
        if not known:
            return _json(
                handler,
                401,
                {"message": "Authentication failed. Confirm that the access token in the authorization header is valid."},
            )
        if profile_of is not None:
            if name is None:
                return _json(handler, 404, {"message": "Not found"})
            return _json(handler, 200, {"displayName": name, "userId": profile_of, "language": "en"})
        if content is None:
            return _json(handler, 404, {"message": "Not found"})
        return _answer(handler, 200, *content)

    def _file(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        with self._lock:
            content = self._state.content.get(path)
            declare = path not in self._state.undeclared
        if content is None:
            return _answer(handler, 404, b"Not Found", "text/plain")
        return _answer(handler, 200, *content, declare_length=declare)

    def _graph(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        psid = path.strip("/")
        token = query.get("access_token", "")
        with self._lock:
            known = token in self._state.page_tokens
            app_secret = self._state.page_tokens.get(token)
            profile = self._state.graph_profiles.get(psid)
        if not known:
            return _json(
                handler, 400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}
            )
        if app_secret is not None:
            proof = hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(query.get("appsecret_proof", ""), proof):
                return _json(
                    handler, 400, {"error": {"message": "Invalid appsecret_proof provided in the API argument", "code": 100}}
                )
        if profile is None:
            return _json(handler, 400, {"error": {"message": "No profile available for this user.", "code": 2018218}})
        fields = [f for f in query.get("fields", "").split(",") if f]
        return _json(handler, 200, {k: v for k, v in profile.items() if k in fields or k == "id"})


def _json(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    _answer(handler, status, json.dumps(body).encode(), "application/json")


def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, *, declare_length: bool = True) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    if declare_length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)
