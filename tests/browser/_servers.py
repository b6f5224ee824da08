"""The two small servers the browser tests put around a local stack.

* :class:`Portal`: a business's portal on an origin of its own. ``http://localhost:<port>`` is the
  origin the test widgets allow; the same server reached as ``http://127.0.0.1:<port>`` is another
  origin (scheme, host and port make an origin), one no widget allows. Its pages embed a widget with
  the one script tag of docs/chat-widget.md and define the token function in one of several ways;
  ``/token`` answers a fresh JWT signed as the portal's server would sign it.
* :class:`FlakyProxy`: the network between the browser and the stack, which can lose requests or
  their answers on demand, so the widget's retries are tested against real lost answers.
"""

from __future__ import annotations

import html
import http.client
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The token function the page defines at `portal.auth.getToken` (the test auth setting's client_function).
TOKEN_FUNCTIONS = {
    "good": "function (callback) { fetch('/token', {cache: 'no-store'}).then((r) => r.text()).then(callback); }",
    "never": "function (callback) { /* never answers */ }",
    "refused": "function (callback) { setTimeout(function () { callback('not-a-jwt'); }, 10); }",
}

# Recorded before the widget loads, so even its ready event is seen; kept on window for the tests to read.
RECORDER = """
window.__events = [];
['ready', 'message', 'error'].forEach(function (name) {
  window.addEventListener('switchboard:' + name, function (event) {
    window.__events.push({type: name, detail: event.detail, at: performance.now()});
  });
});
"""


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Portal(_Server):
    """``GET /page?widget=<id>&api=<base URL>&token=good|never|refused`` and ``GET /token``."""

    def __init__(self, sign: Callable[[], str]) -> None:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/token":
                    portal._answer(self, 200, "text/plain", sign().encode())
                elif parts.path == "/page":
                    page = portal.page(query["widget"], query["api"], query.get("token", "good"))
                    portal._answer(self, 200, "text/html; charset=utf-8", page.encode())
                else:
                    portal._answer(self, 404, "text/plain", b"not found")

        super().__init__(Handler, "test-portal")

    @property
    def origin(self) -> str:
        """The origin the test widgets allow."""
        return f"http://localhost:{self.port}"

    @property
    def other_origin(self) -> str:
        """The same pages on an origin no widget allows."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, widget: str, api: str, *, token: str = "good", origin: str | None = None) -> str:
        return f"{origin or self.origin}/page?widget={widget}&api={api}&token={token}"

    @staticmethod
    def page(widget: str, api: str, token: str) -> str:
        script = f"{api}/chat/{widget}/widget.js"
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test portal</title><link rel="icon" href="data:,">
<script>{RECORDER}
window.portal = {{auth: {{getToken: {TOKEN_FUNCTIONS[token]}}}}};
</script>
<script src="{html.escape(script)}" async></script>
</head><body><h1>Test portal</h1><p>A page of the business's portal.</p></body></html>"""

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Cache-Control", "no-store")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


class FlakyProxy(_Server):
    """Forwards everything to ``target``; :meth:`lose` makes the next matching requests fail on the way.

    ``lose("answer", n)``: the next ``n`` visitor messages (``POST .../messages``) reach the stack, but
    their answers never reach the browser (the connection closes: fetch fails as on a network error).
    ``lose("request", n)``: the next ``n`` never reach the stack at all. ``attempts`` lists the
    ``client_message_id`` of every visitor message the browser sent, lost or not. Every answer closes its
    connection, so Chromium never resends a request by itself (it does so on a reused connection that
    closes unanswered): every retry seen is the widget's own. :meth:`hold_polls` keeps the transcript's answers
    from the browser until :meth:`release_polls`.
    """

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self._lock = threading.Lock()
        self._losing: list[str] = []
        self.attempts: list[str] = []
        self._polls = threading.Event()  # cleared: transcript answers (GET .../messages) wait before reaching the browser
        self._polls.set()
        self.seen: list[tuple[str, str, int | None]] = []  # (method, path, status answered; None: nothing)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                proxy._forward(self)

            do_GET = do_POST = do_OPTIONS = _serve

        super().__init__(Handler, "flaky-proxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lose(self, what: str, count: int = 1) -> None:
        assert what in ("answer", "request")
        with self._lock:
            self._losing.extend([what] * count)

    def hold_polls(self) -> None:
        self._polls.clear()

    def release_polls(self) -> None:
        self._polls.set()

    def pending_losses(self) -> int:
        with self._lock:
            return len(self._losing)

    def _record(self, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.seen.append((method, path, status))

    def _forward(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        message = request.command == "POST" and urlsplit(request.path).path.endswith("/messages")
        loss = None
        request.close_connection = True
        if message:
            with self._lock:
                loss = self._losing.pop(0) if self._losing else None
                try:
                    self.attempts.append(str(json.loads(body).get("client_message_id")))
                except (ValueError, AttributeError):
                    self.attempts.append("<not a JSON object>")
        path = urlsplit(request.path).path
        if loss == "request":
            self._record(request.command, path, None)
            return  # nothing forwarded, nothing answered
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        upstream = http.client.HTTPConnection(self.target.hostname or "127.0.0.1", self.target.port, timeout=60)
        try:
            upstream.request(request.command, request.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            skip = ("connection", "transfer-encoding", "server", "date")
            answer_headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in skip]
        except (OSError, http.client.HTTPException):  # the stack stopping under a long poll
            self._record(request.command, urlsplit(request.path).path, None)
            return
        finally:
            upstream.close()
        self._record(request.command, path, None if loss == "answer" else answer.status)
        if loss == "answer":
            return  # the stack has it; the browser never hears
        if request.command == "GET" and path.endswith("/messages"):
            self._polls.wait(60)
        request.send_response(answer.status)
        for name, value in answer_headers:
            request.send_header(name, value)
        request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(data)
