"""The fetcher over real sockets (two throw-away local servers): caps, redirects, and no token in any log line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from switchboard.channels.base import FetchRequest
from switchboard.http_fetch import LazySecrets, RequestsFetcher
from switchboard.ports import FetchFailed, FetchTooLarge

from ._fakes import FakeSecrets

TOKEN = "EAAG-page-token-never-logged-0f0f"

Route = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """Answers each path with the function registered for it and records (path, headers) of every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = server.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    send(self, 404, b"no", "text/plain")
                else:
                    route(self)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def send(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, *, length: bool = True, **headers: str
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture(scope="module")
def started() -> Iterator[tuple[Server, Server]]:
    a, b = Server(), Server()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def servers(started: tuple[Server, Server]) -> tuple[Server, Server]:
    for server in started:
        server.routes.clear()
        server.seen.clear()
    return started


def test_a_body_without_content_length_is_cut_at_the_cap(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    a.routes["/big"] = lambda h: send(h, 200, b"x" * 5000, "image/jpeg", length=False)
    a.routes["/small"] = lambda h: send(h, 200, b"x" * 500, "image/jpeg", length=False)
    fetcher = RequestsFetcher()
    with pytest.raises(FetchTooLarge):
        fetcher.get(FetchRequest(a.url + "/big"), max_bytes=1000, timeout=5)
    fetched = fetcher.get(FetchRequest(a.url + "/small"), max_bytes=1000, timeout=5)
    assert (len(fetched.body), fetched.content_type) == (500, "image/jpeg")


def test_check_sees_the_type_and_length_before_the_body_and_may_stop_it(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    a.routes["/f"] = lambda h: send(h, 200, b"GIF89a", "image/gif")
    seen: list[tuple[str | None, int | None]] = []

    class Stop(Exception):
        pass

    def check(content_type: str | None, length: int | None) -> None:
        seen.append((content_type, length))
        raise Stop

    with pytest.raises(Stop):
        RequestsFetcher().get(FetchRequest(a.url + "/f"), max_bytes=100, timeout=5, check=check)
    assert seen == [("image/gif", 6)]


def test_a_redirect_to_another_host_drops_the_credential(servers: tuple[Server, Server]) -> None:
    a, b = servers
    a.routes["/content"] = lambda h: send(h, 302, b"", "text/plain", Location=b.url + "/cdn/file.jpg")
    b.routes["/cdn/file.jpg"] = lambda h: send(h, 200, b"jpeg", "image/jpeg")
    request = FetchRequest(a.url + "/content", headers={"Authorization": f"Bearer {TOKEN}"}, params={"access_token": TOKEN})
    fetched = RequestsFetcher().get(request, max_bytes=100, timeout=5)
    assert fetched.body == b"jpeg"
    ((first_path, first_headers),) = a.seen
    ((second_path, second_headers),) = b.seen
    assert first_headers["authorization"] == f"Bearer {TOKEN}" and TOKEN in first_path
    assert "authorization" not in second_headers
    assert second_path == "/cdn/file.jpg"


def test_a_redirect_to_plain_http_elsewhere_is_not_followed(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    a.routes["/r"] = lambda h: send(h, 302, b"", "text/plain", Location="http://169.254.169.254/latest/meta-data/")
    with pytest.raises(FetchFailed) as caught:
        RequestsFetcher().get(FetchRequest(a.url + "/r"), max_bytes=100, timeout=5)
    assert caught.value.retryable is False
    assert "only https" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (202, True), (404, False), (403, False), (400, False)],
)
def test_statuses_say_whether_to_retry(servers: tuple[Server, Server], status: int, retryable: bool) -> None:
    a, _ = servers
    a.routes["/s"] = lambda h: send(h, status, b"{}", "application/json")
    with pytest.raises(FetchFailed) as caught:
        RequestsFetcher().get(FetchRequest(a.url + "/s", params={"access_token": TOKEN}), max_bytes=100, timeout=5)
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert str(caught.value) == f"{a.url}/s: HTTP {status}"


def test_an_unreachable_host_is_a_retryable_failure_without_the_query() -> None:
    gone = Server()
    closed = gone.url
    gone.close()
    with pytest.raises(FetchFailed) as caught:
        RequestsFetcher().get(FetchRequest(closed + "/p", params={"access_token": TOKEN}), max_bytes=100, timeout=2)
    assert caught.value.retryable is True
    assert str(caught.value) == f"{closed}/p: ConnectionError"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_no_token_in_urllib3_debug_lines(servers: tuple[Server, Server], caplog: pytest.LogCaptureFixture) -> None:
    a, _ = servers
    a.routes["/6789"] = lambda h: send(h, 200, b'{"first_name":"Peter"}', "application/json")
    with caplog.at_level(logging.DEBUG, logger="urllib3"):
        RequestsFetcher().get(FetchRequest(a.url + "/6789", params={"access_token": TOKEN}), max_bytes=100, timeout=5)
    request_lines = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert any("GET /6789" in line for line in request_lines), request_lines  # the request line was logged...
    assert all(TOKEN not in line for line in request_lines)  # ...without its query
    assert TOKEN in a.seen[0][0]  # while the server did receive it


def test_lazy_secrets_read_the_store_only_when_indexed() -> None:
    store = FakeSecrets(values={"p/account/line/a": {"channel_access_token": TOKEN, "empty": ""}})
    secrets = LazySecrets(store, "p/account/line/a")
    assert store.reads == []
    assert secrets["channel_access_token"] == TOKEN
    assert store.reads == ["p/account/line/a"]
    with pytest.raises(KeyError) as caught:
        secrets["empty"]
    assert TOKEN not in str(caught.value)
    assert (set(secrets), len(secrets)) == ({"channel_access_token", "empty"}, 2)
    assert store.reads == ["p/account/line/a"]


def test_fetch_request_target_has_no_query_or_userinfo() -> None:
    assert FetchRequest("https://user:pw@cdn.example.com/a/b.jpg?sig=1").target == "https://cdn.example.com/a/b.jpg"
