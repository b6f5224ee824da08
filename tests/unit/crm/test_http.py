from __future__ import annotations

import json

import pytest
import requests
import responses
from crm_support import make_envelope

from switchboard.crm.base import CrmAuthError, CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.crm.http import (
    CONNECT_TIMEOUT,
    DEFAULT_RETRY_AFTER,
    READ_TIMEOUT,
    SALESFORCE_LIMIT_RETRY_AFTER,
    CrmHttp,
    describe_message,
    parse_retry_after,
    subject_for,
    vendor_error_text,
)
from switchboard.envelope import UNSUPPORTED_TEXT, Attachment

URL = "https://crm.example.com/api/thing"


def _response(status: int, body: object, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (json.dumps(body) if not isinstance(body, str) else body).encode()
    response.headers["Content-Type"] = content_type
    return response


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
    ],
)
def test_vendor_error_shapes(body: object, expected: str) -> None:
    assert vendor_error_text(_response(400, body)) == expected


def test_vendor_error_plain_text_and_empty() -> None:
    assert vendor_error_text(_response(429, "Rate limit exceeded", "text/plain")) == "Rate limit exceeded"
    empty = _response(401, "")
    empty.reason = "Unauthorized"
    assert vendor_error_text(empty) == "Unauthorized"


def test_classification() -> None:
    http = CrmHttp("test")
    limited = http.classify("GET", URL, _response(429, "slow down", "text/plain"))
    assert isinstance(limited, CrmRateLimited) and limited.retry_after == DEFAULT_RETRY_AFTER
    sf_limit = http.classify(
        "GET", URL, _response(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    )
    assert (
        isinstance(sf_limit, CrmRateLimited) and sf_limit.retry_after == SALESFORCE_LIMIT_RETRY_AFTER and sf_limit.status == 403
    )
    assert type(http.classify("GET", URL, _response(503, "down", "text/html"))) is CrmRetryable
    assert type(http.classify("GET", URL, _response(409, {"error": "conflict"}))) is CrmRetryable
    assert type(http.classify("GET", URL, _response(401, {"error": "nope"}))) is CrmAuthError
    rejected = http.classify("POST", URL, _response(404, {"error": "RecordNotFound", "description": "Not found"}))
    assert type(rejected) is CrmRejected
    assert rejected.status == 404
    assert rejected.message == "test POST /api/thing: HTTP 404: RecordNotFound: Not found"


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
