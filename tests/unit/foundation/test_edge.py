"""The edge core with in-memory ports: refuse early, publish only verified events, answer after enqueueing."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fakes.ports import FakeSecrets, FakeSettings, RecordingPublisher, RefusingPublisher

from switchboard import apigw, edge
from switchboard.channels.line import LineAdapter
from switchboard.edge import EdgeDeps
from switchboard.ports import Publisher
from switchboard.secret_names import secret_name
from switchboard.settings import Account
from switchboard.web import WebhookResponse

from ._fakes import LINE_SECRET, LINE_TOKEN, PREFIX, line_body, line_event, signed_headers

ADAPTER = LineAdapter()
NOW = 1_800_000_000.123


def make_deps(publisher: Publisher | None = None, *, secrets: bool = True) -> EdgeDeps:
    settings = FakeSettings(
        accounts={
            "line-tokyo": Account(id="line-tokyo", channel="line", workstream="social"),
            "line-off": Account(id="line-off", channel="line", workstream="social", enabled=False),
            "fb-store": Account(id="fb-store", channel="facebook", workstream="social"),
        }
    )
    values = {}
    if secrets:
        for account_id in ("line-tokyo", "line-off"):
            values[secret_name(PREFIX, "account", account_id, "line")] = {
                "channel_secret": LINE_SECRET,
                "channel_access_token": LINE_TOKEN,
            }
        values[secret_name(PREFIX, "account", "fb-store", "facebook")] = {"app_secret": LINE_SECRET}
    return EdgeDeps(
        settings=settings,
        secrets=FakeSecrets(values),
        publisher=publisher or RecordingPublisher(),
        secrets_prefix=PREFIX,
        clock=lambda: NOW,
    )


def api_event(body: bytes, headers: dict[str, str], account_id: str = "line-tokyo", *, b64: bool = False) -> dict[str, Any]:
    return {
        "resource": "/webhooks/line/{account_id}",
        "path": f"/webhooks/line/{account_id}",
        "httpMethod": "POST",
        "headers": headers,
        "pathParameters": {"account_id": account_id},
        "queryStringParameters": None,
        "requestContext": {"requestId": "req-42"},
        "body": base64.b64encode(body).decode() if b64 else body.decode("utf-8"),
        "isBase64Encoded": b64,
    }


def post(
    deps: EdgeDeps, body: bytes, headers: dict[str, str], account_id: str = "line-tokyo", *, b64: bool = False
) -> WebhookResponse:
    return edge.receive(ADAPTER, apigw.request(api_event(body, headers, account_id, b64=b64)), deps)


def published(deps: EdgeDeps) -> list[Any]:
    publisher = deps.publisher
    assert isinstance(publisher, RecordingPublisher)
    return publisher.published


def error_of(answer: WebhookResponse) -> str:
    payload = json.loads(answer.body)
    assert set(payload) == {"error", "message"}, payload
    assert isinstance(payload["message"], str)
    assert payload["message"]
    return str(payload["error"])


def test_signed_events_are_published_then_200() -> None:
    deps = make_deps()
    body = line_body(line_event("hi", "U1", "01A"), line_event("again", "U1", "01B", timestamp=1_700_000_000_001))
    answer = post(deps, body, signed_headers(body))
    assert (answer.status, answer.body, answer.content_type) == (200, "{}", "application/json")
    envelopes = published(deps)
    assert [e.id for e in envelopes] == ["line:line-tokyo:01A", "line:line-tokyo:01B"]
    assert [e.text for e in envelopes] == ["hi", "again"]
    assert {e.received_at for e in envelopes} == {int(NOW * 1000)}
    assert {e.correlation_id for e in envelopes} == {"req-42"}
    assert deps.publisher.calls == 1  # type: ignore[attr-defined]


def test_verify_request_with_empty_events_is_200_and_publishes_nothing() -> None:
    deps = make_deps()
    body = b'{"destination":"U123","events":[]}'
    answer = post(deps, body, signed_headers(body))
    assert (answer.status, json.loads(answer.body)) == (200, {})
    assert published(deps) == []
    assert deps.publisher.calls == 0  # type: ignore[attr-defined]


def test_base64_encoded_body_is_verified_over_its_decoded_bytes() -> None:
    deps = make_deps()
    body = line_body(line_event("こんにちは \u00e9", "U1", "01A"))
    answer = post(deps, body, signed_headers(body), b64=True)
    assert answer.status == 200
    assert [e.text for e in published(deps)] == ["こんにちは \u00e9"]


def test_base64_flag_with_undecodable_body_is_400() -> None:
    event = api_event(b"x", {}, b64=False)
    event.update(body="%%%not base64%%%", isBase64Encoded=True)
    from switchboard.errors import BadRequest

    with pytest.raises(BadRequest):
        apigw.request(event)


def test_over_one_mebibyte_is_413_before_anything_is_read() -> None:
    deps = make_deps()
    event = line_event("x" * (1 << 20), "U1", "01A")
    body = line_body(event)
    assert len(body) > 1 << 20
    answer = post(deps, body, signed_headers(body))
    assert answer.status == 413
    assert error_of(answer) == "payload_too_large"
    assert published(deps) == []
    assert deps.secrets.reads == []  # type: ignore[attr-defined]


def test_exactly_one_mebibyte_is_not_413() -> None:
    # Twenty-one events under the per-event cap (edge.MAX_ENVELOPE_BYTES) that add up to the body cap exactly.
    deps = make_deps()
    events = [line_event("x" * 50_000, "U1", f"01A{i:02d}") for i in range(20)]
    skeleton = line_body(*events, line_event("", "U1", "01B"))
    body = line_body(*events, line_event("x" * ((1 << 20) - len(skeleton)), "U1", "01B"))
    assert len(body) == 1 << 20
    assert post(deps, body, signed_headers(body)).status == 200
    assert len(published(deps)) == 21


@pytest.mark.parametrize("account_id", ["nobody", "line-off", "fb-store", ""])
def test_unknown_disabled_or_other_channel_account_is_404(account_id: str) -> None:
    deps = make_deps()
    body = line_body(line_event("hi", "U1", "01A"))
    answer = post(deps, body, signed_headers(body), account_id)
    assert answer.status == 404
    assert error_of(answer) == "not_found"
    assert published(deps) == []
    assert deps.secrets.reads == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_signature"),
        ({"X-Line-Signature": "AAAA"}, "invalid_signature"),
        ({"X-Line-Signature": "WRONG"}, "invalid_signature"),
    ],
)
def test_missing_or_bad_signature_is_401_and_nothing_published(headers: dict[str, str], code: str) -> None:
    deps = make_deps()
    body = line_body(line_event("hi", "U1", "01A"))
    answer = post(deps, body, headers)
    assert answer.status == 401
    assert error_of(answer) == code
    assert published(deps) == []
    assert deps.publisher.calls == 0  # type: ignore[attr-defined]


def test_signature_of_other_secret_is_401() -> None:
    deps = make_deps()
    body = line_body(line_event("hi", "U1", "01A"))
    answer = post(deps, body, signed_headers(body, "not-the-channel-secret"))
    assert answer.status == 401
    assert published(deps) == []


def test_tampered_body_is_401() -> None:
    deps = make_deps()
    body = line_body(line_event("hi", "U1", "01A"))
    answer = post(deps, body.replace(b'"hi"', b'"ho"'), signed_headers(body))
    assert answer.status == 401
    assert published(deps) == []


@pytest.mark.parametrize("body", [b"not json at all", b'{"object":"page","entry":[]}', b"[]", b'{"events":"none"}'])
def test_signed_but_not_a_line_body_is_400(body: bytes) -> None:
    deps = make_deps()
    answer = post(deps, body, signed_headers(body))
    assert answer.status == 400
    assert error_of(answer) == "bad_request"
    assert published(deps) == []


def test_publisher_refusal_is_503_without_secrets() -> None:
    refusing = RefusingPublisher()
    deps = make_deps(refusing)
    body = line_body(line_event("hi", "U1", "01A"))
    answer = post(deps, body, signed_headers(body))
    assert answer.status == 503
    assert json.loads(answer.body)["error"] == "unavailable"
    assert refusing.calls == 1
    assert LINE_SECRET not in answer.body
    assert LINE_TOKEN not in answer.body


def test_account_without_stored_secret_is_refused_as_unsigned_not_503() -> None:
    # A missing secret is a set-up error: 503 would have LINE deliver again and again to no end.
    deps = make_deps(secrets=False)
    body = line_body(line_event("hi", "U1", "01A"))
    answer = post(deps, body, signed_headers(body))
    assert answer.status == 401
    assert error_of(answer) == "invalid_signature"
    assert published(deps) == []
    assert PREFIX not in answer.body  # the secret's name stays in the log, not in the answer


def test_apigw_response_shape() -> None:
    deps = make_deps()
    body = line_body(line_event("hi", "U1", "01A"))
    out = apigw.response(post(deps, body, {}))
    assert out["statusCode"] == 401
    assert out["headers"]["Content-Type"] == "application/json"
    assert out["isBase64Encoded"] is False
    assert json.loads(out["body"])["error"] == "missing_signature"


def test_header_names_are_case_insensitive() -> None:
    deps = make_deps()
    body = line_body(line_event("hi", "U1", "01A"))
    answer = post(deps, body, {"X-LINE-SIGNATURE": signed_headers(body)["X-Line-Signature"]})
    assert answer.status == 200
    assert len(published(deps)) == 1
