"""The one outbound HTTP client: address policies, the overall deadline, the byte cap, redirects, retry
classification and redaction, over real local sockets (servers on 127.0.0.1, and 127.0.0.2 standing for
an internal host), plus the rule that nothing else in src/ imports ``requests``.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from source_tree import parse

from switchboard import outbound_http
from switchboard.outbound_http import (
    DEPLOYED,
    LOCAL,
    TRUSTED,
    AddressPolicy,
    Client,
    ConnectionFailed,
    Limits,
    Redactor,
    Refused,
    TimedOut,
    TooLarge,
    TooManyRedirects,
    classify_status,
    parse_retry_after,
    policy_from_env,
    redact_url,
)

ROOT = Path(__file__).resolve().parents[3]
SECRET = "tok-3f3f3f-never-in-a-message"
LIMITS = Limits(deadline=5.0, max_bytes=1000, max_redirects=3)

Route = Callable[[BaseHTTPRequestHandler], None]


class Server:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                route = server.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    answer(self, 404, b"no")
                else:
                    route(self)

            do_GET = do_POST = _any

        self.http = ThreadingHTTPServer((host, 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.http.server_address[0]}:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, *, length: bool = True, **headers: str) -> None:
    handler.send_response(status)
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
    servers = Server(), Server(), Server("127.0.0.2")
    yield servers
    for server in servers:
        server.close()


@pytest.fixture
def servers(started: tuple[Server, Server, Server]) -> tuple[Server, Server, Server]:
    for server in started:
        server.routes.clear()
        server.seen.clear()
    return started


# -- the policies --------------------------------------------------------------------------------------

INTERNAL = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "169.254.169.254",  # cloud metadata
    "169.254.1.1",
    "0.0.0.0",  # noqa: S104 - an address judged, not bound
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fd00::1",
    "fd00:ec2::254",  # cloud metadata over IPv6
    "fe80::1",
    "fe80::1%lo",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "2002:a00:1::",  # 6to4 for 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 for 169.254.169.254
    "not an address",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::"]


@pytest.mark.parametrize("address", INTERNAL)
def test_the_deployed_policy_refuses_every_non_public_address(address: str) -> None:
    assert DEPLOYED.allows_address(address) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_the_deployed_policy_allows_public_addresses(address: str) -> None:
    assert DEPLOYED.allows_address(address) is True


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("8.8.8.8", True),
        ("0.0.0.0", False),  # noqa: S104 - an address judged, not bound
        ("::", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("fd00:ec2::254", False),
        ("fe80::1", False),
    ],
)
def test_the_local_policy_adds_loopback_and_nothing_else(address: str, allowed: bool) -> None:
    assert LOCAL.allows_address(address) is allowed


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.0.1", True),
        ("8.8.8.8", True),
        ("169.254.169.254", False),
        ("::ffff:169.254.169.254", False),
        ("fd00:ec2::254", False),
        ("0.0.0.0", False),  # noqa: S104 - an address judged, not bound
    ],
)
def test_the_trusted_policy_for_crm_base_urls_refuses_only_metadata_and_unspecified(address: str, allowed: bool) -> None:
    assert TRUSTED.allows_address(address) is allowed


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a",
        "http://8.8.8.8/a",
        "ftp://example.com/a",
        "file:///etc/passwd",
        "https://127.0.0.1/a",
        "https://10.0.0.1/a",
        "https://169.254.169.254/latest/meta-data/",
        "https://0.0.0.0/a",
        "https://[::1]/a",
        "https://[fd00::1]/a",
        "https:///no-host",
    ],
)
def test_the_deployed_policy_refuses_urls_before_any_socket(url: str) -> None:
    with pytest.raises(outbound_http.NotRetryable):
        DEPLOYED.check_url(url)


def test_the_deployed_policy_accepts_https_names() -> None:
    DEPLOYED.check_url("https://cdn.example.com/a.jpg?sig=1")  # the name is judged when it resolves


def test_one_switch_picks_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_ALLOW_HTTP", raising=False)
    assert policy_from_env() is DEPLOYED
    monkeypatch.setenv("SWITCHBOARD_ALLOW_HTTP", "0")
    assert policy_from_env() is DEPLOYED
    monkeypatch.setenv("SWITCHBOARD_ALLOW_HTTP", "1")
    assert policy_from_env() is LOCAL


def test_a_policy_can_admit_exactly_one_address(servers: tuple[Server, Server, Server]) -> None:
    a, _, internal = servers
    only_a = AddressPolicy("only-a", schemes=frozenset({"http"}), allow=(ip_network("127.0.0.1/32"),))
    a.routes["/x"] = lambda h: answer(h, 200, b"ok")
    internal.routes["/x"] = lambda h: answer(h, 200, b"internal")
    assert Client(only_a).request("GET", a.url + "/x", limits=LIMITS).body == b"ok"
    with pytest.raises(Refused, match=r"127\.0\.0\.2 is not an address the only-a policy allows"):
        Client(only_a).request("GET", internal.url + "/x", limits=LIMITS)
    assert internal.seen == []


def test_a_policy_can_deny_an_address_it_would_allow(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    policy = AddressPolicy("local-but-a", schemes=frozenset({"http"}), loopback=True, deny=(ip_network("127.0.0.1/32"),))
    with pytest.raises(Refused):
        Client(policy).request("GET", a.url + "/x", limits=LIMITS)
    assert a.seen == []


def test_every_redirect_hop_is_checked(servers: tuple[Server, Server, Server]) -> None:
    a, _, internal = servers
    only_a = AddressPolicy("only-a", schemes=frozenset({"http"}), allow=(ip_network("127.0.0.1/32"),))
    a.routes["/1"] = lambda h: answer(h, 302, b"", Location="/2")
    a.routes["/2"] = lambda h: answer(h, 307, b"", Location=internal.url + "/x")
    with pytest.raises(Refused) as caught:
        Client(only_a).request("GET", a.url + "/1", limits=LIMITS)
    assert caught.value.target == internal.url + "/x"
    assert [path for _, path, _, _ in a.seen] == ["/1", "/2"]
    assert internal.seen == []


def test_no_proxy_from_the_environment_is_used(servers: tuple[Server, Server, Server], monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a proxy the connected peer would be the proxy, and the policy could not judge the target."""
    a, _, _ = servers
    a.routes["/x"] = lambda h: answer(h, 200, b"direct")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert Client(LOCAL).request("GET", a.url + "/x", limits=LIMITS).body == b"direct"


# -- one deadline per call -----------------------------------------------------------------------------


def dribble_headers(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    handler.wfile.flush()
    try:
        for i in range(16):  # 8 s of headers, each line well within the read timeout
            time.sleep(0.5)
            handler.wfile.write(f"X-Dribble-{i}: still here\r\n".encode())
            handler.wfile.flush()
        handler.wfile.write(b"Content-Length: 2\r\n\r\nok")
    except OSError:
        pass
    handler.close_connection = True


def test_headers_dribbled_one_line_every_half_second_are_cut_at_the_deadline(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    a.routes["/dribble"] = dribble_headers
    limits = Limits(deadline=1.5, max_bytes=1000, connect_timeout=3.0, read_timeout=10.0)
    started = time.monotonic()
    with pytest.raises(TimedOut) as caught:
        Client(LOCAL).request("GET", a.url + "/dribble", limits=limits)
    elapsed = time.monotonic() - started
    assert caught.value.retryable is True
    assert str(caught.value) == f"{a.url}/dribble: no answer within 1.5 s"
    assert elapsed < 4.0  # the 1.5 s deadline plus slack, far below the 8 s of headers on offer


def test_a_body_dripped_byte_by_byte_is_cut_at_the_deadline(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers

    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        try:
            for _ in range(100):
                handler.wfile.write(b"-")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    a.routes["/drip"] = drip
    started = time.monotonic()
    with pytest.raises(TimedOut):
        Client(LOCAL).request("GET", a.url + "/drip", limits=Limits(deadline=1.0, max_bytes=1000))
    assert time.monotonic() - started < 3.5


def test_a_tls_handshake_that_never_comes_is_cut_at_the_deadline() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)  # connected, and then silence: no ServerHello ever

    threading.Thread(target=accept, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(TimedOut):
            Client(LOCAL).request(
                "GET",
                f"https://127.0.0.1:{listener.getsockname()[1]}/",
                limits=Limits(deadline=1.0, max_bytes=100, connect_timeout=10.0, read_timeout=10.0),
            )
        assert time.monotonic() - started < 3.5
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_the_deadline_covers_every_hop(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers

    def slow_redirect(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(0.4)
        answer(handler, 302, b"", Location="/slow")

    a.routes["/slow"] = slow_redirect
    started = time.monotonic()
    with pytest.raises((TimedOut, TooManyRedirects)) as caught:
        Client(LOCAL).request("GET", a.url + "/slow", limits=Limits(deadline=1.0, max_bytes=100, max_redirects=20))
    assert isinstance(caught.value, TimedOut)
    assert time.monotonic() - started < 3.0


# -- the byte cap --------------------------------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_refused_before_the_body(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    a.routes["/big"] = lambda h: answer(h, 200, b"x" * 5000)
    with pytest.raises(TooLarge, match="larger than 1000 bytes") as caught:
        Client(LOCAL).request("GET", a.url + "/big", limits=LIMITS)
    assert caught.value.retryable is False


def test_a_body_without_length_is_cut_at_the_cap_while_streaming(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    a.routes["/big"] = lambda h: answer(h, 200, b"x" * 5000, length=False)
    a.routes["/small"] = lambda h: answer(h, 200, b"x" * 1000, length=False)
    with pytest.raises(TooLarge):
        Client(LOCAL).request("GET", a.url + "/big", limits=LIMITS)
    assert len(Client(LOCAL).request("GET", a.url + "/small", limits=LIMITS).body) == 1000


def test_inspect_sees_the_headers_before_the_body_and_may_stop_it(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    a.routes["/f"] = lambda h: answer(h, 200, b"GIF89a", Content_Type="image/gif")
    seen: list[tuple[int, str | None]] = []

    class Stop(Exception):
        pass

    def inspect(status: int, headers: outbound_http.Headers) -> None:
        seen.append((status, headers.get("content-type")))
        raise Stop

    with pytest.raises(Stop):
        Client(LOCAL).request("GET", a.url + "/f", limits=LIMITS, inspect=inspect)
    assert seen == [(200, "image/gif")]


# -- redirects -----------------------------------------------------------------------------------------


def test_credentials_are_dropped_once_a_redirect_leaves_the_origin(servers: tuple[Server, Server, Server]) -> None:
    a, b, _ = servers
    a.routes["/start"] = lambda h: answer(h, 302, b"", Location="/same")
    a.routes["/same"] = lambda h: answer(h, 302, b"", Location=b.url + "/other")
    b.routes["/other"] = lambda h: answer(h, 302, b"", Location=a.url + "/back")
    a.routes["/back"] = lambda h: answer(h, 200, b"done")
    response = Client(LOCAL).request(
        "GET",
        a.url + "/start",
        limits=LIMITS,
        headers={"Authorization": f"Bearer {SECRET}", "Cookie": "s=1", "X-Api-Key": SECRET, "X-Trace": "t"},
        params={"access_token": SECRET},
        credential_headers=("X-Api-Key",),
    )
    assert response.body == b"done"
    (start, same, back), (other,) = [(p, h) for _, p, h, _ in a.seen], [(p, h) for _, p, h, _ in b.seen]
    assert start[0] == f"/start?access_token={SECRET}" and start[1]["authorization"] == f"Bearer {SECRET}"
    assert same[0] == "/same" and same[1]["authorization"] == f"Bearer {SECRET}"  # same origin: kept, query not repeated
    for path, headers in (other, back):  # left the origin: gone for good, even on the way back
        assert SECRET not in path
        assert not {"authorization", "cookie", "x-api-key"} & set(headers)
        assert headers["x-trace"] == "t"


def test_too_many_redirects_is_final(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    a.routes["/loop"] = lambda h: answer(h, 302, b"", Location="/loop")
    with pytest.raises(TooManyRedirects, match="more than 3 redirects") as caught:
        Client(LOCAL).request("GET", a.url + "/loop", limits=LIMITS)
    assert caught.value.retryable is False
    assert len(a.seen) == 4


def test_without_redirects_allowed_a_3xx_is_the_answer(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    a.routes["/r"] = lambda h: answer(h, 302, b"", Location="http://169.254.169.254/")
    response = Client(LOCAL).request("GET", a.url + "/r", limits=Limits(deadline=5, max_bytes=100))
    assert (response.status, response.headers["location"]) == (302, "http://169.254.169.254/")


def test_a_303_after_a_post_becomes_a_get_without_the_body(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    a.routes["/form"] = lambda h: answer(h, 303, b"", Location="/done")
    a.routes["/done"] = lambda h: answer(h, 200, b"ok")
    Client(LOCAL).request("POST", a.url + "/form", limits=LIMITS, data={"code": SECRET})
    (post, get) = a.seen
    assert (post[0], post[3]) == ("POST", f"code={SECRET}".encode())
    assert (get[0], get[3]) == ("GET", b"")


def test_cookies_are_not_kept_between_calls(servers: tuple[Server, Server, Server]) -> None:
    a, _, _ = servers
    a.routes["/set"] = lambda h: answer(h, 200, b"", Set_Cookie="session=abc; Path=/")
    a.routes["/next"] = lambda h: answer(h, 200, b"")
    client = Client(LOCAL)
    client.request("GET", a.url + "/set", limits=LIMITS)
    client.request("GET", a.url + "/next", limits=LIMITS)
    assert "cookie" not in a.seen[1][2]


# -- retry classification ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (408, True), (429, True), (400, False), (401, False), (403, False), (404, False)],
)
def test_statuses_are_classified(status: int, retryable: bool) -> None:
    failure = classify_status(status, {"Retry-After": "7"})
    assert failure is not None and failure.retryable is retryable and failure.status == status
    assert failure.retry_after == (7.0 if status in (429, 503) else None)


def test_a_2xx_is_no_failure() -> None:
    assert classify_status(200) is None and classify_status(204) is None


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon", default=30.0) == 30.0
    assert parse_retry_after("Tue, 01 Jul 2025 03:05:06 GMT", now=1751339046.0) == pytest.approx(60.0)
    assert parse_retry_after("999999") == 3600.0


def test_a_refused_connection_is_retryable_and_names_no_secret() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(ConnectionFailed) as caught:
        Client(LOCAL).request(
            "GET", f"http://user:{SECRET}@127.0.0.1:{port}/p?access_token={SECRET}", limits=LIMITS, params={"t": SECRET}
        )
    assert caught.value.retryable is True
    assert str(caught.value) == f"http://127.0.0.1:{port}/p: connection failed: Connection refused"
    assert caught.value.__cause__ is None and caught.value.__context__ is None


# -- redaction -----------------------------------------------------------------------------------------


def test_redacted_urls_keep_only_scheme_host_port_and_path() -> None:
    assert (
        redact_url(f"https://user:{SECRET}@Cdn.Example.com:8443/a/b.jpg?sig={SECRET}#f") == "https://cdn.example.com:8443/a/b.jpg"
    )
    assert redact_url("https://[::1]/x?y") == "https://[::1]/x"
    assert redact_url("http://[::1") == "(an unparseable URL)"


def test_the_redactor_replaces_known_secrets() -> None:
    redact = Redactor([SECRET, "abc"])  # too short to redact safely: left alone
    assert redact(f"vendor said {SECRET} and abc") == "vendor said *** and abc"


def test_a_response_reads_json_through_safe_json() -> None:
    response = outbound_http.Response(200, b"[" * 100 + b"]" * 100)
    with pytest.raises(ValueError):
        response.json()
    text = outbound_http.Response(
        200, "caf\u00e9".encode("latin-1"), outbound_http.Headers([("Content-Type", "text/plain; charset=latin-1")])
    )
    assert text.text == "caf\u00e9"


@pytest.mark.parametrize("bad", [{"deadline": 0}, {"deadline": float("inf")}, {"max_bytes": 0}, {"max_redirects": -1}])
def test_limits_must_be_sane(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Limits(**{"deadline": 1.0, "max_bytes": 1, **bad})


# -- one module imports requests, and only when a call is made -----------------------------------------


def _imports_requests(path: Path) -> bool:
    tree = parse(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "requests" or a.name.startswith("requests.") for a in node.names):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and (node.module == "requests" or node.module.startswith("requests."))
        ):
            return True
    return False


def test_only_outbound_http_imports_requests() -> None:
    """Every product call out (platforms, CRMs, key servers, IdPs, and the command posting to the stack)."""
    product = [p for folder in ("src", "infra", "functions") for p in (ROOT / folder).rglob("*.py")]
    importers = sorted(str(p.relative_to(ROOT)) for p in product if _imports_requests(p))
    assert importers == ["src/switchboard/outbound_http.py"]


def test_no_function_imports_requests_at_init() -> None:
    """Webhooks, token_validate and crm_events must not pay for requests on a cold start (route and crm_writer only when
    they call out)."""
    code = (
        "import sys\n"
        "import functions.webhook_line.app, functions.webhook_facebook.app, functions.webhook_gbm.app\n"
        "import functions.token_validate.app, functions.route.app, functions.crm_events.app\n"
        "import switchboard.outbound_http, switchboard.http_fetch, switchboard.chat_auth.oauth, switchboard.chat_auth.keys\n"
        "assert 'requests' not in sys.modules, 'requests imported at init'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "unit",
            "AWS_SECRET_ACCESS_KEY": "unit",
            "SETTINGS_TABLE": "t",
            "CONVERSATIONS_TABLE": "t",
            "INBOUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo",
            "CRM_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/c.fifo",
            "OUTBOUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/o.fifo",
            "INBOUND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/d.fifo",
            "CRM_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/e.fifo",
            "SECRETS_PREFIX": "switchboard/unit",
            "ATTACHMENTS_BUCKET": "unit-attachments",
            "SWITCHBOARD_LAZY_CLIENTS": "1",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
