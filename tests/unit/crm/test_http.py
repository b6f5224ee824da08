from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import responses
from crm_support import make_envelope

from switchboard.crm.base import CrmAuthError, CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.crm.http import (
    CONNECT_TIMEOUT,
    DEFAULT_RETRY_AFTER,
    READ_TIMEOUT,
    CrmHttp,
    describe_message,
    parse_retry_after,
    subject_for,
    vendor_error_text,
)
from switchboard.envelope import UNSUPPORTED_TEXT, Attachment
from switchboard.outbound_http import Headers, Response

URL = "https://crm.example.com/api/thing"


def _response(status: int, body: object, content_type: str = "application/json", reason: str = "") -> Response:
    raw = (json.dumps(body) if not isinstance(body, str) else body).encode()
    return Response(status, raw, Headers([("Content-Type", content_type)]), reason=reason)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("0", 0.0), ("1.5", 1.5), (None, DEFAULT_RETRY_AFTER), ("", DEFAULT_RETRY_AFTER), ("soon", DEFAULT_RETRY_AFTER)],
)
def test_retry_after_seconds(value: str | None, expected: float) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    # 2025-07-01T03:05:06Z minus a clock at 03:04:06Z
    assert parse_retry_after("Tue, 01 Jul 2025 03:05:06 GMT", now=1751339046.0) == pytest.approx(60.0)
    assert parse_retry_after("Tue, 01 Jul 2025 03:05:06 GMT", now=1751339999.0) == 0.0


def test_retry_after_is_capped() -> None:
    assert parse_retry_after("999999") == 3600.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "error": "RecordInvalid",
                "description": "Record validation errors",
                "details": {"base": [{"description": "Subject: cannot be blank"}]},
            },
            "RecordInvalid: Record validation errors (Subject: cannot be blank)",
        ),
        (
            {"error": {"title": "Forbidden", "message": "You do not have access to this page."}},
            "Forbidden: You do not have access to this page.",
        ),
        (
            [
                {
                    "message": "Required fields are missing: [LastName]",
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "fields": ["LastName"],
                }
            ],
            "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)",
        ),
        ({"error": {"code": "0x80040203", "message": "Invalid property"}}, "0x80040203: Invalid property"),
        ({"errors": [{"code": "bad_request", "message": "name too long", "meta": {}}]}, "bad_request: name too long"),
        (
            {
                "errors": [
                    {
                        "status": 400,
                        "title": "Invalid",
                        "detail": "bad channel",
                        "source": {"pointer": "/data/attributes/channel"},
                    }
                ]
            },
            "Invalid: bad channel: /data/attributes/channel",
        ),
        (
            {"error": "invalid_grant", "error_description": "expired access/refresh token"},
            "invalid_grant: expired access/refresh token",
        ),
        ({"error": "invalid", "message": "contact_id: no such contact"}, "invalid: contact_id: no such contact"),
    ],
)
def test_vendor_error_shapes(body: object, expected: str) -> None:
    assert vendor_error_text(_response(400, body)) == expected


def test_vendor_error_plain_text_and_empty() -> None:
    assert vendor_error_text(_response(429, "Rate limit exceeded", "text/plain")) == "Rate limit exceeded"
    assert vendor_error_text(_response(401, "", reason="Unauthorized")) == "Unauthorized"


def test_classification() -> None:
    http = CrmHttp("test")
    limited = http.classify("GET", URL, _response(429, "slow down", "text/plain"))
    assert isinstance(limited, CrmRateLimited) and limited.retry_after == DEFAULT_RETRY_AFTER
    assert type(http.classify("GET", URL, _response(503, "down", "text/html"))) is CrmRetryable
    assert type(http.classify("GET", URL, _response(409, {"error": "conflict"}))) is CrmRetryable
    assert type(http.classify("GET", URL, _response(401, {"error": "nope"}))) is CrmAuthError
    rejected = http.classify("POST", URL, _response(404, {"error": "RecordNotFound", "description": "Not found"}))
    assert type(rejected) is CrmRejected
    assert rejected.status == 404
    assert rejected.message == "test POST /api/thing: HTTP 404: RecordNotFound: Not found"


def test_a_vendor_rate_limit_on_another_status_is_the_adapters_rule() -> None:
    """A 403 is a rejection unless the adapter's rule says it is its way of saying "slow down"."""
    daily = _response(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    assert type(CrmHttp("test").classify("GET", URL, daily)) is CrmRejected
    http = CrmHttp("test", rate_limited=lambda r: 300.0 if r.status_code == 403 else None)
    limited = http.classify("GET", URL, daily)
    assert isinstance(limited, CrmRateLimited) and (limited.retry_after, limited.status) == (300.0, 403)
    assert type(http.classify("GET", URL, _response(400, {"error": "no"}))) is CrmRejected


def test_timeout_and_connection_errors_are_retryable(rsps: responses.RequestsMock) -> None:
    http = CrmHttp("test")
    rsps.add(responses.GET, URL, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.add(responses.GET, URL, body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(CrmRetryable, match="timed out"):
        http.request("GET", URL)
    with pytest.raises(CrmRetryable, match="connection failed"):
        http.request("GET", URL)
    assert http.calls.api == 2


def test_every_call_has_a_timeout(rsps: responses.RequestsMock) -> None:
    seen: list[object] = []
    session = requests.Session()
    original = session.request

    def spy(*args: object, **kwargs: object) -> requests.Response:
        seen.append(kwargs.get("timeout"))
        return original(*args, **kwargs)  # type: ignore[arg-type]

    session.request = spy  # type: ignore[method-assign]
    rsps.add(responses.GET, URL, json={})
    CrmHttp("test", session=session).request("GET", URL)
    assert seen == [(CONNECT_TIMEOUT, READ_TIMEOUT)]


def test_401_refreshes_once_then_gives_up(rsps: responses.RequestsMock) -> None:
    tokens = iter(["first", "second", "third"])
    current = {"token": next(tokens)}
    refreshes: list[int] = []

    def refresh() -> None:
        refreshes.append(1)
        current["token"] = next(tokens)

    rsps.add(responses.GET, URL, status=401, json={"error": "expired"})
    rsps.add(responses.GET, URL, status=401, json={"error": "expired"})
    http = CrmHttp("test")
    with pytest.raises(CrmAuthError, match="HTTP 401"):
        http.request("GET", URL, auth=lambda: {"Authorization": f"Bearer {current['token']}"}, refresh=refresh)
    assert len(refreshes) == 1
    assert [c.request.headers["Authorization"] for c in rsps.calls] == ["Bearer first", "Bearer second"]


def test_counter_splits_kinds(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.POST, URL, json={})
    rsps.add(responses.GET, URL, json={})
    rsps.add(responses.PUT, URL, json={})
    http = CrmHttp("test")
    http.request("POST", URL, kind="token")
    http.request("GET", URL, kind="whoami")
    http.request("PUT", URL)
    assert http.calls.snapshot() == {"token": 1, "whoami": 1, "api": 1, "total": 3}
    http.calls.reset()
    assert http.calls.total == 0


def test_vendor_echo_of_a_secret_is_redacted(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, URL, status=400, json={"error": "bad_token", "description": "token s3cr3t-value is malformed"})
    with pytest.raises(CrmRejected) as info:
        CrmHttp("test", secrets=["s3cr3t-value"]).request("GET", URL)
    assert "s3cr3t-value" not in info.value.message
    assert "***" in info.value.message


def test_describe_message_without_text() -> None:
    image = make_envelope(kind="image", text=None, attachments=(Attachment(type="image", url="https://cdn.example.com/a.jpg"),))
    assert describe_message(image) == "[image] https://cdn.example.com/a.jpg"
    assert describe_message(make_envelope(kind="sticker", text=None)) == "[sticker]"
    assert describe_message(make_envelope(kind="unsupported", text=None)) == UNSUPPORTED_TEXT
    located = make_envelope(kind="location", text=None, data={"title": "Shop", "latitude": 35.6, "longitude": 139.7})
    assert describe_message(located) == "[location] Shop, 35.6, 139.7"
    assert subject_for("line", make_envelope(text="x" * 300), 20) == "LINE: xxxxxxxxxxxxx\u2026"


def test_the_label_is_the_channels_own_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """CRM code names no channel: what agents read is the label the channel's module declares."""
    from switchboard import channels

    def info(name: str) -> channels.ChannelInfo:
        if name != "line":
            raise channels.UnknownChannel(name)
        return channels.ChannelInfo(label="LINE Official Account", medium="chat")

    monkeypatch.setattr(channels, "info", info)
    assert subject_for("line", make_envelope(text="hello"), 100) == "LINE Official Account: hello"
    assert subject_for("pigeon", make_envelope(text="hello"), 100) == "pigeon: hello"  # unregistered: its name


# -- the transport: outbound_http's limits under the trusted policy ------------------------------------


@pytest.fixture
def crm_server() -> Iterator[str]:
    """A CRM on 127.0.0.1 (as the e2e fake CRM is) that dribbles one header line every half second."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            if self.path == "/ok":
                body = b'{"id": 1}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            try:
                for i in range(16):
                    self.wfile.flush()
                    time.sleep(0.5)
                    self.wfile.write(f"X-Slow-{i}: 1\r\n".encode())
                self.wfile.write(b"Content-Length: 2\r\n\r\n{}")
            except OSError:
                pass
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_crm_on_loopback_over_http_is_reached(crm_server: str) -> None:
    assert CrmHttp("test").request("GET", crm_server + "/ok").json() == {"id": 1}


def test_a_crm_dribbling_its_headers_is_cut_at_the_call_deadline(crm_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(CrmRetryable, match="timed out"):
        CrmHttp("test", deadline=1.5).request("GET", crm_server + "/slow")
    assert time.monotonic() - started < 4.0


def test_the_metadata_address_is_refused_even_for_a_trusted_crm_url() -> None:
    with pytest.raises(CrmRejected, match=r"169\.254\.169\.254 is not an address"):
        CrmHttp("test").request("GET", "http://169.254.169.254/latest/meta-data/?token=x")


def test_a_web_chat_subject_reads_web_chat() -> None:
    # Web chat has no webhook adapter; its label is declared beside the registry, never in CRM code.
    assert subject_for("chat", make_envelope(text="hi"), 100) == "web chat: hi"
