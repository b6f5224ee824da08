"""Google Business Messages adapter, table-driven over the recorded payloads in channels/testdata/gbm.

GBM shut down on 2024-07-31: these fixtures (Google's own test-framework payloads plus a few realistic
ones) are the only traffic the adapter will ever see, which is why they are exhaustive.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from switchboard.channels.gbm import MESSAGE_ID_NAMESPACE, GbmAdapter, agent_name, build_message, sign
from switchboard.envelope import Envelope
from switchboard.errors import BadRequest, Unauthorized
from switchboard.settings import Account
from switchboard.web import WebhookRequest

TESTDATA = Path(__file__).resolve().parents[3] / "src" / "switchboard" / "channels" / "testdata" / "gbm"
CLIENT_TOKEN = "SJENCPGJESMGUFPY"
PARTNER_KEY = "partner-key-9b1f"
SECRETS = {"client_token": CLIENT_TOKEN, "partner_key": PARTNER_KEY, "service_account_json": "{}"}
CONVERSATION = "72a88dca-58e8-4bb8-99bb-0302458fee1a"
RECEIVED_AT = 1_800_000_000_000
IMAGE_URL = json.loads((TESTDATA / "gbm_image-message.json").read_text())["message"]["text"]
# Google's test-framework samples name this placeholder agent; the realistic recordings a real one.
SAMPLE_AGENT = {"brand_id": "BRAND_ID", "agent_id": "AGENT_ID"}
REALISTIC_AGENT = {"brand_id": "85851e0e-8406-4812-8d15-53feecfa3b84", "agent_id": "bc69bbee-878a-4cda-a400-bec9311040e7"}
AGENT = "brands/BRAND_ID/agents/AGENT_ID"

adapter = GbmAdapter()


def account(**options: Any) -> Account:
    base = {"partner_id": "p-1", **SAMPLE_AGENT}
    return Account(id="gbm-agent", channel="gbm", workstream="social", options={**base, **options})


def body_of(**fields: Any) -> bytes:
    """A delivery to this test's account: ``fields`` plus the account's ``agent``, as Google sends it."""
    return json.dumps({"agent": AGENT, **fields}).encode()


def request(body: bytes, headers: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        path="/webhooks/gbm/gbm-agent",
        path_params={"account_id": "gbm-agent"},
        query={},
        headers={k.lower(): v for k, v in (headers or {}).items()},
        body=body,
        request_id="req-1",
    )


def parse(body: bytes, acct: Account | None = None) -> tuple[list[Envelope], list[str]]:
    result = adapter.parse(request(body), acct or account(), received_at=RECEIVED_AT, correlation_id="corr-1")
    return result.envelopes, result.skipped


@dataclass(frozen=True)
class Expected:
    kind: str
    customer: str
    key: str  # the envelope id after "gbm:gbm-agent:"; ending "sha256-" means "then a hash of the body"
    text: str | None = None
    attachments: tuple[tuple[str, str | None], ...] = ()
    name: str | None = None
    locale: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    sent_at: int = RECEIVED_AT  # the samples' placeholder times fall back to received_at


CASES: list[tuple[str, list[Expected], list[str]]] = [
    (
        "gbm_text-message.json",
        [Expected("text", "CONVERSATION_ID", "MESSAGE_ID", "MESSAGE_TEXT", name="USER_NAME", locale="USER_LOCALE")],
        [],
    ),
    (
        "gbm_text-with-dialogflow-response.json",
        [
            Expected(
                "text",
                "CONVERSATION_ID",
                "MESSAGE_ID",
                "MESSAGE_TEXT",
                name="USER_NAME",
                locale="USER_LOCALE",
                data={"dialogflow_response": {"faqResponse": {"userQuestion": "USER_QUESTION"}}},
            )
        ],
        [],
    ),
    (
        "gbm_image-message.json",
        [
            Expected(
                "image", "CONVERSATION_ID", "MESSAGE_ID", None, (("image", IMAGE_URL),), name="USER_NAME", locale="USER_LOCALE"
            )
        ],
        [],
    ),
    (
        "gbm_suggestion-message.json",
        [
            Expected(
                "postback",
                "CONVERSATION_ID",
                "REQUEST_ID",
                "SUGGESTION_TEXT",
                name="USER_NAME",
                locale="USER_LOCALE",
                data={"postback_data": "POSTBACK_DATA", "suggestion_type": "SUGGESTION_TYPE"},
            )
        ],
        [],
    ),
    (
        "gbm_authentication-request.json",
        [
            Expected(
                "event",
                "CONVERSATION_ID",
                "REQUEST_ID",
                name="USER_NAME",
                locale="USER_LOCALE",
                data={"event": "authenticationResponse", "authentication_response": {"code_received": True}},
            )
        ],
        [],
    ),
    ("gbm_event-receive.json", [], ["userStatus (not typing)"]),
    # Receipts are never messages (interface section 4): a receipt envelope naming the message it covers.
    (
        "gbm_read-receipt.json",
        [
            Expected(
                "receipt",
                "CONVERSATION_ID",
                "receipt:sha256-",
                data={"receipt": {"status": "read", "platform_ids": ["MESSAGE_ID"]}},
            )
        ],
        [],
    ),
    (
        "gbm_user-receipt.json",
        [
            Expected(
                "receipt",
                "CONVERSATION_ID",
                "receipt:sha256-",
                data={"receipt": {"status": "delivered", "platform_ids": ["MESSAGE_ID"]}},
            )
        ],
        [],
    ),
    (
        "gbm_realistic-text.json",
        [
            Expected(
                "text",
                CONVERSATION,
                "3C0A5E2B-6B7E-4C0E-8F3C-2D9F4B6A7E01",
                "Hallo, ich m\u00f6chte eine R\u00fcckerstattung f\u00fcr meine Bestellung",
                locale="de-DE",
                sent_at=1665529390123,  # message.createTime, nanoseconds cut to milliseconds
                data={"entry_point": "PLACESHEET", "request_id": "7B1C0F0E-5E0B-4F0A-9D55-0B7D0C2A1E11"},
                name="Kevin Neubert",
            )
        ],
        [],
    ),
    (
        "gbm_realistic-live-agent.json",
        [
            Expected(
                "event",
                CONVERSATION,
                "E2F9C3A1-0D4B-4C57-9E8A-6B1F2D3C4A55",
                locale="en-US",
                sent_at=1665529440000,
                data={"event": "userStatus", "requested_live_agent": True},
                name="Kevin Neubert",
            )
        ],
        [],
    ),
    ("gbm_realistic-typing.json", [], [f"userStatus (not typing) in conversation '{CONVERSATION}'"]),
    ("gbm_realistic-typing-started.json", [], [f"userStatus (typing) in conversation '{CONVERSATION}'"]),
    (
        "gbm_realistic-survey-response.json",
        [
            Expected(
                "event",
                CONVERSATION,
                "5D4C3B2A-1F0E-4D9C-8B7A-6F5E4D3C2B1A",
                locale="en-US",
                sent_at=1665530400000,
                data={
                    "event": "surveyResponse",
                    "survey_response": {"rating": "VERY_SATISFIED", "questionResponsePostbackData": "yes"},
                },
                name="Kevin Neubert",
            )
        ],
        [],
    ),
]


def _holds(actual: Any, expected: Any) -> bool:
    """``expected`` is a subset of ``actual``: recursively for dicts, element-wise for equal-length lists."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _holds(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(_holds, actual, expected))
    return bool(actual == expected)


def test_every_recorded_payload_is_in_the_table() -> None:
    assert sorted(p.name for p in TESTDATA.glob("*.json")) == sorted(name for name, _, _ in CASES)


@pytest.mark.parametrize(("name", "expected", "skipped"), CASES, ids=[c[0] for c in CASES])
def test_recorded_payload(name: str, expected: list[Expected], skipped: list[str]) -> None:
    acct = account(**REALISTIC_AGENT) if name.startswith("gbm_realistic") else account()
    envelopes, reasons = parse((TESTDATA / name).read_bytes(), acct)

    assert len(envelopes) == len(expected)
    for envelope, want in zip(envelopes, expected, strict=True):
        assert envelope.kind == want.kind
        assert envelope.text == want.text
        assert envelope.customer.id == want.customer
        assert envelope.customer.name == want.name
        assert envelope.customer.locale == want.locale
        if want.key.endswith("sha256-"):
            assert envelope.id.startswith(f"gbm:gbm-agent:{want.key}")
        else:
            assert envelope.id == f"gbm:gbm-agent:{want.key}"
        assert tuple((a.type, a.url) for a in envelope.attachments) == want.attachments
        assert _holds(envelope.data, want.data), envelope.data
        assert envelope.sent_at == want.sent_at
        assert (envelope.channel, envelope.account_id, envelope.received_at) == ("gbm", "gbm-agent", RECEIVED_AT)
        assert Envelope.from_json(envelope.to_json()) == envelope
    assert len(reasons) == len(skipped), reasons
    for reason, want_reason in zip(reasons, skipped, strict=True):
        assert want_reason in reason


# --- signatures -------------------------------------------------------------------------------------

VECTOR_BODY = b'{"message":{"messageId":"m1","text":"hi"},"conversationId":"c1","requestId":"r1"}'
VECTOR_SIGNATURE = "aF2LVXfqmJMUmyVtaWS+VkX6IvaS8AM1iE9jyPHwNPUq0GGd766oxttwBj9Kh+qeUY0EupzhPIkrnGbUeNMIkg=="


def test_signature_vector_from_protocols_section_6() -> None:
    assert sign(CLIENT_TOKEN, VECTOR_BODY) == VECTOR_SIGNATURE


def test_client_token_signature_verifies_by_default() -> None:
    adapter.verify(request(VECTOR_BODY, {"X-Goog-Signature": VECTOR_SIGNATURE}), account(), SECRETS)
    adapter.verify(request(VECTOR_BODY, {"X-Goog-Signature": VECTOR_SIGNATURE}), account(signing_key="client_token"), SECRETS)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Goog-Signature": ""},
        {"X-Goog-Signature": VECTOR_SIGNATURE[:-4] + "AAA="},
        {"X-Goog-Signature": sign(PARTNER_KEY, VECTOR_BODY)},
    ],
    ids=["missing", "empty", "wrong", "partner-key-on-client-token-account"],
)
def test_wrong_or_missing_signature_is_unauthorized(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized) as caught:
        adapter.verify(request(VECTOR_BODY, headers), account(), SECRETS)
    assert caught.value.status == 401
    assert CLIENT_TOKEN not in caught.value.message


def test_partner_key_account_verifies_with_the_partner_key_and_refuses_the_client_token() -> None:
    partner = account(signing_key="partner_key")
    adapter.verify(request(VECTOR_BODY, {"X-Goog-Signature": sign(PARTNER_KEY, VECTOR_BODY)}), partner, SECRETS)
    with pytest.raises(Unauthorized):
        adapter.verify(request(VECTOR_BODY, {"X-Goog-Signature": VECTOR_SIGNATURE}), partner, SECRETS)


def test_signature_is_over_the_raw_bytes() -> None:
    spaced = json.dumps(json.loads(VECTOR_BODY)).encode()
    with pytest.raises(Unauthorized):
        adapter.verify(request(spaced, {"X-Goog-Signature": VECTOR_SIGNATURE}), account(), SECRETS)


def test_required_secrets_follow_the_signing_key() -> None:
    assert GbmAdapter.required_secrets == ("client_token",)
    assert adapter.secrets_for(account().options) == ("client_token",)
    assert adapter.secrets_for(account(signing_key="client_token").options) == ("client_token",)
    assert adapter.secrets_for(account(signing_key="partner_key").options) == ("client_token", "partner_key")
    assert set(adapter.optional_secrets) == {"partner_key", "service_account_json"}
    assert GbmAdapter.settings_schema["signing_key"]["enum"] == ["client_token", "partner_key"]
    # Required at apply: without them no delivery can be told to be this account's (see below).
    assert GbmAdapter.required_settings == ("brand_id", "agent_id")


def test_an_unknown_signing_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="signing_key"):
        adapter.verify(
            request(VECTOR_BODY, {"X-Goog-Signature": VECTOR_SIGNATURE}), account(signing_key="service_account_json"), SECRETS
        )


# --- verification handshake ---------------------------------------------------------------------------


def test_handshake_with_the_right_client_token_returns_the_secret() -> None:
    body = json.dumps({"clientToken": CLIENT_TOKEN, "secret": "0123456789"}).encode()
    response = adapter.handshake(request(body), account(), SECRETS)
    assert response is not None
    assert (response.status, response.body, response.content_type) == (200, "0123456789", "text/plain")


def test_handshake_works_for_partner_key_accounts_too() -> None:
    body = json.dumps({"clientToken": CLIENT_TOKEN, "secret": "42"}).encode()
    response = adapter.handshake(request(body), account(signing_key="partner_key"), SECRETS)
    assert response is not None
    assert response.body == "42"


def test_handshake_with_a_wrong_client_token_is_unauthorized() -> None:
    body = json.dumps({"clientToken": "NOTTHETOKEN", "secret": "0123456789"}).encode()
    with pytest.raises(Unauthorized) as caught:
        adapter.handshake(request(body), account(), SECRETS)
    assert caught.value.status == 401
    assert CLIENT_TOKEN not in caught.value.response().body
    assert "NOTTHETOKEN" not in caught.value.response().body


@pytest.mark.parametrize(
    "body",
    [
        VECTOR_BODY,
        b"not json",
        b'{"clientToken":"SJENCPGJESMGUFPY"}',
        b'{"clientToken":"SJENCPGJESMGUFPY","secret":"1","conversationId":"c1"}',
        b'{"clientToken":1,"secret":"1"}',
        (TESTDATA / "gbm_image-message.json").read_bytes(),
    ],
    ids=["message", "not-json", "no-secret", "extra-key", "not-a-string", "image-message"],
)
def test_anything_but_the_verification_shape_is_not_a_handshake(body: bytes) -> None:
    assert adapter.handshake(request(body), account(), SECRETS) is None


# --- parse edge cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"conversationId":""}', b'{"conversationId":7}'])
def test_a_body_that_is_not_a_gbm_webhook_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse(body)


def test_typing_makes_no_envelope() -> None:
    envelopes, skipped = parse(
        body_of(conversationId="c1", requestId="r1", userStatus={"isTyping": True, "createTime": "2022-10-11T23:03:03Z"})
    )
    assert envelopes == []
    assert skipped == ["userStatus (typing) in conversation 'c1' makes no envelope"]


def test_requested_live_agent_is_an_event_the_router_can_match() -> None:
    (envelope,), skipped = parse(
        body_of(conversationId="c1", requestId="r1", userStatus={"requestedLiveAgent": True, "isTyping": False})
    )
    assert skipped == []
    assert envelope.kind == "event"
    assert envelope.data["requested_live_agent"] is True


def test_a_storage_url_becomes_an_image_attachment_and_no_text() -> None:
    url = "https://storage.googleapis.com/business-messages-us/1/abc?x-goog-expires=604800"
    (envelope,), _ = parse(body_of(conversationId="c1", message={"messageId": "m1", "text": url}))
    assert (envelope.kind, envelope.text) == ("image", None)
    assert [(a.type, a.url) for a in envelope.attachments] == [("image", url)]


def test_a_storage_url_inside_a_sentence_stays_text() -> None:
    text = "see https://storage.googleapis.com/bucket/x please"
    (envelope,), _ = parse(body_of(conversationId="c1", message={"messageId": "m1", "text": text}))
    assert (envelope.kind, envelope.text, envelope.attachments) == ("text", text, ())


def test_dedupe_prefers_message_id_then_request_id_then_the_body() -> None:
    def key(body: dict[str, Any]) -> str:
        return parse(json.dumps({"agent": AGENT, **body}).encode())[0][0].id

    message = {"conversationId": "c1", "requestId": "r1", "message": {"messageId": "m1", "text": "hi"}}
    assert key(message) == "gbm:gbm-agent:m1"
    assert key({**message, "requestId": "r2"}) == "gbm:gbm-agent:m1"  # a redelivery may carry a new requestId
    assert key({"conversationId": "c1", "requestId": "r1", "message": {"text": "hi"}}) == "gbm:gbm-agent:r1"
    survey = {"conversationId": "c1", "surveyResponse": {"rating": "VERY_SATISFIED", "questionResponsePostbackData": "yes"}}
    assert key(survey) == key(dict(reversed(list(survey.items()))))
    assert key(survey) != key({**survey, "sendTime": "2022-10-11T23:03:03Z"})


def test_unknown_payloads_are_kept_as_events() -> None:
    (envelope,), _ = parse(body_of(conversationId="c1", requestId="r9", somethingNew={"x": 1}))
    assert envelope.kind == "event"
    assert envelope.data["event"] == "somethingNew"
    assert envelope.id == "gbm:gbm-agent:r9"


def test_a_message_without_text_is_unsupported() -> None:
    (envelope,), _ = parse(body_of(conversationId="c1", message={"messageId": "m1"}))
    assert envelope.kind == "unsupported"


@pytest.mark.parametrize(
    ("stamp", "millis"),
    [
        ("2022-10-11T23:03:03Z", 1665529383000),
        ("2022-10-11T23:03:03.318615Z", 1665529383318),
        ("2022-10-11T23:03:03.318615123Z", 1665529383318),
        ("2022-10-12T01:03:03.5+02:00", 1665529383500),
        ("SEND_TIME", RECEIVED_AT),
        ("2022-13-45T99:03:03Z", RECEIVED_AT),
    ],
)
def test_sent_at_reads_rfc3339_and_falls_back_to_received_at(stamp: str, millis: int) -> None:
    body = body_of(conversationId="c1", message={"messageId": "m1", "text": "hi"}, sendTime=stamp)
    assert parse(body)[0][0].sent_at == millis


def test_accepted_is_an_empty_json_object() -> None:
    response = adapter.accepted(adapter.parse(request(VECTOR_BODY), account(), received_at=1, correlation_id="c"))
    assert (response.status, response.body) == (200, "{}")


# --- build_message (switchboard send gbm) ---------------------------------------------------------------


def test_build_message_round_trips_through_verify_and_parse() -> None:
    body = build_message(
        CONVERSATION,
        "R\u00fcckerstattung bitte",
        display_name="Kevin Neubert",
        locale="de-DE",
        message_id="m-cli",
        now_ms=1665529390123,
    )
    adapter.verify(request(body, {"X-Goog-Signature": sign(CLIENT_TOKEN, body)}), account(), SECRETS)
    (envelope,), skipped = parse(body)
    assert skipped == []
    assert (envelope.kind, envelope.text, envelope.customer.id) == ("text", "R\u00fcckerstattung bitte", CONVERSATION)
    assert (envelope.customer.name, envelope.customer.locale) == ("Kevin Neubert", "de-DE")
    assert envelope.id == "gbm:gbm-agent:m-cli"
    assert envelope.sent_at == 1665529390123
    assert adapter.handshake(request(body), account(), SECRETS) is None


def test_build_message_uses_the_brand_and_agent() -> None:
    body = json.loads(build_message("c1", "hi", brand_id="b1", agent_id="a1"))
    assert body["agent"] == "brands/b1/agents/a1"
    assert body["message"]["name"] == f"conversations/c1/messages/{body['message']['messageId']}"


def test_authentication_response_code_is_never_kept() -> None:
    body = body_of(
        conversationId="c1",
        requestId="r9",
        authenticationResponse={"code": "ONE-TIME-CODE-123", "redirect_uri": "https://x"},
    )
    (envelope,), _ = parse(body)
    assert "ONE-TIME-CODE-123" not in envelope.to_json()
    assert envelope.data["authentication_response"] == {"redirect_uri": "https://x", "code_received": True}


# --- the body's agent must be this account's (one partner key signs for all of a partner's agents) ------


def test_agent_name_is_the_one_google_writes() -> None:
    assert agent_name(account(brand_id="b1", agent_id="a1")) == "brands/b1/agents/a1"
    for missing in ({"brand_id": None}, {"agent_id": None}, {"brand_id": ""}, {"agent_id": "  "}, {"agent_id": 7}):
        assert agent_name(account(**missing)) is None, missing


def test_a_delivery_for_another_agent_is_skipped_not_recorded() -> None:
    # Signed once for agent A (the partner key signs for every agent); replayed to agent B's account.
    body = build_message(CONVERSATION, "for agent A", brand_id="b1", agent_id="A", message_id="m-a")
    assert parse(body, account(brand_id="b1", agent_id="A"))[0]  # A's own account records it
    envelopes, skipped = parse(body, account(brand_id="b1", agent_id="B"))
    assert envelopes == []
    assert skipped == ["delivery for agent 'brands/b1/agents/A', not this account's agent 'brands/b1/agents/B'"]


@pytest.mark.parametrize(
    "agent",
    [
        "brands/b2/agents/A",  # the same agent id under another brand
        "brands/b1/agents/A/",
        "brands/b1/agents/a",
        " brands/b1/agents/A",
        "brands/b1/agents/A\n",
        "",
        None,
        ["brands/b1/agents/A"],
    ],
    ids=["other-brand", "trailing-slash", "case", "leading-space", "newline", "empty", "null", "list"],
)
def test_anything_but_exactly_the_accounts_agent_is_skipped(agent: Any) -> None:
    doc = json.loads(build_message("c1", "hi", brand_id="b1", agent_id="A", message_id="m1"))
    doc["agent"] = agent
    envelopes, skipped = parse(json.dumps(doc).encode(), account(brand_id="b1", agent_id="A"))
    assert (envelopes, len(skipped)) == ([], 1)
    assert "not this account's agent 'brands/b1/agents/A'" in skipped[0]


def test_a_delivery_without_an_agent_is_skipped() -> None:
    envelopes, skipped = parse(json.dumps({"conversationId": "c1", "message": {"messageId": "m1", "text": "hi"}}).encode())
    assert envelopes == []
    assert skipped == [f"delivery for agent None, not this account's agent {AGENT!r}"]


@pytest.mark.parametrize("missing", [{"brand_id": None}, {"agent_id": None}, {"brand_id": "", "agent_id": ""}])
def test_an_account_without_brand_and_agent_records_nothing(missing: dict[str, Any]) -> None:
    body = build_message("c1", "hi", message_id="m1")  # BRAND_ID/AGENT_ID: what `send gbm` writes without ids
    envelopes, skipped = parse(body, account(**missing))
    assert envelopes == []
    assert skipped == ["account 'gbm-agent' has no brand_id and agent_id, so no delivery can be its own"]


def test_a_long_foreign_agent_is_shortened_in_the_reason() -> None:
    doc = json.loads(build_message("c1", "hi", message_id="m1"))
    doc["agent"] = "brands/x/agents/" + "y" * 5000
    (reason,) = parse(json.dumps(doc).encode())[1]
    assert len(reason) < 300 and reason.count("y") <= 120


def test_the_agent_is_checked_after_the_body_is_known_to_be_gbms() -> None:
    # A body that is not GBM's is still a 400, whatever its agent: the platform sent something else.
    with pytest.raises(BadRequest):
        parse(json.dumps({"agent": "brands/b9/agents/z"}).encode())


# --- receipts are never messages: they move the delivery of Switchboard's replies ---------------------------


def receipts_body(receipts: Any, **fields: Any) -> bytes:
    return body_of(conversationId="c1", receipts={"receipts": receipts, "createTime": "2022-10-11T23:03:03Z"}, **fields)


def test_a_receipt_names_the_message_id_the_send_recorded() -> None:
    # What send() records as Sent.platform_id is what the receipt's platform_ids hold, whatever Google's case.
    message_id = str(uuid.uuid5(MESSAGE_ID_NAMESPACE, "reply-7"))
    name = f"conversations/c1/messages/{message_id.upper()}"
    envelopes, skipped = parse(receipts_body([{"message": name, "receiptType": "READ"}], requestId="r-9"))
    (envelope,) = envelopes
    assert skipped == []
    assert (envelope.kind, envelope.text, envelope.attachments) == ("receipt", None, ())
    assert envelope.data == {"receipt": {"status": "read", "platform_ids": [message_id]}}
    assert envelope.id == "gbm:gbm-agent:receipt:r-9:read"
    assert envelope.customer.id == "c1"
    assert envelope.sent_at == 1665529383000  # receipts.createTime
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_one_envelope_per_status_each_listing_its_messages_once() -> None:
    receipts = [
        {"message": "conversations/c1/messages/m1", "receiptType": "DELIVERED"},
        {"message": "conversations/c1/messages/m2", "receiptType": "DELIVERED"},
        {"message": "conversations/c1/messages/m1", "receiptType": "READ"},
        {"message": "conversations/c1/messages/m1", "receiptType": "DELIVERED"},
    ]
    envelopes, skipped = parse(receipts_body(receipts, requestId="r-1"))
    assert skipped == []
    assert [(e.id, e.data["receipt"]) for e in envelopes] == [
        ("gbm:gbm-agent:receipt:r-1:delivered", {"status": "delivered", "platform_ids": ["m1", "m2"]}),
        ("gbm:gbm-agent:receipt:r-1:read", {"status": "read", "platform_ids": ["m1"]}),
    ]
    assert all(e.kind == "receipt" for e in envelopes)


@pytest.mark.parametrize(
    ("receipts", "reasons"),
    [
        ([{"receiptType": "DELIVERED"}], ["receipts.receipts[0] names no message of conversation 'c1' (None)"]),
        (
            [{"message": "conversations/other/messages/m1", "receiptType": "READ"}],
            ["receipts.receipts[0] names no message of conversation 'c1' ('conversations/other/messages/m1')"],
        ),
        (
            [{"message": "conversations/c1/messages/m1", "receiptType": "RECEIPT_TYPE_UNSPECIFIED"}],
            ["receipts.receipts[0] is a 'RECEIPT_TYPE_UNSPECIFIED' receipt, not READ or DELIVERED"],
        ),
        ([], ["receipts in conversation 'c1' list no receipt"]),
        ("junk", ["receipts in conversation 'c1' list no receipt"]),
        (["junk"], ["receipts.receipts[0] is a 'None' receipt, not READ or DELIVERED"]),
    ],
    ids=["no-message", "other-conversation", "unspecified", "empty", "not-a-list", "not-an-object"],
)
def test_receipts_that_cannot_be_applied_make_no_envelope(receipts: Any, reasons: list[str]) -> None:
    envelopes, skipped = parse(receipts_body(receipts))
    assert envelopes == []
    assert skipped == reasons


def test_a_bad_entry_is_skipped_and_the_good_ones_still_count() -> None:
    receipts = [{"message": "conversations/other/messages/x", "receiptType": "READ"}, {"message": "m5", "receiptType": "READ"}]
    envelopes, skipped = parse(receipts_body(receipts))
    assert [e.data["receipt"] for e in envelopes] == [{"status": "read", "platform_ids": ["m5"]}]
    assert skipped == ["receipts.receipts[0] names no message of conversation 'c1' ('conversations/other/messages/x')"]


def test_a_receipt_for_another_agent_is_still_skipped() -> None:
    body = json.dumps(
        {
            "agent": "brands/b9/agents/someone-else",
            "conversationId": "c1",
            "receipts": {"receipts": [{"message": "conversations/c1/messages/m1", "receiptType": "READ"}]},
        }
    ).encode()
    envelopes, skipped = parse(body)
    assert envelopes == []
    assert "not this account's agent" in skipped[0]
