"""Facebook Messenger adapter, table-driven over the recorded payloads in channels/testdata/facebook."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from switchboard.channels.base import RECEIPT_STATUSES
from switchboard.channels.facebook import FacebookAdapter, build_message, sign_sha1, sign_sha256
from switchboard.envelope import UNSUPPORTED_TEXT, Envelope
from switchboard.errors import BadRequest, Forbidden, Unauthorized
from switchboard.settings import Account
from switchboard.web import WebhookRequest

TESTDATA = Path(__file__).resolve().parents[3] / "src" / "switchboard" / "channels" / "testdata" / "facebook"
PAGE = "104123456789012"
U1 = "6789012345678901"
U2 = "7890123456789012"
CDN = "https://scontent.xx.fbcdn.net/v/t1.15752-9/"
STICKER = "https://scontent.xx.fbcdn.net/v/t39.1997-6/851557_369239266556155_759568595_n.png"
MID = "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"
SECRETS = {"app_secret": "app_secret", "verify_token": "meatyhamhock-7f3a", "page_access_token": "EAAG-token"}
RECEIVED_AT = 1_800_000_000_000

adapter = FacebookAdapter()


def account(**options: Any) -> Account:
    return Account(id="fb-store", channel="facebook", workstream="social", options={"page_id": PAGE, **options})


def request(
    body: bytes, headers: dict[str, str] | None = None, method: str = "POST", query: dict[str, str] | None = None
) -> WebhookRequest:
    return WebhookRequest(
        method=method,
        path="/webhooks/facebook/fb-store",
        path_params={"account_id": "fb-store"},
        query=query or {},
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
    key: str  # the envelope id after "facebook:fb-store:"
    text: str | None = None
    attachments: tuple[tuple[str, str | None], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # a subset the envelope's data must hold
    sent_at: int | None = None


CASES: list[tuple[str, list[Expected], list[str]]] = [
    (
        "message_text_quick_reply.json",
        [Expected("text", U1, MID, "Track my order", data={"quick_reply_payload": "TRACK_ORDER"}, sent_at=1718000000000)],
        [],
    ),
    (
        "message_reply_to.json",
        [
            Expected(
                "text",
                U1,
                "m_1457764197618:41d102a3e1ae206a38",
                "Yes, that one \u00e9t\u00e9 / okay",
                data={"reply_to": {"mid": "m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU", "is_self_reply": False}},
            )
        ],
        [],
    ),
    (
        "message_attachments_media.json",
        [
            Expected(
                "image",
                U1,
                "m_img2",
                attachments=(("image", CDN + "1.jpg?_nc_cat=1&oh=00_a"), ("image", CDN + "2.png?_nc_cat=1&oh=00_b")),
            ),
            Expected(
                "video", U1, "m_video", attachments=(("video", "https://video.xx.fbcdn.net/v/t42.3356-2/clip.mp4?_nc_cat=1"),)
            ),
            Expected(
                "audio",
                U1,
                "m_audio",
                attachments=(("audio", "https://cdn.fbsbx.com/v/t59.3654-21/audioclip-1718000004.mp4?_nc_cat=1"),),
            ),
            Expected("file", U1, "m_file", attachments=(("file", "https://cdn.fbsbx.com/v/t59.2708-21/invoice.pdf?_nc_cat=1"),)),
            Expected("video", U1, "m_reel", attachments=(("reel", "https://video.xx.fbcdn.net/v/t42.1790-2/reel.mp4"),)),
            Expected(
                "video",
                U1,
                "m_igreel",
                attachments=(("ig_reel", "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17890"),),
            ),
        ],
        [],
    ),
    (
        "message_sticker.json",
        [
            Expected(
                "sticker", U1, "m_sticker_transition", attachments=(("sticker", STICKER),), data={"sticker_id": 369239263222822}
            ),
            Expected(
                "sticker", U1, "m_sticker_legacy", attachments=(("sticker", STICKER),), data={"sticker_id": 369239263222822}
            ),
        ],
        [],
    ),
    (
        "message_shares.json",
        [
            Expected(
                "unsupported",
                U1,
                "m_post",
                UNSUPPORTED_TEXT,
                (("post", "https://www.facebook.com/104123456789012/posts/pfbid02abc"),),
                {"shared": ["post"]},
            ),
            Expected(
                "unsupported",
                U1,
                "m_igpost",
                UNSUPPORTED_TEXT,
                (("ig_post", "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17999"),),
            ),
            Expected(
                "unsupported",
                U1,
                "m_fallback",
                UNSUPPORTED_TEXT,
                (("fallback", "https://example.com/"),),
                {"shared": ["fallback"]},
            ),
            Expected("unsupported", U1, "m_fallback_nopayload", UNSUPPORTED_TEXT, (("fallback", None),)),
            Expected(
                "text", U1, "m_text_link", "look at https://example.com/item/42", (("fallback", "https://example.com/item/42"),)
            ),
            Expected(
                "unsupported", U1, "m_template", UNSUPPORTED_TEXT, (("template", "https://www.facebook.com/commerce/update/"),)
            ),
            Expected(
                "event",
                U1,
                "m_booking",
                attachments=(("appointment_booking", None),),
                data={"event": "message"},
            ),
        ],
        [],
    ),
    (
        "message_location_legacy.json",
        [
            Expected(
                "location",
                U1,
                "m_location",
                "Pinned Location",
                data={"location": {"title": "Pinned Location", "latitude": 35.6812, "longitude": 139.7671}},
            )
        ],
        [],
    ),
    (
        "postback_with_mid.json",
        [
            Expected(
                "postback",
                U1,
                "m_postback_AG5Hz2Uq7tuwNEhXfYYKj8mJ",
                "AGENT_HANDOFF",
                data={"event": "postback", "title": "Talk to an agent", "referral": {"ref": "summer-campaign"}},
            )
        ],
        [],
    ),
    (
        # No mid (before v11.0) and a timestamp in seconds, as the dashboard's sample sends it.
        "postback_without_mid.json",
        [
            Expected(
                "postback",
                U1,
                f"postback:{U1}:1527459824000",
                "GET_STARTED",
                data={"title": "Get Started"},
                sent_at=1527459824000,
            )
        ],
        [],
    ),
    # Receipts are never messages (interface section 4): receipt events for our replies' delivery.
    (
        "read.json",
        [
            Expected(
                "receipt",
                U1,
                "read:6789012345678901:1458668856253",
                data={"receipt": {"status": "read", "platform_ids": [], "watermark": 1458668856253}},
                sent_at=1458668856463,
            )
        ],
        [],
    ),
    (
        "delivery.json",
        [
            Expected(
                "receipt",
                U1,
                "delivered:6789012345678901:1458668856253",
                data={
                    "receipt": {
                        "status": "delivered",
                        "platform_ids": ["mid.1458668856218:ed81099e15d3f4f233"],
                        "watermark": 1458668856253,
                    }
                },
                sent_at=1458668856451,  # no timestamp on the item: the entry's time
            )
        ],
        [],
    ),
    (
        "reaction.json",
        [
            Expected(
                "event", U1, f"reaction:{MID}:react:love", data={"event": "reaction", "reaction": {"emoji": "\u2764\ufe0f"}}
            ),
            Expected("event", U1, f"reaction:{MID}:unreact:", data={"reaction": {"action": "unreact"}}),
        ],
        [],
    ),
    (
        "referral.json",
        [
            Expected("event", U1, f"referral:{U1}:1458692752478", data={"referral": {"source": "SHORTLINK"}}),
            Expected("event", U2, f"referral:{U2}:1458692752479", data={"referral": {"source": "ADS", "ad_id": "6045246247433"}}),
            Expected(
                "event",
                "plugin-user-ref-abc123",
                "referral:plugin-user-ref-abc123:1458692752480",
                data={"customer_ref_type": "user_ref", "referral": {"source": "CUSTOMER_CHAT_PLUGIN"}},
            ),
        ],
        [],
    ),
    (
        "optin.json",
        [
            Expected(
                "event", U1, f"optin:{U1}:1718000020000", data={"event": "optin", "optin": {"type": "notification_messages"}}
            ),
            Expected("event", U2, f"optin:{U2}:1718000021000", data={"optin": {"ref": "send-to-messenger-footer"}}),
        ],
        [],
    ),
    ("echo.json", [], ["entry[0].messaging[0] is an echo", "entry[0].messaging[1] is an echo"]),
    (
        "standby.json",
        [
            Expected("text", U2, "m_standby_text", "is anyone there?", data={"standby": True}),
            Expected(
                "receipt",
                U2,
                "read:7890123456789012:1570053170673",
                data={"standby": True, "receipt": {"status": "read", "watermark": 1570053170673}},
            ),
        ],
        ["entry[0].standby[1] is an echo"],
    ),
    (
        "batched_2x3.json",
        [Expected("text", [U1, U2][i % 2], f"m_batch_{e}_{i}", f"batched {e}.{i}") for e in range(2) for i in range(3)],
        [],
    ),
    (
        "other_page.json",
        [Expected("text", U1, "m_our_page", "for us")],
        ["entry[0] is for page '998877665544332', not this account's page '104123456789012'"],
    ),
]


def _holds(actual: Any, expected: Any) -> bool:
    """``expected`` is a subset of ``actual`` (recursively for dicts)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _holds(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


def test_every_recorded_payload_is_in_the_table() -> None:
    assert sorted(p.name for p in TESTDATA.glob("*.json")) == sorted(name for name, _, _ in CASES)


@pytest.mark.parametrize(("name", "expected", "skipped"), CASES, ids=[c[0] for c in CASES])
def test_recorded_payload(name: str, expected: list[Expected], skipped: list[str]) -> None:
    envelopes, reasons = parse((TESTDATA / name).read_bytes())

    assert len(envelopes) == len(expected), [e.id for e in envelopes]
    for envelope, want in zip(envelopes, expected, strict=True):
        assert envelope.kind == want.kind
        assert envelope.text == want.text
        assert envelope.customer.id == want.customer
        assert envelope.id == f"facebook:fb-store:{want.key}"
        assert tuple((a.type, a.url) for a in envelope.attachments) == want.attachments
        assert _holds(envelope.data, want.data), envelope.data
        assert envelope.channel == "facebook"
        assert envelope.account_id == "fb-store"
        assert envelope.received_at == RECEIVED_AT
        assert envelope.correlation_id == "corr-1"
        if want.sent_at is not None:
            assert envelope.sent_at == want.sent_at
        # Every envelope survives the stage boundary unchanged.
        assert Envelope.from_json(envelope.to_json()) == envelope
    assert len(reasons) == len(skipped), reasons
    for reason, want_reason in zip(reasons, skipped, strict=True):
        assert want_reason in reason


def test_appointment_booking_keeps_its_detail() -> None:
    envelopes, _ = parse((TESTDATA / "message_shares.json").read_bytes())
    booking = next(e for e in envelopes if e.id.endswith("m_booking"))
    assert booking.data["appointment_booking"][0]["booking_id"] == "987654321"
    assert booking.data["appointment_booking"][0]["status"] == "requested"


# --- signatures -------------------------------------------------------------------------------------

VECTOR_BODY = b'{"object":"page","entry":[]}'
VECTOR_SHA256 = "sha256=22d3988d1017c437ea81a89d41e2d3266c00a508cffdb23f8ad8746d232d77e9"
VECTOR_SHA1 = "sha1=51b8d50f6b49af800369697e6e1de2d25e15685d"


def test_signature_vectors_from_protocols_section_6() -> None:
    assert sign_sha256("app_secret", VECTOR_BODY) == VECTOR_SHA256
    assert sign_sha1("app_secret", VECTOR_BODY) == VECTOR_SHA1


def test_sha256_signature_verifies() -> None:
    adapter.verify(request(VECTOR_BODY, {"X-Hub-Signature-256": VECTOR_SHA256}), account(), SECRETS)


def test_upper_case_hex_is_accepted() -> None:
    upper = "sha256=" + VECTOR_SHA256.removeprefix("sha256=").upper()
    adapter.verify(request(VECTOR_BODY, {"X-Hub-Signature-256": upper}), account(), SECRETS)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": VECTOR_SHA256.removeprefix("sha256=")},
        {"X-Hub-Signature-256": sign_sha256("another_secret", VECTOR_BODY)},
        # A wrong SHA-256 is refused even beside a right SHA-1 on an account that allows SHA-1.
        {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-Hub-Signature": VECTOR_SHA1},
    ],
    ids=["missing", "empty", "wrong", "no-prefix", "other-secret", "wrong-256-right-1"],
)
def test_wrong_or_missing_signature_is_unauthorized(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized) as caught:
        adapter.verify(request(VECTOR_BODY, headers), account(allow_sha1=True), SECRETS)
    assert caught.value.status == 401
    assert SECRETS["app_secret"] not in caught.value.message


def test_signature_is_over_the_raw_bytes() -> None:
    body = build_message(PAGE, U1, "caf\u00e9 / ok", mid="m_raw", now_ms=1718000000000)
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert reserialised != body
    with pytest.raises(Unauthorized):
        adapter.verify(request(reserialised, {"X-Hub-Signature-256": sign_sha256("app_secret", body)}), account(), SECRETS)


def test_sha1_only_is_refused_unless_the_account_allows_it() -> None:
    sha1_only = request(VECTOR_BODY, {"X-Hub-Signature": VECTOR_SHA1})
    for refusing in (account(), account(allow_sha1=False), account(allow_sha1="true")):
        with pytest.raises(Unauthorized):
            adapter.verify(sha1_only, refusing, SECRETS)
    adapter.verify(sha1_only, account(allow_sha1=True), SECRETS)


def test_wrong_sha1_is_refused_when_allowed() -> None:
    with pytest.raises(Unauthorized):
        adapter.verify(request(VECTOR_BODY, {"X-Hub-Signature": "sha1=" + "0" * 40}), account(allow_sha1=True), SECRETS)


# --- GET verification -------------------------------------------------------------------------------


def _get(query: dict[str, str]) -> WebhookRequest:
    return request(b"", method="GET", query=query)


def test_get_with_the_right_token_echoes_the_challenge() -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": SECRETS["verify_token"]}
    response = adapter.handshake(_get(query), account(), SECRETS)
    assert response is not None
    assert (response.status, response.body, response.content_type) == (200, "1158201444", "text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "meatyhamhock"},
        {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1158201444", "hub.verify_token": SECRETS["verify_token"]},
        {"hub.challenge": "1158201444", "hub.verify_token": SECRETS["verify_token"]},
        {"hub.mode": "subscribe", "hub.verify_token": SECRETS["verify_token"]},
        {},
    ],
    ids=["wrong-token", "no-token", "wrong-mode", "no-mode", "no-challenge", "empty"],
)
def test_any_other_get_is_forbidden_without_echoing_the_token(query: dict[str, str]) -> None:
    with pytest.raises(Forbidden) as caught:
        adapter.handshake(_get(query), account(), SECRETS)
    error = caught.value
    assert error.status == 403
    body = error.response().body
    assert SECRETS["verify_token"] not in body
    assert "meatyhamhock" not in body


def test_post_is_not_a_handshake() -> None:
    assert adapter.handshake(request(VECTOR_BODY), account(), SECRETS) is None


# --- parse edge cases -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"object":"instagram","entry":[]}',
        b'{"entry":[]}',
        b'{"object":"page"}',
        b'{"object":"page","entry":{}}',
    ],
)
def test_a_body_that_is_not_a_page_webhook_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse(body)


def test_empty_entry_list_is_fine() -> None:
    assert parse(VECTOR_BODY) == ([], [])


def test_duplicate_mid_gives_the_same_envelope_id() -> None:
    first = parse(build_message(PAGE, U1, "hello", mid="m_same", now_ms=1718000000000))[0][0]
    again = parse(build_message(PAGE, U1, "hello", mid="m_same", now_ms=1718000009999))[0][0]
    assert first.id == again.id == "facebook:fb-store:m_same"
    assert first.dedupe_id == again.dedupe_id


def test_the_same_reaction_redelivered_keeps_its_id() -> None:
    body = (TESTDATA / "reaction.json").read_bytes()
    assert [e.id for e in parse(body)[0]] == [e.id for e in parse(body)[0]]


def test_receipts_never_become_messages_wherever_they_arrive() -> None:
    t = 1718000000000
    items = [
        {"sender": {"id": U1}, "recipient": {"id": PAGE}, "timestamp": t, "read": {"watermark": t - 1}},
        {"sender": {"id": U1}, "recipient": {"id": PAGE}, "delivery": {"watermark": t - 1}},
        {"sender": {"id": U2}, "recipient": {"id": PAGE}, "timestamp": t + 1, "delivery": {"mids": ["m_x"], "watermark": t}},
        {
            "sender": {"id": U2},
            "recipient": {"id": PAGE},
            "timestamp": t + 2,
            "message": {"mid": "m_after", "text": "still here"},
        },
    ]
    body = {"object": "page", "entry": [{"id": PAGE, "time": t, "messaging": items[:2], "standby": items[2:]}]}
    envelopes, skipped = parse(json.dumps(body).encode())
    assert [(e.id, e.kind) for e in envelopes] == [
        (f"facebook:fb-store:read:{U1}:{t - 1}", "receipt"),
        (f"facebook:fb-store:delivered:{U1}:{t - 1}", "receipt"),
        (f"facebook:fb-store:delivered:{U2}:{t}", "receipt"),
        ("facebook:fb-store:m_after", "text"),
    ]
    assert [e.data["receipt"] for e in envelopes if e.kind == "receipt"] == [
        {"status": "read", "platform_ids": [], "watermark": t - 1},
        {"status": "delivered", "platform_ids": [], "watermark": t - 1},
        {"status": "delivered", "platform_ids": ["m_x"], "watermark": t},
    ]
    assert all(e.text is None and not e.attachments for e in envelopes if e.kind == "receipt")
    assert all(e.data["receipt"]["status"] in RECEIPT_STATUSES for e in envelopes if e.kind == "receipt")
    assert skipped == []


def test_a_receipt_redelivered_keeps_its_id() -> None:
    body = (TESTDATA / "delivery.json").read_bytes()
    assert [e.id for e in parse(body)[0]] == [e.id for e in parse(body)[0]]


def test_a_message_or_postback_is_never_taken_for_a_receipt() -> None:
    t = 1718000000000
    message = {"sender": {"id": U1}, "timestamp": t, "message": {"mid": "m_1", "text": "hi"}, "read": {"watermark": t}}
    postback = {"sender": {"id": U1}, "timestamp": t, "postback": {"mid": "m_2", "payload": "GO"}, "delivery": {"watermark": t}}
    body = {"object": "page", "entry": [{"id": PAGE, "time": t, "messaging": [message, postback]}]}
    envelopes, skipped = parse(json.dumps(body).encode())
    assert [(e.kind, e.text) for e in envelopes] == [("text", "hi"), ("postback", "GO")]
    assert skipped == []


def test_echoes_never_become_customer_messages() -> None:
    envelopes, skipped = parse((TESTDATA / "echo.json").read_bytes())
    assert envelopes == []
    assert all("echo" in reason for reason in skipped)


def test_page_mismatch_is_skipped_not_refused() -> None:
    envelopes, skipped = parse((TESTDATA / "batched_2x3.json").read_bytes(), account(page_id="111111"))
    assert envelopes == []
    assert len(skipped) == 2


def test_an_account_without_a_page_id_accepts_no_entry() -> None:
    acct = Account(id="fb-store", channel="facebook", workstream="social", options={})
    envelopes, skipped = parse((TESTDATA / "batched_2x3.json").read_bytes(), acct)
    assert envelopes == []
    assert len(skipped) == 2


def test_batched_body_gives_one_envelope_per_item() -> None:
    envelopes, skipped = parse((TESTDATA / "batched_2x3.json").read_bytes())
    assert len(envelopes) == 6
    assert len({e.id for e in envelopes}) == 6
    assert skipped == []


def test_malformed_items_are_skipped_with_a_reason() -> None:
    body = {"object": "page", "entry": [7, {"id": PAGE, "messaging": "nope"}, {"id": PAGE, "messaging": [None]}]}
    envelopes, skipped = parse(json.dumps(body).encode())
    assert envelopes == []
    assert len(skipped) == 3


def test_unknown_items_are_kept_as_events() -> None:
    item = {"sender": {"id": U1}, "recipient": {"id": PAGE}, "timestamp": 1718000000000, "game_play": {"game_id": "g1"}}
    body = {"object": "page", "entry": [{"id": PAGE, "time": 1718000000001, "messaging": [item]}]}
    (envelope,), _ = parse(json.dumps(body).encode())
    assert envelope.kind == "event"
    assert envelope.data == {"event": "game_play", "game_play": {"game_id": "g1"}}
    assert envelope.id == f"facebook:fb-store:game_play:{U1}:1718000000000"


def test_settings_the_config_checks() -> None:
    assert FacebookAdapter.required_secrets == ("app_secret", "verify_token", "page_access_token")
    assert adapter.secrets_for({"page_id": PAGE}) == FacebookAdapter.required_secrets
    assert set(FacebookAdapter.settings_schema) == {"page_id", "allow_sha1", "graph_base_url"}
    assert FacebookAdapter.required_settings == ("page_id",)
    assert FacebookAdapter.settings_schema["allow_sha1"]["type"] == "boolean"
    assert FacebookAdapter.settings_schema["graph_base_url"]["$ref"] == "#/$defs/url"


def test_accepted_is_event_received() -> None:
    response = adapter.accepted(adapter.parse(request(VECTOR_BODY), account(), received_at=1, correlation_id="c"))
    assert (response.status, response.body, response.content_type) == (200, "EVENT_RECEIVED", "text/plain")


# --- build_message (switchboard send facebook) --------------------------------------------------------


def test_build_message_round_trips_through_verify_and_parse() -> None:
    body = build_message(PAGE, U1, "Hallo Welt \u2764 https://example.com/x", mid="m_cli", now_ms=1718000000123)
    assert b"\\/" in body
    assert b"\\u2764" in body
    signed = request(body, {"X-Hub-Signature-256": sign_sha256("app_secret", body)})
    adapter.verify(signed, account(), SECRETS)
    (envelope,), skipped = parse(body)
    assert skipped == []
    assert (envelope.kind, envelope.text, envelope.customer.id) == ("text", "Hallo Welt \u2764 https://example.com/x", U1)
    assert envelope.id == "facebook:fb-store:m_cli"
    assert envelope.sent_at == 1718000000123


def test_build_message_invents_a_fresh_mid() -> None:
    one = json.loads(build_message(PAGE, U1, "hi"))["entry"][0]["messaging"][0]["message"]["mid"]
    two = json.loads(build_message(PAGE, U1, "hi"))["entry"][0]["messaging"][0]["message"]["mid"]
    assert one != two
    assert one.startswith("m_")
