"""WhatsApp Cloud API adapter, table-driven over the recorded payloads in channels/testdata/whatsapp.

``text_documentation.json`` is the example of Meta's messages webhook reference (protocols.md section 9)
verbatim; the others are written to the reference's shapes, one per message type and status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from switchboard.channels import meta
from switchboard.channels.base import RECEIPT_STATUSES
from switchboard.channels.whatsapp import OBJECT, WhatsAppAdapter, build_message
from switchboard.envelope import RECEIPT, UNSUPPORTED_TEXT, Attachment, Envelope
from switchboard.errors import BadRequest, Forbidden, Unauthorized
from switchboard.settings import Account
from switchboard.web import WebhookRequest

TESTDATA = Path(__file__).resolve().parents[3] / "src" / "switchboard" / "channels" / "testdata" / "whatsapp"
NUMBER = "106540352242922"  # metadata.phone_number_id of the recordings
OTHER_NUMBER = "110000000000002"
SHEENA, JURGEN = "16505551234", "447700900123"
RECEIVED_AT = 1_800_000_000_000
T = 1749416383000

adapter = WhatsAppAdapter()


def account(**options: Any) -> Account:
    return Account(id="wa-support", channel="whatsapp", workstream="social", options={"phone_number_id": NUMBER, **options})


def parse(body: bytes, acct: Account | None = None) -> tuple[list[Envelope], list[str]]:
    request = WebhookRequest("POST", "/webhooks/whatsapp/wa-support", {"account_id": "wa-support"}, {}, {}, body, "req-1")
    result = adapter.parse(request, acct or account(), received_at=RECEIVED_AT, correlation_id="corr-1")
    return result.envelopes, result.skipped


def recorded(name: str) -> bytes:
    return (TESTDATA / name).read_bytes()


@dataclass(frozen=True)
class Expected:
    kind: str
    key: str  # the envelope id after "whatsapp:wa-support:"
    text: str | None = None
    customer: str = SHEENA
    name: str | None = "Sheena Nelson"
    attachments: tuple[Attachment, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # a subset the envelope's data must hold
    sent_at: int = T


def wamid(tail: str) -> str:
    return "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz" + tail


CASES: list[tuple[str, list[Expected], int]] = [
    (
        "text_documentation.json",
        [Expected("text", "wamid.HBgL...", "Does it come in another color?", data={"type": "text"})],
        0,
    ),
    (
        "text_reply_context.json",
        [
            Expected(
                "text",
                wamid("QTRBNjU5OUFFRTAzODEwMTQ0RgA="),
                "Yes, the blue one / size M, s'il vous pla\u00eet",
                data={"context": {"from": "15550783881", "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}},
            )
        ],
        0,
    ),
    (
        "text_ad_referral.json",
        [Expected("text", wamid("QUQ0RkUyQjhGNUU1QjA0MTg3OAA="), "Hi, I saw your ad", data={"referral": {"source_type": "ad"}})],
        0,
    ),
    (
        "image.json",
        [
            Expected(
                "image",
                wamid("QTcwQTZCNUQ3RkI2NTY3NTM0RQA="),
                "The scratch on the lid",
                attachments=(Attachment(type="image", content_id="1003383421387256"),),
                data={"mime_type": "image/jpeg"},
            )
        ],
        0,
    ),
    (
        "video.json",
        [
            Expected(
                "video",
                wamid("QTFDNTZCQUE3MDIyRTU4NUQ3RQA="),
                attachments=(Attachment(type="video", content_id="1184425289626358"),),
            )
        ],
        0,
    ),
    (
        "audio_voice_note.json",
        [
            Expected(
                "audio",
                wamid("QUI1OEU1MUJBNjFENTVERUFGQQA="),
                attachments=(Attachment(type="audio", content_id="1390735998563462"),),
                data={"voice": True, "mime_type": "audio/ogg; codecs=opus"},
            )
        ],
        0,
    ),
    (
        "voice_legacy.json",
        [
            Expected(
                "audio",
                wamid("QTJGMkQ3QjI4N0M1QzM0NzQwRAA="),
                attachments=(Attachment(type="audio", content_id="2047830485773912"),),
                data={"voice": True, "type": "voice"},
            )
        ],
        0,
    ),
    (
        "document.json",
        [
            Expected(
                "file",
                "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0E4RTYzMzczNjI4RTVFMjdGNjkA",
                "Invoice for order 8812",
                customer=JURGEN,
                name="J\u00fcrgen \u00d8rsted",
                attachments=(Attachment(type="file", content_id="1560271851395924", name="invoice-8812.pdf"),),
                data={"mime_type": "application/pdf"},
            )
        ],
        0,
    ),
    (
        "sticker.json",
        [
            Expected(
                "sticker",
                wamid("QTQ2Q0Y0QzA3QkY5NjM5OTE5RAA="),
                attachments=(Attachment(type="sticker", content_id="887213496574103"),),
                data={"animated": False},
            )
        ],
        0,
    ),
    (
        "location.json",
        [
            Expected(
                "location",
                wamid("QUJEMjUyQUVFQzdBNTQ4MkZGQgA="),
                "Meta Headquarters, 1 Hacker Way, Menlo Park, CA 94025",
                data={"location": {"latitude": 37.483307, "longitude": -122.148981}},
            )
        ],
        0,
    ),
    (
        "interactive_button_reply.json",
        [
            Expected(
                "postback",
                wamid("QTdGQzI5MkYzNEU1MzZFNzNBQQA="),
                "CHANGE_ADDRESS",
                data={"interactive": "button_reply", "title": "Change address", "payload": "CHANGE_ADDRESS"},
            )
        ],
        0,
    ),
    (
        "interactive_list_reply.json",
        [
            Expected(
                "postback",
                wamid("QUM0NTI3QkY4MTNCNkQ2NTRCMQA="),
                "SLOT_0930",
                data={"interactive": "list_reply", "title": "9:30", "description": "Tomorrow morning"},
            )
        ],
        0,
    ),
    (
        "interactive_nfm_reply.json",
        [Expected("postback", wamid("QTk5QjlDQUE0MDgxRUY3NDg3NgA="), "flow", data={"interactive": "nfm_reply"})],
        0,
    ),
    (
        "button_template_quick_reply.json",
        [
            Expected(
                "postback",
                wamid("QTZEMjQ1NzI2QjI2NjJDNDg0QQA="),
                "REOPEN_CHAT",
                data={"type": "button", "title": "Yes, continue", "payload": "REOPEN_CHAT"},
            )
        ],
        0,
    ),
    (
        "reaction.json",
        [
            Expected(
                "event",
                wamid("QTNDODg4NjVGRjA3OTk3ODk4MgA="),
                data={"event": "reaction", "reaction": {"emoji": "\U0001f44d"}},
            ),
            Expected(  # the customer took the reaction back: no emoji
                "event",
                wamid("QUFCMDg4MkI5MjBCMTRCOTgzMwA="),
                data={"event": "reaction"},
                sent_at=1749416450000,
            ),
        ],
        0,
    ),
    (
        "system_changed_number.json",
        [
            Expected(
                "event",
                wamid("QUEwRjE1RjFBNjdCNDQ2QkQ4MQA="),
                "User Sheena Nelson changed from 16505551234 to 16505559876",
                name=None,  # system messages carry no contacts
                data={"event": "system", "system": {"type": "user_changed_number", "wa_id": "16505559876"}},
            )
        ],
        0,
    ),
    (
        "request_welcome.json",
        [Expected("event", wamid("QTc1NjA0MkM1MEFFN0U4MEU4NAA="), data={"event": "request_welcome"})],
        0,
    ),
    (
        "unsupported.json",
        [
            Expected(
                "unsupported",
                wamid("QUZDMzA0QzBDOUJEMTM1MkI4QgA="),
                UNSUPPORTED_TEXT,
                data={"unsupported": {"type": "unsupported"}, "errors": [{"code": 131051}]},
            )
        ],
        0,
    ),
    (
        "contacts.json",
        [
            Expected(
                "unsupported",
                wamid("QTQwNTlBNEQ5MDIyM0Q1RjE0MAA="),
                UNSUPPORTED_TEXT,
                data={"unsupported": {"type": "contacts"}},
            )
        ],
        0,
    ),
    (
        "statuses_sent_delivered_read.json",
        [
            Expected(
                RECEIPT,
                f"status:wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJDQjZCMzlEQUE4OTdEN0EyRTQA:{status}",
                name=None,
                data={
                    "receipt": {"status": status, "platform_ids": ["wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJDQjZCMzlEQUE4OTdEN0EyRTQA"]}
                },
                sent_at=at,
            )
            for status, at in (("sent", 1749416400000), ("delivered", 1749416401000), ("read", 1749416460000))
        ],
        0,
    ),
    (
        "status_failed.json",
        [
            Expected(
                RECEIPT,
                "status:wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI4NEI3QkJBNkY0RjFCOUJCN0EA:failed",
                name=None,
                data={
                    "receipt": {
                        "status": "failed",
                        "platform_ids": ["wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI4NEI3QkJBNkY0RjFCOUJCN0EA"],
                        "error": "Re-engagement message: Message failed to send because more than 24 hours have passed "
                        "since the customer last replied to this number. (131047)",
                    }
                },
                sent_at=1749503000000,
            )
        ],
        0,
    ),
    (
        "batched_entries.json",
        [
            Expected("text", wamid("QTExMTExMTExMTExMTExMTExMQA="), "first change", sent_at=1749416490000),
            Expected(
                "text",
                "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0FCQ0RFRjAxMjM0NTY3ODlBQgA=",
                "second change, first message",
                customer=JURGEN,
                name="J\u00fcrgen \u00d8rsted",
                sent_at=1749416500000,
            ),
            Expected(
                RECEIPT,
                "status:wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSQTFCMkMzRDRFNUY2QTdCOEM5RAA=:delivered",
                customer=JURGEN,
                name=None,
                data={"receipt": {"status": "delivered"}},
                sent_at=1749416505000,
            ),
            Expected("text", wamid("QTMzMzMzMzMzMzMzMzMzMzMzMwA="), "second entry", sent_at=1749416510000),
        ],
        2,  # the repeated message and the other number's change
    ),
    ("other_number.json", [], 1),
    ("template_status_update.json", [], 1),
]


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_subset, expected, actual))
    return bool(expected == actual)


@pytest.mark.parametrize(("file", "expected", "skips"), CASES, ids=[c[0] for c in CASES])
def test_recorded_payloads(file: str, expected: list[Expected], skips: int) -> None:
    envelopes, skipped = parse(recorded(file))
    assert len(skipped) == skips, skipped
    assert len(envelopes) == len(expected)
    for envelope, want in zip(envelopes, expected, strict=True):
        assert envelope.id == f"whatsapp:wa-support:{want.key}"
        assert (envelope.channel, envelope.account_id) == ("whatsapp", "wa-support")
        assert (envelope.kind, envelope.text) == (want.kind, want.text)
        assert (envelope.customer.id, envelope.customer.name) == (want.customer, want.name)
        assert envelope.attachments == want.attachments
        assert envelope.sent_at == want.sent_at
        assert (envelope.received_at, envelope.correlation_id) == (RECEIVED_AT, "corr-1")
        assert _subset(want.data, envelope.data), envelope.data


def test_every_recording_is_in_the_table() -> None:
    assert sorted(p.name for p in TESTDATA.glob("*.json")) == sorted(c[0] for c in CASES)


def test_receipts_are_never_customer_messages_and_carry_the_contract() -> None:
    for file in ("statuses_sent_delivered_read.json", "status_failed.json", "batched_entries.json"):
        for envelope in parse(recorded(file))[0]:
            if envelope.kind != RECEIPT:
                continue
            receipt = envelope.data["receipt"]
            assert receipt["status"] in RECEIPT_STATUSES
            assert receipt["platform_ids"] and all(i.startswith("wamid.") for i in receipt["platform_ids"])
            assert (envelope.text, envelope.attachments) == (None, ())
            assert set(receipt) <= {"status", "platform_ids", "error"}
            assert ("error" in receipt) == (receipt["status"] == "failed")


def test_an_unknown_status_is_skipped_not_invented() -> None:
    doc = json.loads(recorded("statuses_sent_delivered_read.json"))
    statuses = doc["entry"][0]["changes"][0]["value"]["statuses"]
    statuses[0]["status"] = "deleted"
    del statuses[1]["id"]
    del statuses[2]["recipient_id"]
    envelopes, skipped = parse(json.dumps(doc).encode())
    assert envelopes == []
    assert len(skipped) == 3 and "'deleted' status" in skipped[0]


def test_a_failed_status_without_errors_still_says_it_failed() -> None:
    doc = json.loads(recorded("status_failed.json"))
    del doc["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"]
    (envelope,) = parse(json.dumps(doc).encode())[0]
    assert envelope.data["receipt"]["error"] == "WhatsApp reported it failed"


def test_entries_for_another_number_or_an_account_without_one_are_skipped() -> None:
    assert parse(recorded("text_documentation.json"), account(phone_number_id=OTHER_NUMBER))[0] == []
    bare = Account(id="wa-support", channel="whatsapp", workstream="social", options={})
    envelopes, skipped = parse(recorded("text_documentation.json"), bare)
    assert envelopes == [] and "not this account's phone number None" in skipped[0]


def test_a_duplicate_message_in_one_body_is_one_envelope() -> None:
    envelopes, skipped = parse(recorded("batched_entries.json"))
    ids = [e.id for e in envelopes]
    assert len(ids) == len(set(ids))
    assert any("repeats" in s for s in skipped)


def test_the_customer_id_falls_back_to_the_business_scoped_user_id() -> None:
    doc = json.loads(recorded("text_documentation.json"))
    value = doc["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Sheena"}, "user_id": "US.13491208655302741918"}]
    message = value["messages"][0]
    del message["from"]
    message["from_user_id"] = "US.13491208655302741918"
    (envelope,) = parse(json.dumps(doc).encode())[0]
    assert (envelope.customer.id, envelope.customer.name) == ("US.13491208655302741918", "Sheena")
    assert envelope.data["customer_ref_type"] == "user_id"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.pop("from"),
        lambda m: m.pop("id"),
        lambda m: m.update(id=""),
        lambda m: m.update({"from": 42}),
    ],
    ids=["no-from", "no-id", "empty-id", "numeric-from"],
)
def test_a_message_without_sender_or_id_is_skipped(mutate: Any) -> None:
    doc = json.loads(recorded("text_documentation.json"))
    mutate(doc["entry"][0]["changes"][0]["value"]["messages"][0])
    envelopes, skipped = parse(json.dumps(doc).encode())
    assert envelopes == [] and len(skipped) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object": "instagram", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b"not json",
    ],
)
def test_a_body_that_is_not_whatsapps_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse(body)


@pytest.mark.parametrize(
    "entry",
    [
        "x",
        {"id": "1"},
        {"id": "1", "changes": "x"},
        {"id": "1", "changes": ["x", {"field": "messages"}, {"value": []}]},
        {"id": "1", "changes": [{"value": {"metadata": {"phone_number_id": NUMBER}, "messages": "x", "statuses": {}}}]},
        {"id": "1", "changes": [{"value": {"metadata": {"phone_number_id": NUMBER}, "messages": [1, None, []]}}]},
    ],
)
def test_malformed_parts_are_skipped_with_a_reason_never_a_crash(entry: Any) -> None:
    envelopes, skipped = parse(json.dumps({"object": OBJECT, "entry": [entry]}).encode())
    assert envelopes == [] and skipped


def test_media_without_an_id_records_why_nothing_will_be_fetched() -> None:
    doc = json.loads(recorded("image.json"))
    del doc["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"]
    (envelope,) = parse(json.dumps(doc).encode())[0]
    (attachment,) = envelope.attachments
    assert attachment.content_id is None and attachment.error == "not fetched: the message names no media id"
    assert adapter.attachment_request(attachment, account(), {"access_token": "t"}) is None


def test_an_unknown_interactive_or_message_type_is_unsupported_and_kept_in_data() -> None:
    doc = json.loads(recorded("interactive_button_reply.json"))
    message = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    message["interactive"] = {"type": "product_inquiry", "product_inquiry": {"sku": "1"}}
    (envelope,) = parse(json.dumps(doc).encode())[0]
    assert (envelope.kind, envelope.text) == ("unsupported", UNSUPPORTED_TEXT)
    message.update(type="order", order={"catalog_id": "9", "product_items": []})
    del message["interactive"]
    (envelope,) = parse(json.dumps(doc).encode())[0]
    assert envelope.kind == "unsupported" and envelope.data["unsupported"]["order"]["catalog_id"] == "9"


def test_a_missing_or_odd_timestamp_is_the_time_of_receipt() -> None:
    for value in (None, "soon", -5, True):
        doc = json.loads(recorded("text_documentation.json"))
        message = doc["entry"][0]["changes"][0]["value"]["messages"][0]
        if value is None:
            del message["timestamp"]
        else:
            message["timestamp"] = value
        (envelope,) = parse(json.dumps(doc).encode())[0]
        assert envelope.sent_at == RECEIVED_AT


def test_the_built_message_is_escaped_as_meta_sends_it_and_parses() -> None:
    body = build_message(NUMBER, JURGEN, "caf\u00e9 / \U0001f44d", wamid="wamid.test-1", now_s=1749416383)
    assert b"\\u00e9" in body and b"\\/" in body and body.isascii()
    (envelope,) = parse(body)[0]
    assert (envelope.text, envelope.customer.id, envelope.id) == (
        "caf\u00e9 / \U0001f44d",
        JURGEN,
        "whatsapp:wa-support:wamid.test-1",
    )


# -- Meta's shared verification and "one app, several numbers" -------------------------------------------

SECRETS = {"app_secret": "wa-app-secret-1f1f", "verify_token": "wa-verify-2a2a", "access_token": "EAAJ-3b3b"}


def signed(
    body: bytes, headers: dict[str, str] | None = None, method: str = "POST", query: dict[str, str] | None = None
) -> WebhookRequest:
    sent = {"x-hub-signature-256": meta.sign_sha256(SECRETS["app_secret"], body)} if headers is None else headers
    return WebhookRequest(method, "/webhooks/whatsapp/wa-support", {"account_id": "wa-support"}, query or {}, sent, body, "r")


def test_the_get_handshake_and_the_signature_are_metas() -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": SECRETS["verify_token"]}
    answer = adapter.handshake(signed(b"", {}, "GET", query), account(), SECRETS)
    assert answer is not None and (answer.status, answer.body) == (200, "1158201444")
    with pytest.raises(Forbidden):
        adapter.handshake(signed(b"", {}, "GET", {**query, "hub.verify_token": "nope"}), account(), SECRETS)
    body = recorded("text_documentation.json")
    adapter.verify(signed(body), account(), SECRETS)
    with pytest.raises(Unauthorized):
        adapter.verify(signed(body + b" "), account(), {**SECRETS, "app_secret": "other"})
    sha1 = {"x-hub-signature": meta.sign_sha1(SECRETS["app_secret"], body)}
    with pytest.raises(Unauthorized):
        adapter.verify(signed(body, sha1), account(), SECRETS)
    adapter.verify(signed(body, sha1), account(allow_sha1=True), SECRETS)
    assert adapter.accepted(adapter.parse(signed(body), account(), received_at=1, correlation_id="c")).body == "EVENT_RECEIVED"


def test_each_change_is_recorded_under_the_number_it_names_among_the_apps_accounts() -> None:
    other = Account(id="wa-sales", channel="whatsapp", workstream="sales", options={"phone_number_id": OTHER_NUMBER})
    result = adapter.parse_shared(
        signed(recorded("batched_entries.json")),
        account(),
        accounts=lambda key: other if key == OTHER_NUMBER else None,
        received_at=RECEIVED_AT,
        correlation_id="corr-1",
    )
    by_account = [(e.account_id, e.text) for e in result.envelopes if e.kind == "text"]
    assert by_account == [
        ("wa-support", "first change"),
        ("wa-support", "second change, first message"),
        ("wa-sales", "for another number"),
        ("wa-support", "second entry"),
    ]
    assert result.envelopes[2].id.startswith("whatsapp:wa-support:status:")
    unknown = adapter.parse_shared(
        signed(recorded("other_number.json")), account(), accounts=lambda key: None, received_at=1, correlation_id="c"
    )
    assert unknown.envelopes == [] and "which no account sharing this app secret has" in unknown.skipped[0]
