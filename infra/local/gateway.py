"""A local API Gateway: HTTP requests become REST (v1) proxy events for the template's routes."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from infra.local.runtime import LocalFunction

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class Route:
    def __init__(self, method: str, template: str, function: LocalFunction) -> None:
        self.method = method
        self.template = template
        self.function = function
        pattern = re.sub(r"\\\{([A-Za-z_][A-Za-z0-9_]*)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self.regex = re.compile(f"^{pattern}$")


def proxy_event(
    route: Route, method: str, path: str, query: str, headers: dict[str, str], body: bytes, params: dict[str, str], source_ip: str
) -> dict[str, Any]:
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    multi_query = parse_qs(query, keep_blank_values=True)
    return {
        "resource": route.template,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": "v1",
            "resourcePath": route.template,
            "httpMethod": method,
            "path": f"/v1{path}",
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip},
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


class LocalPage(NamedTuple):
    """A local-only answer (the demo portal of infra/local/demo_chat.py): served before the template's routes."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = {}


# (method, path) -> the local page, or None for the API's routes. Never in template.yaml: never deployed.
LocalPages = Callable[[str, str], LocalPage | None]


class Gateway:
    def __init__(self, routes: list[Route], host: str, port: int, pages: LocalPages | None = None) -> None:
        self.routes = routes
        self.pages = pages
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # request lines would print query strings, and Facebook's verify token rides in one

            def _serve(self) -> None:
                gateway.serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        path = parts.path
        if path.startswith("/v1/"):
            path = path[3:]
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._reply(request, 413, "application/json", b'{"message":"Request Too Long"}')
            return
        body = request.rfile.read(length) if length else b""
        if request.command == "GET" and path == "/healthz":
            self._reply(request, 200, "application/json", b'{"status":"ok"}')
            return
        page = self.pages(request.command, path) if self.pages is not None else None
        if page is not None:
            self._reply(request, page.status, page.content_type, page.body, dict(page.headers))
            return
        allowed = False
        for route in self.routes:
            match = route.regex.match(path)
            if not match:
                continue
            allowed = True
            if route.method != request.command:
                continue
            headers = {k: v for k, v in request.headers.items()}
            event = proxy_event(
                route, request.command, path, parts.query, headers, body, match.groupdict(), request.client_address[0]
            )
            try:
                answer = route.function.invoke(event)
            except Exception:
                self._reply(request, 502, "application/json", b'{"message":"Internal server error"}')
                raise
            payload = answer.get("body") or ""
            data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode("utf-8")
            headers = dict(answer.get("headers") or {})
            content_type = str(headers.pop("Content-Type", "application/json"))
            self._reply(request, int(answer.get("statusCode", 200)), content_type, data, headers)
            return
        status = 405 if allowed else 404
        message = "Method Not Allowed" if allowed else "Missing Authentication Token"  # what API Gateway says
        self._reply(request, status, "application/json", json.dumps({"message": message}).encode())

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes, headers: dict[str, Any] | None = None
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        # The function's own headers (CORS, caching), as API Gateway's proxy integration passes them on.
        for name, value in (headers or {}).items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                request.send_header(str(name), str(value))
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
