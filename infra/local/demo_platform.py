"""A stand-in for LINE on the demo stack, so a newcomer sees an agent's reply arrive somewhere.

`switchboard local` without ``--config`` points the demo's LINE account at this server: a push (the
way replies reach a LINE customer) is accepted as LINE would accept it (the channel access token
checked, ``X-Line-Retry-Key`` honoured: a repeated key answers 409), printed on the command's
output, and listed at ``GET /pushes``. Profiles answer 404, as LINE does for a user who never added
the account, so the demo shows the customer id rather than a made-up name.

Local only: nothing here is deployed, and it listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PUSH = "/v2/bot/message/push"


class DemoLine:
    channel = "line"  # the demo accounts it stands in for

    def __init__(self, access_token: str, *, announce: Callable[[str], None] = print) -> None:
        self.access_token = access_token
        self.announce = announce
        self.pushes: list[dict[str, Any]] = []
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # request lines would carry nothing useful; the pushes are announced instead

            def do_GET(self) -> None:
                if self.path == "/pushes":
                    with platform._lock:
                        platform._answer(self, 200, {"pushes": list(platform.pushes)})
                    return
                platform._answer(self, 404, {"message": "Not found"})

            def do_POST(self) -> None:
                platform._push(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-line", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> DemoLine:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _push(self, request: BaseHTTPRequestHandler) -> None:
        if request.path != PUSH:
            return self._answer(request, 404, {"message": "Not found"})
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return self._answer(request, 401, {"message": "Authentication failed. Confirm that the access token is valid."})
        length = int(request.headers.get("Content-Length") or 0)
        try:
            body = json.loads(request.rfile.read(min(length, 1 << 20)))
            to, messages = str(body["to"]), list(body["messages"])
        except (ValueError, KeyError, TypeError):
            return self._answer(request, 400, {"message": "The request body has 1 error(s)"})
        key = request.headers.get("X-Line-Retry-Key") or ""
        with self._lock:
            if key and key in self._keys:  # LINE's answer to a retry of an accepted push
                accepted = {"x-line-accepted-request-id": self._keys[key]}
                return self._answer(request, 409, {"message": "The retry key is already accepted"}, accepted)
            request_id = str(uuid.uuid4())
            if key:
                self._keys[key] = request_id
            self.pushes.append({"to": to, "messages": messages, "request_id": request_id})
        for message in messages:
            shown = message.get("text") if message.get("type") == "text" else f"[{message.get('type')}]"
            self.announce(f"demo LINE  push to {to}: {shown}")
        self._answer(request, 200, {"sentMessages": [{"id": request_id}]}, {"x-line-request-id": request_id})

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
