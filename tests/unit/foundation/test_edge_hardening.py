"""The edge refuses what it cannot verify, what it cannot store, and ids no configuration could hold.

- A missing or blank secret refuses as a wrong signature does (401; 403 for Facebook's GET
  handshake), never 503 (a redelivery loop) and never accepts; Secrets Manager being down stays 503.
- A path id that does not match the configuration's id pattern is 404 before any look-up, and no
  log line or error message quotes more than 64 characters of it.
- An event whose envelope would not fit where route stores it refuses the whole request with 413.
- Refusing writes one WARNING line under 1 KB, without the body or the headers.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boto3
import pytest
from fakes.ports import FakeSettings, RecordingPublisher

from infra.local.template import plan
from switchboard import apigw, edge, lambda_entry
from switchboard.aws import clients
from switchboard.aws.publisher import SqsPublisher
from switchboard.aws.settings_store import DynamoSettings
from switchboard.channels.base import ChannelAdapter, ParseResult
from switchboard.channels.facebook import FacebookAdapter, build_message, sign_sha256
from switchboard.channels.gbm import GbmAdapter
from switchboard.channels.gbm import sign as gbm_sign
from switchboard.channels.line import LineAdapter, sign
from switchboard.edge import MAX_ENVELOPE_BYTES, EdgeDeps
from switchboard.envelope import Customer, Envelope
from switchboard.errors import SecretMissing, StoreUnavailable
from switchboard.observability import logger
from switchboard.secret_names import secret_name
from switchboard.settings import Account
from switchboard.web import WebhookRequest, WebhookResponse

from ._fakes import LINE_SECRET, LINE_TOKEN, PREFIX, line_body, line_event, signed_headers
from .conftest import ROOT

NOW = 1_800_000_000.0
PAGE_ID = "104123456789012"


CountingSettings = FakeSettings  # it records every id asked for in .lookups


@dataclass
class Secrets:
    """A SecretReader keeping the port's contract: SecretMissing when absent, or a set failure."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: Exception | None = None
    reads: list[str] = field(default_factory=list)

    def get(self, name: str) -> Mapping[str, Any]:
        self.reads.append(name)
        if self.failure is not None:
            raise self.failure
        if name not in self.values:
            raise SecretMissing(f"secret {name} is not stored (ResourceNotFoundException)")
        return self.values[name]


ACCOUNTS = {
    "line-tokyo": Account(id="line-tokyo", channel="line", workstream="social"),
    "fb-store": Account(id="fb-store", channel="facebook", workstream="social", options={"page_id": PAGE_ID}),
    "gbm-shop": Account(
        id="gbm-shop", channel="gbm", workstream="social", options={"brand_id": "BRAND_ID", "agent_id": "AGENT_ID"}
    ),
}
FULL_SECRETS: dict[str, dict[str, Any]] = {
    "line-tokyo": {"channel_secret": LINE_SECRET, "channel_access_token": LINE_TOKEN},
    "fb-store": {"app_secret": "fb-app-secret-77", "verify_token": "fb-verify-88", "page_access_token": "fb-page-99"},
    "gbm-shop": {"client_token": "GBMCLIENTTOKEN42"},
}


def deps_with(secrets: Secrets | None = None, settings: Any = None, publisher: Any = None) -> EdgeDeps:
    return EdgeDeps(
        settings=settings if settings is not None else CountingSettings(accounts=dict(ACCOUNTS)),
        secrets=secrets if secrets is not None else Secrets(),
        publisher=publisher if publisher is not None else RecordingPublisher(),
        secrets_prefix=PREFIX,
        clock=lambda: NOW,
    )


def stored(account_id: str, values: dict[str, Any]) -> Secrets:
    account = ACCOUNTS[account_id]
    return Secrets({secret_name(PREFIX, "account", account.id, account.channel): values})


def event(
    body: bytes, headers: dict[str, str], account_id: str, *, channel: str = "line", method: str = "POST", query: Any = None
) -> dict[str, Any]:
    return {
        "httpMethod": method,
        "path": f"/webhooks/{channel}/{account_id}",
        "pathParameters": {"account_id": account_id},
        "headers": headers,
        "queryStringParameters": query,
        "requestContext": {"requestId": "req-7"},
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }


class LambdaContext:
    function_name = "webhook_line"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:webhook_line"
    aws_request_id = "req-lambda-1"


def call(adapter: ChannelAdapter, deps: EdgeDeps, raw_event: dict[str, Any]) -> WebhookResponse:
    return edge.receive(adapter, apigw.request(raw_event), deps)


def error_code(answer: WebhookResponse) -> str:
    payload = json.loads(answer.body)
    assert set(payload) == {"error", "message"}
    return str(payload["error"])


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The JSON records the edge logged since the test started (Powertools writes one per line)."""
    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)

    def read() -> list[str]:
        return [line for line in stream.getvalue().splitlines() if line.strip()]

    return read


def assert_one_refusal_line(lines: list[str], *forbidden: str) -> dict[str, Any]:
    """Interface section 2: one line, under 1 KB, never at ERROR, quoting neither body nor headers."""
    assert len(lines) == 1, lines
    assert len(lines[0].encode("utf-8")) < 1024, len(lines[0])
    record: dict[str, Any] = json.loads(lines[0])
    assert record["level"] == "WARNING"
    for text in forbidden:
        assert text not in lines[0]
    return record


# -- item 1: a missing or blank secret refuses, never accepts, never loops ----------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"channel_secret": "", "channel_access_token": LINE_TOKEN},
        {"channel_secret": "   ", "channel_access_token": LINE_TOKEN},
        {"channel_access_token": LINE_TOKEN},
        {"channel_secret": None, "channel_access_token": LINE_TOKEN},
        {"channel_secret": 12345, "channel_access_token": LINE_TOKEN},
        {"channel_secret": LINE_SECRET, "channel_access_token": ""},  # every secret the channel needs, not just the key
    ],
    ids=["empty", "blank", "absent", "null", "not-text", "token-empty"],
)
def test_line_with_blank_or_missing_secret_is_401_even_when_signed_with_it(values: dict[str, Any], log_lines: Any) -> None:
    deps = deps_with(stored("line-tokyo", values))
    body = line_body(line_event("hi", "U1", "01A"))
    key = values.get("channel_secret")
    signature = sign(key if isinstance(key, str) else "", body)  # what anyone can compute for an empty key
    answer = call(LineAdapter(), deps, event(body, {"X-Line-Signature": signature}, "line-tokyo"))
    assert (answer.status, error_code(answer)) == (401, "invalid_signature")
    assert deps.publisher.published == []  # type: ignore[attr-defined]
    record = assert_one_refusal_line(log_lines(), "hi", signature, LINE_TOKEN, LINE_SECRET)
    missing = next(
        k for k in ("channel_secret", "channel_access_token") if not isinstance(values.get(k), str) or not values[k].strip()
    )
    assert (record["account_id"], record["missing_secret"], record["status"]) == ("line-tokyo", missing, 401)


def test_missing_secret_in_secrets_manager_is_401_with_its_name_logged_not_answered(log_lines: Any) -> None:
    deps = deps_with(Secrets())  # nothing stored
    body = line_body(line_event("hi", "U1", "01A"))
    answer = call(LineAdapter(), deps, event(body, signed_headers(body), "line-tokyo"))
    assert (answer.status, error_code(answer)) == (401, "invalid_signature")
    assert PREFIX not in answer.body
    record = assert_one_refusal_line(log_lines(), "hi")
    assert record["missing_secret"] == secret_name(PREFIX, "account", "line-tokyo", "line")


def test_secrets_manager_unavailable_stays_503() -> None:
    deps = deps_with(Secrets(failure=StoreUnavailable("secret x could not be read: ThrottlingException")))
    body = line_body(line_event("hi", "U1", "01A"))
    answer = call(LineAdapter(), deps, event(body, signed_headers(body), "line-tokyo"))
    assert (answer.status, json.loads(answer.body)["error"]) == (503, "unavailable")
    assert deps.publisher.published == []  # type: ignore[attr-defined]


def test_facebook_get_handshake_with_blank_verify_token_is_403_not_the_challenge() -> None:
    values = {**FULL_SECRETS["fb-store"], "verify_token": ""}
    deps = deps_with(stored("fb-store", values))
    query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1158201444"}
    answer = call(FacebookAdapter(), deps, event(b"", {}, "fb-store", channel="facebook", method="GET", query=query))
    assert (answer.status, error_code(answer)) == (403, "forbidden")
    assert "1158201444" not in answer.body


def test_facebook_post_with_blank_app_secret_is_401() -> None:
    values = {**FULL_SECRETS["fb-store"], "app_secret": ""}
    deps = deps_with(stored("fb-store", values))
    body = build_message(PAGE_ID, "6789012345678901", "hello")
    headers = {"X-Hub-Signature-256": sign_sha256("", body)}
    answer = call(FacebookAdapter(), deps, event(body, headers, "fb-store", channel="facebook"))
    assert (answer.status, error_code(answer)) == (401, "invalid_signature")
    assert deps.publisher.published == []  # type: ignore[attr-defined]


def test_gbm_verification_with_blank_client_token_is_401_not_the_secret() -> None:
    deps = deps_with(stored("gbm-shop", {"client_token": ""}))
    body = json.dumps({"clientToken": "", "secret": "echo-me-7"}).encode()
    answer = call(GbmAdapter(), deps, event(body, {"X-Goog-Signature": gbm_sign("", body)}, "gbm-shop", channel="gbm"))
    assert (answer.status, error_code(answer)) == (401, "invalid_signature")
    assert "echo-me-7" not in answer.body


def test_gbm_partner_key_is_needed_only_where_it_signs() -> None:
    account = Account(
        id="gbm-shop",
        channel="gbm",
        workstream="social",
        options={"brand_id": "BRAND_ID", "agent_id": "AGENT_ID", "signing_key": "partner_key"},
    )
    deps = deps_with(stored("gbm-shop", {"client_token": "GBMCLIENTTOKEN42"}), CountingSettings(accounts={"gbm-shop": account}))
    body = b'{"message":{}}'
    answer = call(GbmAdapter(), deps, event(body, {"X-Goog-Signature": gbm_sign("", body)}, "gbm-shop", channel="gbm"))
    assert (answer.status, error_code(answer)) == (401, "invalid_signature")


class AcceptsAnything(ChannelAdapter):
    """An adapter whose verify() forgot to check: the edge's own check must still refuse a blank secret."""

    channel = "line"
    required_secrets: ClassVar[tuple[str, ...]] = ("channel_secret",)
    fail_with: ClassVar[Exception | None] = None

    def verify(self, request: WebhookRequest, account: Account, secrets: Mapping[str, str]) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def parse(self, request: WebhookRequest, account: Account, *, received_at: int, correlation_id: str) -> ParseResult:
        envelope = Envelope(
            id="line:line-tokyo:1",
            channel="line",
            account_id=account.id,
            customer=Customer(id="U1"),
            kind="text",
            sent_at=received_at,
            received_at=received_at,
            correlation_id=correlation_id,
            text="hi",
        )
        return ParseResult([envelope])


def test_the_edge_refuses_a_blank_secret_whatever_the_adapter_verifies() -> None:
    deps = deps_with(stored("line-tokyo", {"channel_secret": " "}))
    answer = call(AcceptsAnything(), deps, event(b"{}", {}, "line-tokyo"))
    assert (answer.status, error_code(answer)) == (401, "invalid_signature")
    assert deps.publisher.published == []  # type: ignore[attr-defined]
    accepted = deps_with(stored("line-tokyo", {"channel_secret": "set"}))
    assert call(AcceptsAnything(), accepted, event(b"{}", {}, "line-tokyo")).status == 200  # the test's adapter does accept


def test_an_adapter_bug_raising_keyerror_is_500_not_a_retryable_503(monkeypatch: pytest.MonkeyPatch, log_lines: Any) -> None:
    monkeypatch.setattr(AcceptsAnything, "fail_with", KeyError("some-key-the-adapter-expected"))
    deps = deps_with(stored("line-tokyo", {"channel_secret": "set"}))
    # edge.receive lets a bug escape; the one entry wrapper every function has answers it.
    with pytest.raises(KeyError):
        call(AcceptsAnything(), deps, event(b"{}", {}, "line-tokyo"))
    answer = lambda_entry.http(lambda request: edge.receive(AcceptsAnything(), request, deps))(
        event(b"{}", {}, "line-tokyo"), LambdaContext()
    )
    assert (answer["statusCode"], json.loads(answer["body"])["error"]) == (500, "internal_error")
    lines = log_lines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert (record["level"], record["error"]) == ("ERROR", "KeyError")
    assert "some-key-the-adapter-expected" not in lines[0]  # an exception's text may quote what it was handed
    assert deps.publisher.published == []  # type: ignore[attr-defined]


# -- item 7 and 12: ids no configuration could hold are 404 before any look-up ------------------------------


@pytest.mark.parametrize(
    "account_id",
    ["x" * 8000, "a" * 65, "-starts-with-dash", "has space", "../../etc", "tokyo\n", "ラインの", "\ud800lone", "a/b"],
    ids=["8000-chars", "65-chars", "dash", "space", "dots", "newline", "non-ascii", "surrogate", "slash"],
)
def test_an_id_no_configuration_allows_is_404_before_any_lookup(account_id: str, log_lines: Any) -> None:
    settings = CountingSettings(accounts={**ACCOUNTS, account_id: Account(id=account_id, channel="line", workstream="s")})
    secrets = Secrets({secret_name(PREFIX, "account", account_id, "line"): FULL_SECRETS["line-tokyo"]})
    deps = deps_with(secrets, settings)
    body = line_body(line_event("hi", "U1", "01A"))
    request = WebhookRequest("POST", "/webhooks/line/x", {"account_id": account_id}, {}, signed_headers(body), body, "req-7")
    answer = edge.receive(LineAdapter(), request, deps)
    assert (answer.status, error_code(answer)) == (404, "not_found")
    assert settings.lookups == []
    assert secrets.reads == []
    assert deps.publisher.published == []  # type: ignore[attr-defined]
    assert len(answer.body) < 300
    record = assert_one_refusal_line(log_lines(), "hi", signed_headers(body)["X-Line-Signature"])
    assert len(record["account_id"]) <= 64 + 3
    assert record["account_id"].isascii()


def test_a_valid_id_of_64_characters_is_looked_up() -> None:
    settings = CountingSettings()
    deps = deps_with(Secrets(), settings)
    body = line_body(line_event("hi", "U1", "01A"))
    answer = call(LineAdapter(), deps, event(body, signed_headers(body), "a" * 64))
    assert answer.status == 404
    assert settings.lookups == ["a" * 64]


def test_shown_id_is_ascii_and_bounded_whatever_it_is_given() -> None:
    assert edge.shown_id("line-tokyo") == "line-tokyo"
    assert edge.shown_id("a" * 64) == "a" * 64
    assert edge.shown_id("a" * 8000) == "a" * 64 + "..."
    for nasty in ("\U0001f600" * 500, "\x00\n\r" * 500, "\ud800" * 500, '"\\' * 500):
        shown = edge.shown_id(nasty)
        assert shown.isascii()
        assert len(shown) <= 67


def test_three_thousand_char_account_id_is_404_with_no_dynamodb_call(aws: None) -> None:
    """Item 12: DynamoDB refuses a key over its size limit with a ValidationException, which the
    settings store reports as StoreUnavailable (503, a redelivery loop); the id never gets there."""
    tables = plan(ROOT / "template.yaml", stack="unit", endpoint="http://127.0.0.1:1", visibility_timeout=2).tables
    create = tables["SettingsTable"]["create"]
    boto3.client("dynamodb").create_table(**create)
    calls: list[str] = []
    clients.client("dynamodb").meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    queue_url = boto3.client("sqs").create_queue(QueueName="edge-12.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    deps = EdgeDeps(
        settings=DynamoSettings(create["TableName"]),
        secrets=Secrets(),
        publisher=SqsPublisher(queue_url),
        secrets_prefix=PREFIX,
        clock=lambda: NOW,
    )
    body = line_body(line_event("hi", "U1", "01A"))
    answer = call(LineAdapter(), deps, event(body, signed_headers(body), "L" * 3000))
    assert (answer.status, error_code(answer)) == (404, "not_found")
    assert calls == []
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    # The same store does read a well-formed id (so the hook above would have seen a call).
    assert call(LineAdapter(), deps, event(body, signed_headers(body), "line-unknown")).status == 404
    assert calls == ["GetItem"]


# -- item 10: an event too big to store refuses the whole request ---------------------------------------------


def test_an_event_over_the_envelope_cap_refuses_the_whole_request_with_413(log_lines: Any) -> None:
    deps = deps_with(stored("line-tokyo", FULL_SECRETS["line-tokyo"]))
    body = line_body(line_event("small", "U1", "01A"), line_event("x" * 900_000, "U2", "01B"), line_event("after", "U3", "01C"))
    assert len(body) < edge.MAX_BODY_BYTES  # the body cap alone lets it through
    answer = call(LineAdapter(), deps, event(body, signed_headers(body), "line-tokyo"))
    assert (answer.status, error_code(answer)) == (413, "payload_too_large")
    assert deps.publisher.calls == 0  # type: ignore[attr-defined]
    assert deps.publisher.published == []  # type: ignore[attr-defined]
    assert_one_refusal_line(log_lines(), "xxxxxxxxxx", "small")


@pytest.mark.parametrize(("length", "status"), [(256, 200), (257, 400), (3000, 400)])
def test_a_customer_id_past_what_a_dynamodb_key_holds_refuses_the_request(length: int, status: int) -> None:
    deps = deps_with(stored("line-tokyo", FULL_SECRETS["line-tokyo"]))
    body = line_body(line_event("hi", "U1", "01A"), line_event("hi", "U" + "x" * (length - 1), "01B"))
    answer = call(LineAdapter(), deps, event(body, signed_headers(body), "line-tokyo"))
    assert answer.status == status
    assert len(deps.publisher.published) == (2 if status == 200 else 0)  # type: ignore[attr-defined]


def test_the_envelope_cap_counts_utf8_bytes_and_admits_exactly_the_cap() -> None:
    deps = deps_with(stored("line-tokyo", FULL_SECRETS["line-tokyo"]))
    probe = LineAdapter().parse(
        WebhookRequest("POST", "/", {}, {}, {}, line_body(line_event("", "U1", "01A")), ""),
        ACCOUNTS["line-tokyo"],
        received_at=int(NOW * 1000),
        correlation_id="req-7",
    )
    overhead = len(probe.envelopes[0].to_json().encode())
    room = MAX_ENVELOPE_BYTES - overhead
    text = "あ" * (room // 3) + "x" * (room % 3)  # three bytes each in UTF-8, one character each
    fits = line_body(line_event(text, "U1", "01A"))
    answer = call(LineAdapter(), deps, event(fits, signed_headers(fits), "line-tokyo"))
    assert answer.status == 200
    assert len(deps.publisher.published[0].to_json().encode()) == MAX_ENVELOPE_BYTES  # type: ignore[attr-defined]
    over = line_body(line_event(text + "x", "U1", "01B"))
    assert call(LineAdapter(), deps, event(over, signed_headers(over), "line-tokyo")).status == 413


# -- apigw: an event's odd shapes are a 400 or ignored, never a crash -----------------------------------------


@pytest.mark.parametrize("body", [12345, {"events": []}, ["a"], 1.5, True])
def test_a_body_that_is_neither_text_nor_bytes_is_400(body: Any) -> None:
    raw = event(b"", {}, "line-tokyo")
    raw["body"] = body
    out = apigw.serve(raw, lambda request: WebhookResponse.json(200, {}))
    assert out["statusCode"] == 400
    assert json.loads(out["body"])["error"] == "bad_request"


def test_a_bytes_body_is_taken_as_is() -> None:
    raw = event(b"", {}, "line-tokyo")
    raw["body"] = b'{"events":[]}'
    assert apigw.request(raw).body == b'{"events":[]}'
    raw.update(body=base64.b64encode(b"\xff\x00"), isBase64Encoded=True)
    assert apigw.request(raw).body == b"\xff\x00"


def test_a_body_with_a_lone_surrogate_is_400() -> None:
    raw = event(b"", {}, "line-tokyo")
    raw["body"] = '{"text":"\ud800"}'
    assert apigw.serve(raw, lambda request: WebhookResponse.json(200, {}))["statusCode"] == 400


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("headers", ["not", "a", "mapping"]),
        ("headers", "X-Line-Signature: abc"),
        ("headers", {"X-Line-Signature": None, "X-Other": {"nested": 1}, 5: "five", "X-Bad": "\ud800"}),
        ("queryStringParameters", [("hub.mode", "subscribe")]),
        ("queryStringParameters", {"hub.mode": ["subscribe"], "hub.verify_token": None}),
        ("pathParameters", {"account_id": None}),
        ("pathParameters", {"account_id": ["line-tokyo"]}),
        ("pathParameters", "line-tokyo"),
        ("requestContext", "not a mapping"),
        ("httpMethod", None),
    ],
)
def test_absurd_headers_query_or_path_do_not_crash_the_edge(field_name: str, value: Any) -> None:
    deps = deps_with(stored("line-tokyo", FULL_SECRETS["line-tokyo"]))
    body = line_body(line_event("hi", "U1", "01A"))
    raw = event(body, {}, "line-tokyo")
    raw[field_name] = value
    out = apigw.serve(raw, lambda request: edge.receive(LineAdapter(), request, deps))
    assert out["statusCode"] in (400, 401, 403, 404)
    assert deps.publisher.published == []  # type: ignore[attr-defined]


def test_header_values_are_text_the_adapters_can_encode() -> None:
    raw = event(b"", {}, "line-tokyo")
    raw["headers"] = {"X-Line-Signature": "\ud800abc", "X-Num": 7, "X-None": None, "X-Empty": ""}
    headers = apigw.request(raw).headers
    assert headers == {"x-line-signature": "?abc", "x-num": "7", "x-empty": ""}
    for value in headers.values():
        value.encode("utf-8")
