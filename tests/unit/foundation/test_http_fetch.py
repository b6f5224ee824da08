"""The fetcher over real sockets (throw-away local servers): caps, redirects, the address policy, the deadline,
and no token in any log line.

Every server listens on the loopback range: 127.0.0.1 plays the platform, 127.0.0.2 an internal
host that a test policy (the deployed rules plus exactly 127.0.0.1) must never let us reach.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from typing import Any

import pytest
from fakes.ports import FakeSecrets

from switchboard.channels.base import FetchRequest
from switchboard.http_fetch import LazySecrets, RequestsFetcher
from switchboard.outbound_http import LOCAL, AddressPolicy
from switchboard.ports import FetchFailed, FetchTooLarge

TOKEN = "EAAG-page-token-never-logged-0f0f"

Route = Callable[[BaseHTTPRequestHandler], None]

# The deployed rules (public addresses only), but with http and exactly 127.0.0.1 admitted so that a
# local server can play the platform; 127.0.0.2 stays what it is under the deployed policy: refused.
PLATFORM_ONLY = AddressPolicy("deployed-but-127.0.0.1", schemes=frozenset({"http", "https"}), allow=(ip_network("127.0.0.1/32"),))


class Server:
    """Answers each path with the function registered for it and records (path, headers) of every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
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

        self.http = ThreadingHTTPServer((host, 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.http.server_address[0]}:{self.port}"

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
def started() -> Iterator[tuple[Server, Server, Server]]:
    a, b, internal = Server(), Server(), Server("127.0.0.2")
    yield a, b, internal
    a.close()
    b.close()
    internal.close()


@pytest.fixture
def servers(started: tuple[Server, Server, Server]) -> tuple[Server, Server]:
    for server in started:
        server.routes.clear()
        server.seen.clear()
    return started[0], started[1]


@pytest.fixture
def internal(started: tuple[Server, Server, Server], servers: tuple[Server, Server]) -> Server:
    """A host on 127.0.0.2 standing for an internal service: every test that uses it asserts it saw nothing."""
    started[2].routes["/internal"] = lambda h: send(h, 200, b"\xff\xd8\xffsecret", "image/jpeg")
    return started[2]


def local() -> RequestsFetcher:
    return RequestsFetcher(policy=LOCAL)


def test_a_body_without_content_length_is_cut_at_the_cap(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    a.routes["/big"] = lambda h: send(h, 200, b"x" * 5000, "image/jpeg", length=False)
    a.routes["/small"] = lambda h: send(h, 200, b"x" * 500, "image/jpeg", length=False)
    fetcher = local()
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
        local().get(FetchRequest(a.url + "/f"), max_bytes=100, timeout=5, check=check)
    assert seen == [("image/gif", 6)]


def test_a_redirect_to_another_host_drops_the_credential(servers: tuple[Server, Server]) -> None:
    a, b = servers
    a.routes["/content"] = lambda h: send(h, 302, b"", "text/plain", Location=b.url + "/cdn/file.jpg")
    b.routes["/cdn/file.jpg"] = lambda h: send(h, 200, b"jpeg", "image/jpeg")
    request = FetchRequest(a.url + "/content", headers={"Authorization": f"Bearer {TOKEN}"}, params={"access_token": TOKEN})
    fetched = local().get(request, max_bytes=100, timeout=5)
    assert fetched.body == b"jpeg"
    ((first_path, first_headers),) = a.seen
    ((second_path, second_headers),) = b.seen
    assert first_headers["authorization"] == f"Bearer {TOKEN}" and TOKEN in first_path
    assert "authorization" not in second_headers
    assert second_path == "/cdn/file.jpg"


def test_a_redirect_to_the_metadata_address_is_refused_without_connecting_even_locally(servers: tuple[Server, Server]) -> None:
    """The local stack admits http and loopback, never link-local: the literal address is refused before any socket."""
    a, _ = servers
    a.routes["/r"] = lambda h: send(h, 302, b"", "text/plain", Location="http://169.254.169.254/latest/meta-data/")
    with pytest.raises(FetchFailed) as caught:
        local().get(FetchRequest(a.url + "/r"), max_bytes=100, timeout=5)
    assert caught.value.retryable is False
    assert str(caught.value) == (
        "http://169.254.169.254/latest/meta-data/: 169.254.169.254 is not an address the local policy allows"
    )


# -- the address policy, on every hop and after DNS --------------------------------------------------


def test_a_redirect_hop_to_an_internal_address_is_refused(servers: tuple[Server, Server], internal: Server) -> None:
    a, _ = servers
    a.routes["/media.jpg"] = lambda h: send(h, 302, b"", "text/plain", Location=internal.url + "/internal")
    with pytest.raises(FetchFailed) as caught:
        RequestsFetcher(policy=PLATFORM_ONLY).get(FetchRequest(a.url + "/media.jpg"), max_bytes=100, timeout=5)
    assert caught.value.retryable is False
    assert "127.0.0.2 is not an address" in str(caught.value)
    assert [path for path, _ in a.seen] == ["/media.jpg"]
    assert internal.seen == []  # not a byte reached it


def test_the_checked_address_is_the_one_dns_answers_for_the_connection(
    servers: tuple[Server, Server], internal: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name is judged by what it resolves to when the connection is opened, not by how it looks."""
    real = socket.getaddrinfo

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "cdn.rebind.test":
            return real("127.0.0.2", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(FetchFailed) as caught:
        RequestsFetcher(policy=PLATFORM_ONLY).get(
            FetchRequest(f"http://cdn.rebind.test:{internal.port}/internal"), max_bytes=100, timeout=5
        )
    assert caught.value.retryable is False
    assert "cdn.rebind.test resolves to 127.0.0.2" in str(caught.value)
    assert internal.seen == []


def test_the_deployed_policy_refuses_plain_http(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    a.routes["/f.jpg"] = lambda h: send(h, 200, b"\xff\xd8\xff", "image/jpeg")
    with pytest.raises(FetchFailed) as caught:
        RequestsFetcher().get(FetchRequest(a.url + "/f.jpg"), max_bytes=100, timeout=5)
    assert caught.value.retryable is False
    assert "only https" in str(caught.value)
    assert a.seen == []


def test_the_deployed_policy_refuses_a_name_that_resolves_to_loopback(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    with pytest.raises(FetchFailed) as caught:
        RequestsFetcher().get(FetchRequest(f"https://localhost:{a.port}/f.jpg"), max_bytes=100, timeout=5)
    assert caught.value.retryable is False
    assert "not an address the deployed policy allows" in str(caught.value)
    assert a.seen == []


# -- one deadline, headers included ------------------------------------------------------------------


def test_headers_dribbled_one_line_every_half_second_are_cut_at_the_deadline(servers: tuple[Server, Server]) -> None:
    a, _ = servers

    def dribble(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.wfile.flush()
        try:
            for i in range(16):  # 8 s of headers, each line well within any read timeout
                time.sleep(0.5)
                handler.wfile.write(f"X-Dribble-{i}: still here\r\n".encode())
                handler.wfile.flush()
            handler.wfile.write(b"Content-Type: image/jpeg\r\nContent-Length: 3\r\n\r\n\xff\xd8\xff")
        except OSError:
            pass  # we hung up: that is the point
        handler.close_connection = True

    a.routes["/slow.jpg"] = dribble
    started = time.monotonic()
    with pytest.raises(FetchFailed) as caught:
        local().get(FetchRequest(a.url + "/slow.jpg"), max_bytes=100, timeout=1.5)
    elapsed = time.monotonic() - started
    assert caught.value.retryable is True
    assert str(caught.value) == f"{a.url}/slow.jpg: timed out"
    assert elapsed < 4.0  # the deadline (1.5 s) and some slack, far below the 8 s the server would take


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (202, True), (404, False), (403, False), (400, False)],
)
def test_statuses_say_whether_to_retry(servers: tuple[Server, Server], status: int, retryable: bool) -> None:
    a, _ = servers
    a.routes["/s"] = lambda h: send(h, status, b"{}", "application/json")
    with pytest.raises(FetchFailed) as caught:
        local().get(FetchRequest(a.url + "/s", params={"access_token": TOKEN}), max_bytes=100, timeout=5)
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert str(caught.value) == f"{a.url}/s: HTTP {status}"


def test_an_error_status_with_a_body_over_the_cap_is_the_status_not_too_large(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    a.routes["/busy"] = lambda h: send(h, 503, b"<html>" + b"x" * 5000, "text/html")
    with pytest.raises(FetchFailed) as caught:
        local().get(FetchRequest(a.url + "/busy"), max_bytes=100, timeout=5)
    assert not isinstance(caught.value, FetchTooLarge)
    assert (caught.value.status, caught.value.retryable) == (503, True)


def test_an_unreachable_host_is_a_retryable_failure_without_the_query() -> None:
    gone = Server()
    closed = gone.url
    gone.close()
    with pytest.raises(FetchFailed) as caught:
        local().get(FetchRequest(closed + "/p", params={"access_token": TOKEN}), max_bytes=100, timeout=2)
    assert caught.value.retryable is True
    assert str(caught.value) == f"{closed}/p: connection failed: Connection refused"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_no_token_in_urllib3_debug_lines(servers: tuple[Server, Server], caplog: pytest.LogCaptureFixture) -> None:
    a, _ = servers
    a.routes["/6789"] = lambda h: send(h, 200, b'{"first_name":"Peter"}', "application/json")
    with caplog.at_level(logging.DEBUG, logger="urllib3"):
        local().get(FetchRequest(a.url + "/6789", params={"access_token": TOKEN}), max_bytes=100, timeout=5)
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
