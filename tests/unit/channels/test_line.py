"""LINE adapter, table-driven over the LINE SDK's all-events fixture (channels/testdata/line), and its signatures."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from switchboard.channels.line import LineAdapter, sign
from switchboard.envelope import UNSUPPORTED_TEXT, Envelope
from switchboard.errors import BadRequest, Unauthorized
from switchboard.settings import Account
from switchboard.web import WebhookRequest

TESTDATA = Path(__file__).resolve().parents[3] / "src" / "switchboard" / "channels" / "testdata" / "line"
ALL_EVENTS = TESTDATA / "line_webhook_all_events_v3.json"
WITH_THINGS = TESTDATA / "line_webhook_all_events_with_things_pre2025-08.json"
# LINE's documented examples of a module channel's events (attached, detached, activated, deactivated,
# botSuspended, botResumed; one id made unique, as the docs reuse it), a notification message's
# delivery completion (as the SDKs' tests send it) and the protocols page's text message, in one body.
MODULE_EVENTS = TESTDATA / "line_webhook_module_channel_events.json"
U = "U206d25c2ea6bd87c17655609a1c37cb8"
GROUP = "Ca56f94637cc4347f90a25382909b24b9"
ROOM = "Ra8dbf4673c4c812cd491258042226c99"
GROUP2 = "C4af4980629..."
SECRET = "line-channel-secret-5a5a"
RECEIVED_AT = 1_800_000_000_000

adapter = LineAdapter()
ACCOUNT = Account(id="line-tokyo", channel="line", workstream="social")


def unique_ids(body: dict[str, Any]) -> dict[str, Any]:
    """The SDK fixture reuses one webhookEventId for every event; real deliveries do not."""
    body = copy.deepcopy(body)
    for index, event in enumerate(body["events"]):
        event["webhookEventId"] = f"01EVENT{index:04d}"
    return body


def request(body: bytes, headers: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        path="/webhooks/line/line-tokyo",
        path_params={"account_id": "line-tokyo"},
        query={},
        headers={k.lower(): v for k, v in (headers or {}).items()},
        body=body,
        request_id="req-1",
    )


def parse_body(body: dict[str, Any]) -> list[Envelope]:
    result = adapter.parse(request(json.dumps(body).encode()), ACCOUNT, received_at=RECEIVED_AT, correlation_id="corr-1")
    return result.envelopes


@pytest.fixture(scope="module")
def all_events() -> list[Envelope]:
    body = unique_ids(json.loads(ALL_EVENTS.read_text(encoding="utf-8")))
    envelopes = parse_body(body)
    assert len(envelopes) == len(body["events"]) == 28
    return envelopes


@dataclass(frozen=True)
class Expected:
    event: str
    kind: str
    customer: str
    text: str | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # a subset the envelope's data must hold


POSTBACK = "action=buyItem&itemId=123123&color=red"
EXPECTED: list[Expected] = [
    Expected("message", "text", U, "Hello, world", data={"message_id": "325708", "source_type": "user"}),
    Expected("message", "image", ROOM, attachments=({"type": "image", "url": "https://example.com", "content_id": None},)),
    Expected("message", "video", U, attachments=({"type": "video", "url": "https://example.com"},), data={"duration": 60000}),
    Expected("message", "audio", U, attachments=({"type": "audio", "url": "https://example.com"},), data={"duration": 60000}),
    Expected(
        "message",
        "location",
        U,
        "my location, Tokyo",
        data={
            "location": {
                "title": "my location",
                "address": "Tokyo",
                "latitude": 35.65910807942215,
                "longitude": 139.70372892916203,
            }
        },
    ),
    Expected("message", "sticker", U, "Just sticker"),
    Expected("follow", "event", U, data={"follow": {"isUnblocked": True}}),
    Expected("unfollow", "event", U),
    Expected("join", "event", GROUP, data={"source_type": "group"}),
    Expected("leave", "event", GROUP),
    Expected("postback", "postback", U, POSTBACK, data={"params": {"datetime": "2017-12-25T01:00"}}),
    Expected("beacon", "event", U, data={"beacon": {"hwid": "d41d8cd98f", "type": "enter"}}),
    Expected("beacon", "event", U, data={"beacon": {"hwid": "d41d8cd98f", "type": "enter", "dm": "1234567890abcdef"}}),
    Expected("accountLink", "event", U, data={"link": {"result": "ok", "nonce": "Vb771wDYtXuammLszK6h9A"}}),
    Expected("message", "text", GROUP, "Hello, world", data={"speaker": U, "source_type": "group"}),
    Expected("message", "text", ROOM, "Hello, world", data={"speaker": U, "source_type": "room"}),
    Expected("postback", "postback", U, POSTBACK, data={"params": {"date": "2013-04-01"}}),
    Expected("postback", "postback", U, POSTBACK, data={"params": {"time": "10:00"}}),
    Expected("postback", "postback", U, POSTBACK, data={"params": {"datetime": "2013-04-01T10:00"}}),
    Expected("memberJoined", "event", GROUP2),
    Expected("memberLeft", "event", GROUP2),
    Expected(
        "message",
        "file",
        U,
        attachments=({"type": "file", "content_id": "325708", "name": "file.txt", "size": 2138, "url": None},),
    ),
    Expected("unsend", "event", GROUP, data={"unsend": {"messageId": "325708"}, "speaker": U}),
    Expected("videoPlayComplete", "event", U, data={"videoPlayComplete": {"trackingId": "track_id"}}),
    Expected(
        "message",
        "image",
        U,
        attachments=({"type": "image", "content_id": "354718705033693861", "url": None},),
        data={"imageSet": {"id": "E005D41A7288F41B655", "index": 2, "total": 2}},
    ),
    Expected("message", "text", U, "Hello, world", data={"redelivery": True}),
    Expected("messageEdited", "event", U, "Hello, edited world"),
    Expected("undefined", "event", U, data={"redelivery": True}),
]


@pytest.mark.parametrize(
    ("index", "expected"), list(enumerate(EXPECTED)), ids=[f"{i}-{e.event}-{e.kind}" for i, e in enumerate(EXPECTED)]
)
def test_every_event_of_the_sdk_fixture(all_events: list[Envelope], index: int, expected: Expected) -> None:
    envelope = all_events[index]
    assert envelope.id == f"line:line-tokyo:01EVENT{index:04d}"
    assert envelope.channel == "line"
    assert envelope.account_id == "line-tokyo"
    assert envelope.data["event"] == expected.event
    assert envelope.kind == expected.kind
    assert envelope.customer.id == expected.customer
    assert envelope.text == expected.text
    assert len(envelope.attachments) == len(expected.attachments)
    for attachment, wanted in zip(envelope.attachments, expected.attachments, strict=True):
        for key, value in wanted.items():
            assert getattr(attachment, key) == value, (key, attachment)
    for key, value in expected.data.items():
        assert envelope.data.get(key) == value, (key, envelope.data)
    assert envelope.received_at == RECEIVED_AT
    assert envelope.correlation_id == "corr-1"


def test_sent_at_is_the_event_timestamp(all_events: list[Envelope]) -> None:
    assert all_events[0].sent_at == 1462629479859
    assert all_events[24].sent_at == 1627356924722
    assert all_events[20].sent_at == 1462629479960


def test_no_redelivery_flag_on_first_deliveries(all_events: list[Envelope]) -> None:
    assert [i for i, e in enumerate(all_events) if e.data.get("redelivery")] == [25, 27]


def test_envelopes_survive_the_queue(all_events: list[Envelope]) -> None:
    for envelope in all_events:
        assert Envelope.from_json(envelope.to_json()) == envelope


def test_things_and_unknown_types_are_events_and_do_not_break_the_batch() -> None:
    body = unique_ids(json.loads(WITH_THINGS.read_text(encoding="utf-8")))
    body["events"].append({**body["events"][0], "type": "hologram", "webhookEventId": "01HOLO", "hologram": {"x": 1}})
    body["events"].append(
        {
            "type": "message",
            "webhookEventId": "01LAST",
            "timestamp": 1,
            "source": {"type": "user", "userId": "Ulast"},
            "deliveryContext": {"isRedelivery": False},
            "mode": "active",
            "message": {"id": "9", "type": "text", "text": "after the unknown ones"},
        }
    )
    envelopes = parse_body(body)
    assert len(envelopes) == len(body["events"])
    things = [e for e in envelopes if e.data["event"] == "things"]
    assert len(things) == 3
    assert {e.kind for e in things} == {"event"}
    assert [e.data["things"]["type"] for e in things] == ["link", "unlink", "scenarioResult"]
    hologram = next(e for e in envelopes if e.data["event"] == "hologram")
    assert hologram.kind == "event"
    assert envelopes[-1].kind == "text"
    assert envelopes[-1].text == "after the unknown ones"
    assert envelopes[-1].customer.id == "Ulast"


def test_account_events_and_receipts_make_no_envelope() -> None:
    body = json.loads(MODULE_EVENTS.read_text(encoding="utf-8"))
    result = adapter.parse(request(json.dumps(body).encode()), ACCOUNT, received_at=RECEIVED_AT, correlation_id="c")
    # Only the customer's message is recorded; nothing is stored under a made-up customer.
    assert [(e.id, e.kind, e.text, e.customer.id) for e in result.envelopes] == [
        ("line:line-tokyo:01HC7D3ADBCXZMD5GZMVTYCPAJ", "text", "sad", "U4df6a2535fcae2dc9277c39aec86ca66")
    ]
    assert result.skipped == [
        "events[0]: account event module",
        "events[1]: account event module",
        "events[2]: account event activated",
        "events[3]: account event deactivated",
        "events[4]: account event botSuspended",
        "events[5]: account event botResumed",
        "events[6]: delivery receipt",
    ]


@pytest.mark.parametrize(
    "source",
    [
        None,
        {},
        "U206d25c2ea6bd87c17655609a1c37cb8",
        {"type": "user"},
        {"type": "user", "userId": ""},
        {"type": "user", "userId": None},
        {"type": "group"},
        {"type": "room", "roomId": ""},
        {"type": "hologram", "hologramId": "H1"},
    ],
    ids=[
        "missing",
        "empty",
        "not-an-object",
        "user-without-id",
        "empty-user",
        "null-user",
        "group-without-id",
        "empty-room",
        "unknown-type",
    ],
)
def test_an_event_whose_source_names_no_customer_makes_no_envelope(source: Any) -> None:
    event: dict[str, Any] = {"type": "follow", "webhookEventId": "01NOSOURCE", "timestamp": 5, "mode": "active"}
    if source is not None:
        event["source"] = source
    kept = {"type": "follow", "webhookEventId": "01KEPT", "timestamp": 6, "source": {"type": "user", "userId": U}}
    body = {"destination": "U123", "events": [event, kept]}
    result = adapter.parse(request(json.dumps(body).encode()), ACCOUNT, received_at=RECEIVED_AT, correlation_id="c")
    assert [e.id for e in result.envelopes] == ["line:line-tokyo:01KEPT"]
    assert result.skipped == ["events[0]: account event follow (its source names no user, group or room)"]
    assert "unknown" not in {e.customer.id for e in result.envelopes}


def test_account_events_are_skipped_by_type_even_with_a_user_source() -> None:
    # Chat-control switches name the chat's user but are our own API calls taking effect, not the customer.
    events = [
        {"type": kind, "webhookEventId": f"01{kind}", "timestamp": 5, "source": {"type": "user", "userId": U}}
        for kind in ("activated", "deactivated", "module", "botSuspended", "botResumed", "delivery")
    ]
    body = {"destination": "U123", "events": events}
    result = adapter.parse(request(json.dumps(body).encode()), ACCOUNT, received_at=RECEIVED_AT, correlation_id="c")
    assert result.envelopes == []
    assert [r.split(": ", 1)[1] for r in result.skipped] == [
        "account event activated",
        "account event deactivated",
        "account event module",
        "account event botSuspended",
        "account event botResumed",
        "delivery receipt",
    ]


def test_unknown_message_type_is_unsupported() -> None:
    body = {
        "destination": "U123",
        "events": [
            {
                "type": "message",
                "webhookEventId": "01X",
                "timestamp": 5,
                "source": {"type": "user", "userId": U},
                "message": {"id": "1", "type": "hologram"},
            }
        ],
    }
    (envelope,) = parse_body(body)
    assert envelope.kind == "unsupported"
    assert envelope.text == UNSUPPORTED_TEXT
    assert envelope.data["message_type"] == "hologram"


def test_non_object_events_are_skipped_not_fatal() -> None:
    body = {
        "destination": "U123",
        "events": [
            "junk",
            {"no": "type"},
            {"type": "follow", "webhookEventId": "01F", "timestamp": 5, "source": {"type": "user", "userId": U}},
        ],
    }
    result = adapter.parse(request(json.dumps(body).encode()), ACCOUNT, received_at=RECEIVED_AT, correlation_id="c")
    assert [e.kind for e in result.envelopes] == ["event"]
    assert len(result.skipped) == 2


def test_event_without_id_gets_a_stable_one() -> None:
    event = {"type": "follow", "timestamp": 5, "source": {"type": "user", "userId": U}}
    first = parse_body({"events": [event]})[0]
    second = parse_body({"events": [event]})[0]
    assert first.id == second.id
    assert first.id.startswith("line:line-tokyo:sha256-")


def test_empty_events_give_no_envelopes() -> None:
    assert parse_body({"destination": "U123", "events": []}) == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b"[]", b'{"destination": "U123"}', b'{"events": {}}', b'"events"', b'{"object": "page", "entry": []}'],
)
def test_not_a_line_body_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        adapter.parse(request(body), ACCOUNT, received_at=RECEIVED_AT, correlation_id="c")


# -- signatures (protocols.md section 6) -----------------------------------------------------------
@pytest.mark.parametrize(
    ("secret", "body", "signature"),
    [
        ("channel_secret", b"bodybodybodybody", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="),
        ("channel_secret", b'{"destination":"U123","events":[]}', "7Wmqxy9fuP0eEr6J3Xd/bmI7VJEJh7k7mN77kq47Fvo="),
    ],
)
def test_signature_vectors(secret: str, body: bytes, signature: str) -> None:
    assert sign(secret, body) == signature
    adapter.verify(request(body, {"X-Line-Signature": signature}), ACCOUNT, {"channel_secret": secret})
    adapter.verify(request(body, {"x-line-signature": signature}), ACCOUNT, {"channel_secret": secret})


def _body() -> bytes:
    return json.dumps(unique_ids(json.loads(ALL_EVENTS.read_text(encoding="utf-8")))).encode()


def test_valid_signature_over_raw_bytes() -> None:
    body = _body()
    adapter.verify(request(body, {"X-Line-Signature": sign(SECRET, body)}), ACCOUNT, {"channel_secret": SECRET})


def _tampered(body: bytes) -> bytes:
    return body.replace(b"Hello, world", b"Hello, World", 1)


def _reserialised(body: bytes) -> bytes:
    return json.dumps(json.loads(body), indent=1).encode()


@pytest.mark.parametrize(
    ("headers", "body_of", "secret", "code"),
    [
        (lambda b: {"X-Line-Signature": sign(SECRET, b)}, _tampered, SECRET, "invalid_signature"),
        (lambda b: {"X-Line-Signature": sign(SECRET, b)}, _reserialised, SECRET, "invalid_signature"),
        (lambda b: {"X-Line-Signature": sign("another-secret", b)}, lambda b: b, SECRET, "invalid_signature"),
        (lambda b: {"X-Line-Signature": sign(SECRET, b)}, lambda b: b, "another-secret", "invalid_signature"),
        (lambda b: {"X-Line-Signature": "not-base64!"}, lambda b: b, SECRET, "invalid_signature"),
        (lambda b: {"X-Line-Signature": base64.b64encode(b"\0" * 32).decode()}, lambda b: b, SECRET, "invalid_signature"),
        (lambda b: {}, lambda b: b, SECRET, "missing_signature"),
        (lambda b: {"X-Line-Signature": ""}, lambda b: b, SECRET, "missing_signature"),
        (lambda b: {"X-Hub-Signature-256": "sha256=" + "0" * 64}, lambda b: b, SECRET, "missing_signature"),
    ],
    ids=[
        "tampered",
        "re-serialised",
        "signed-with-other",
        "verified-with-other",
        "junk",
        "zero-digest",
        "missing",
        "empty",
        "other-header",
    ],
)
def test_bad_or_missing_signature_is_unauthorized(headers: Any, body_of: Any, secret: str, code: str) -> None:
    original = _body()
    signed_headers = headers(original)
    with pytest.raises(Unauthorized) as refused:
        adapter.verify(request(body_of(original), signed_headers), ACCOUNT, {"channel_secret": secret})
    assert refused.value.status == 401
    assert refused.value.code == code
    response = refused.value.response()
    assert response.status == 401
    payload = json.loads(response.body)
    assert set(payload) == {"error", "message"}
    assert payload["error"] == code
    assert SECRET not in response.body
    assert "another-secret" not in response.body
