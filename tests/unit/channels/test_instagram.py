"""Instagram messaging webhooks: every recorded payload read into envelopes, Meta's checks, names and media.

The recorded payloads (``channels/testdata/instagram/``) follow the shapes of Meta's Instagram
Messaging webhook reference (messages, story replies and mentions, reactions, unsends, seen
receipts, postbacks, referrals, echoes) and courier's ``handlers/meta/testdata/ig``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from switchboard.channels.base import RECEIPT_STATUSES
from switchboard.channels.instagram import DEMO_IGSID, InstagramAdapter, build_message
from switchboard.channels.meta import GRAPH_VERSION, sign_sha1, sign_sha256
from switchboard.envelope import RECEIPT, UNSUPPORTED_TEXT, Attachment, Customer, Envelope
from switchboard.errors import BadRequest, Forbidden, Unauthorized
from switchboard.settings import Account
from switchboard.web import WebhookRequest

ROOT = Path(__file__).resolve().parents[3]
TESTDATA = ROOT / "src" / "switchboard" / "channels" / "testdata" / "instagram"
IG = "17841400000000000"
U1, U2 = "1254459154682919", "6420397128077123"
T = 1718000000000
RECEIVED_AT = 1718000009999
ADAPTER = InstagramAdapter()
ACCOUNT = Account(id="ig-brand", channel="instagram", workstream="social", options={"instagram_id": IG})
SECRETS = {"app_secret": "ig-app-secret-1a2b", "verify_token": "ig-verify-3c4d", "page_access_token": "ig-page-5e6f"}
CDN = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id="


@dataclass
class Expected:
    kind: str
    customer: str
    key: str  # the envelope id after "instagram:ig-brand:"
    text: str | None = None
    attachments: tuple[tuple[str, str | None], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # a subset the envelope's data must hold


LONG_MID = (
    "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAwOjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1OTQ0NTk3NjU4NzU1Mj"
    "I0OjMxNjYwNTg3NzU3NTQ5NjExMzI3NDM0MjY5MTk3MTI1NzYwAA"
)

CASES: list[tuple[str, list[Expected], list[str]]] = [
    (
        "message_text.json",
        [Expected("text", U1, LONG_MID, "Hi, is the blue jacket still in stock?", data={"quick_reply_payload": "STOCK_BLUE"})],
        [],
    ),
    (
        "message_attachments_media.json",
        [
            Expected(
                "image",
                U1,
                "m_ig_media",
                attachments=(
                    ("image", CDN + "17950000000000001&signature=AbcImage"),
                    ("video", CDN + "17950000000000002&signature=AbcVideo"),
                ),
            ),
            Expected("audio", U1, "m_ig_audio", attachments=(("audio", CDN + "17950000000000003&signature=AbcAudio"),)),
            Expected("file", U1, "m_ig_file", attachments=(("file", CDN + "17950000000000004&signature=AbcFile"),)),
            Expected("video", U1, "m_ig_reel", attachments=(("ig_reel", CDN + "18000000000000005&signature=AbcReel"),)),
        ],
        [],
    ),
    (
        "story_reply.json",
        [
            Expected(
                "text",
                U1,
                "m_ig_story_reply",
                "Love this one!",
                attachments=(("story", CDN + "17900000000000006&signature=AbcStory"),),
                data={"story_reply": {"id": "17900000000000006"}},
            )
        ],
        [],
    ),
    (
        "story_mention.json",
        [
            Expected(
                "event",
                U2,
                "m_ig_story_mention",
                attachments=(("story_mention", CDN + "17900000000000007&signature=AbcMention"),),
                data={"event": "story_mention", "story_mention": {"url": CDN + "17900000000000007&signature=AbcMention"}},
            )
        ],
        [],
    ),
    (
        "share.json",
        [
            Expected(
                "unsupported",
                U1,
                "m_ig_share",
                UNSUPPORTED_TEXT,
                attachments=(("share", "https://www.instagram.com/p/C7abcdefgh/"),),
                data={"shared": ["share"]},
            ),
            Expected(
                "text",
                U1,
                "m_ig_share_text",
                "this one please",
                attachments=(("share", "https://www.instagram.com/p/C7ijklmnop/"),),
            ),
        ],
        [],
    ),
    (
        "reaction.json",
        [
            Expected(
                "event",
                U1,
                "reaction:m_ig_business_reply:react:love",
                data={"event": "reaction", "reaction": {"emoji": "\u2764\ufe0f"}},
            ),
            Expected("event", U1, "reaction:m_ig_business_reply:unreact:", data={"event": "reaction"}),
        ],
        [],
    ),
    (
        "unsend.json",
        [Expected("event", U1, "unsend:m_ig_unsent", data={"event": "unsend", "unsend": {"mid": "m_ig_unsent"}})],
        [],
    ),
    ("unsupported.json", [Expected("unsupported", U2, "m_ig_unsupported", UNSUPPORTED_TEXT)], []),
    ("echo.json", [], ["entry[0].messaging[0] is an echo of the account's own message 'm_ig_echo'"]),
    (
        "read.json",
        [
            Expected(
                RECEIPT,
                U1,
                f"read:{U1}:m_ig_business_reply",
                data={"receipt": {"status": "read", "platform_ids": ["m_ig_business_reply"]}},
            )
        ],
        [],
    ),
    ("postback.json", [Expected("postback", U1, "postback:m_ig_postback", "TRACK_ORDER", data={"title": "Track my order"})], []),
    (
        "referral.json",
        [Expected("event", U2, f"referral:{U2}:{T}", data={"event": "referral", "referral": {"ref": "summer_sale"}})],
        [],
    ),
    (
        "other_account.json",
        [Expected("text", U1, "m_ig_ours", "for us")],
        ["entry[0] is for Instagram account '17841499999999999', not this account's Instagram account '17841400000000000'"],
    ),
]


def parse(body: bytes, account: Account = ACCOUNT) -> tuple[list[Envelope], list[str]]:
    request = WebhookRequest(method="POST", path="/", headers={}, query={}, path_params={}, body=body, request_id="r")
    result = ADAPTER.parse(request, account, received_at=RECEIVED_AT, correlation_id="corr-1")
    return result.envelopes, result.skipped


def _holds(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _holds(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


@pytest.mark.parametrize(("name", "expected", "skipped"), CASES, ids=[c[0] for c in CASES])
def test_recorded_payload(name: str, expected: list[Expected], skipped: list[str]) -> None:
    envelopes, reasons = parse((TESTDATA / name).read_bytes())
    assert len(envelopes) == len(expected), [e.id for e in envelopes]
    for envelope, want in zip(envelopes, expected, strict=True):
        assert (envelope.kind, envelope.text, envelope.customer.id) == (want.kind, want.text, want.customer)
        assert envelope.id == f"instagram:ig-brand:{want.key}"
        assert tuple((a.type, a.url) for a in envelope.attachments) == want.attachments
        assert _holds(envelope.data, want.data), envelope.data
        assert (envelope.channel, envelope.account_id, envelope.received_at) == ("instagram", "ig-brand", RECEIVED_AT)
        assert Envelope.from_json(envelope.to_json()) == envelope
    assert reasons == skipped


def test_every_recorded_payload_is_in_the_table() -> None:
    assert sorted(p.name for p in TESTDATA.glob("*.json")) == sorted(c[0] for c in CASES)


def test_receipts_and_echoes_never_become_customer_messages() -> None:
    for name in ("read.json", "echo.json"):
        envelopes, _ = parse((TESTDATA / name).read_bytes())
        for envelope in envelopes:
            assert envelope.kind == RECEIPT and envelope.text is None
            assert envelope.data["receipt"]["status"] in RECEIPT_STATUSES


def test_a_seen_receipt_by_watermark_keeps_it() -> None:
    item = {"sender": {"id": U1}, "recipient": {"id": IG}, "timestamp": T, "read": {"watermark": T - 5}}
    body = {"object": "instagram", "entry": [{"id": IG, "time": T, "messaging": [item]}]}
    [envelope], _ = parse(json.dumps(body).encode())
    assert envelope.data["receipt"] == {"status": "read", "platform_ids": [], "watermark": T - 5}


def test_the_same_delivery_twice_keeps_every_id() -> None:
    for name, *_ in CASES:
        body = (TESTDATA / name).read_bytes()
        assert [e.id for e in parse(body)[0]] == [e.id for e in parse(body)[0]]


def test_standby_items_are_marked_and_changes_are_not_messages() -> None:
    item = {"sender": {"id": U1}, "recipient": {"id": IG}, "timestamp": T, "message": {"mid": "m_sb", "text": "anyone?"}}
    body = {"object": "instagram", "entry": [{"id": IG, "time": T, "standby": [item], "changes": [{"field": "comments"}]}]}
    [envelope], skipped = parse(json.dumps(body).encode())
    assert envelope.data["standby"] is True and envelope.text == "anyone?"
    assert skipped == ["entry[0] holds 'changes' (comments, mentions in posts), not 'messaging' items"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"object": "page", "entry": []}',
        b'{"object": "instagram"}',
        b'{"object": "instagram", "entry": {}}',
        b"[]",
        b"not json",
    ],
)
def test_a_body_that_is_not_instagrams_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse(body)


def test_broken_items_are_skipped_with_a_reason_and_the_rest_kept() -> None:
    good = {"sender": {"id": U1}, "recipient": {"id": IG}, "timestamp": T, "message": {"mid": "m_ok", "text": "ok"}}
    body = {"object": "instagram", "entry": [7, {"id": IG, "messaging": ["x", good]}, {"id": IG, "messaging": {}}]}
    envelopes, skipped = parse(json.dumps(body).encode())
    assert [e.id for e in envelopes] == ["instagram:ig-brand:m_ok"]
    assert skipped == [
        "entry[0] is not an object",
        "entry[1].messaging[0] is not an object",
        "entry[2].messaging is not an array",
    ]


def test_an_account_without_its_instagram_id_records_nothing() -> None:
    bare = Account(id="ig-brand", channel="instagram", workstream="social")
    envelopes, skipped = parse((TESTDATA / "message_text.json").read_bytes(), bare)
    assert envelopes == [] and len(skipped) == 1


# -- Meta's checks, shared with Messenger (channels/meta.py) ---------------------------------------------


def request(
    method: str, body: bytes = b"", headers: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> WebhookRequest:
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return WebhookRequest(method=method, path="/", headers=lowered, query=query or {}, path_params={}, body=body, request_id="r")


def test_the_subscription_check_answers_the_challenge_only_for_our_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": SECRETS["verify_token"], "hub.challenge": "1158201444"}
    answer = ADAPTER.handshake(request("GET", query=query), ACCOUNT, SECRETS)
    assert answer is not None and (answer.status, answer.body) == (200, "1158201444")
    with pytest.raises(Forbidden):
        ADAPTER.handshake(request("GET", query={**query, "hub.verify_token": "guess"}), ACCOUNT, SECRETS)
    with pytest.raises(Forbidden):
        ADAPTER.handshake(request("GET", query={**query, "hub.mode": "unsubscribe"}), ACCOUNT, SECRETS)
    assert ADAPTER.handshake(request("POST"), ACCOUNT, SECRETS) is None


def test_only_a_body_signed_with_the_app_secret_verifies() -> None:
    body = (TESTDATA / "message_text.json").read_bytes()
    ADAPTER.verify(request("POST", body, {"X-Hub-Signature-256": sign_sha256(SECRETS["app_secret"], body)}), ACCOUNT, SECRETS)
    with pytest.raises(Unauthorized):
        ADAPTER.verify(request("POST", body, {"X-Hub-Signature-256": sign_sha256("wrong", body)}), ACCOUNT, SECRETS)
    with pytest.raises(Unauthorized):
        ADAPTER.verify(request("POST", body + b" "), ACCOUNT, SECRETS)
    sha1 = {"X-Hub-Signature": sign_sha1(SECRETS["app_secret"], body)}
    with pytest.raises(Unauthorized):
        ADAPTER.verify(request("POST", body, sha1), ACCOUNT, SECRETS)
    allowing = Account(id="ig-brand", channel="instagram", workstream="social", options={"instagram_id": IG, "allow_sha1": True})
    ADAPTER.verify(request("POST", body, sha1), allowing, SECRETS)


def test_simulate_signs_a_delivery_that_parses_as_the_accounts_message() -> None:
    stored = {"id": "ig-brand", "channel": "instagram", "instagram_id": IG}
    sent = ADAPTER.simulate(stored, SECRETS, text="héllo/there", user=None, event_id="m_replay")
    assert sent.path == "/webhooks/instagram/ig-brand"
    ADAPTER.verify(request("POST", sent.body, dict(sent.headers)), ACCOUNT, SECRETS)
    [envelope], _ = parse(sent.body)
    assert (envelope.id, envelope.text, envelope.customer.id) == ("instagram:ig-brand:m_replay", "héllo/there", DEMO_IGSID)
    assert b"\\/" in build_message(IG, U1, "a/b") and b"\\u00e9" in build_message(IG, U1, "\u00e9")


# -- names and media, looked up off the webhook's path ------------------------------------------------


def test_the_profile_look_up_is_versioned_with_name_and_username_and_a_proof() -> None:
    envelope = parse((TESTDATA / "message_text.json").read_bytes())[0][0]
    fetch = ADAPTER.profile_request(envelope, ACCOUNT, SECRETS)
    assert fetch is not None
    assert fetch.url == f"https://graph.facebook.com/{GRAPH_VERSION}/{U1}"
    token = SECRETS["page_access_token"]
    proof = hmac.new(SECRETS["app_secret"].encode(), token.encode(), hashlib.sha256).hexdigest()
    assert fetch.params == {"fields": "name,username", "access_token": token, "appsecret_proof": proof}
    assert token not in fetch.target


def test_a_receipt_needs_no_name() -> None:
    envelope = parse((TESTDATA / "read.json").read_bytes())[0][0]
    assert ADAPTER.profile_request(envelope, ACCOUNT, SECRETS) is None


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"name": "Peter Chang", "username": "peter.chang", "id": U1}, "Peter Chang"),
        ({"name": " ", "username": "peter.chang"}, "peter.chang"),
        ({"username": "peter.chang"}, "peter.chang"),
        ({}, None),
        ([], None),
    ],
)
def test_the_name_is_the_profiles_name_else_its_username(body: Any, name: str | None) -> None:
    assert ADAPTER.profile_name(body) == name


def test_media_and_stories_are_kept_and_shares_are_not() -> None:
    for atype, kept in [("image", True), ("story", True), ("story_mention", True), ("ig_reel", True), ("share", False)]:
        attachment = Attachment(type=atype, url=CDN + "1")
        assert (ADAPTER.attachment_request(attachment, ACCOUNT, SECRETS) is not None) is kept, atype


def test_an_unknown_customer_id_has_no_profile_look_up() -> None:
    envelope = Envelope(
        id="x", channel="instagram", account_id="ig-brand", customer=Customer(id="unknown"), kind="text", text="t",
        sent_at=T, received_at=T, correlation_id="c",
    )  # fmt: skip
    assert ADAPTER.profile_request(envelope, ACCOUNT, SECRETS) is None


def test_the_profile_look_up_against_the_fake_platform_names_the_customer() -> None:
    from fakes.platform import FakePlatform

    from switchboard import outbound_http

    with FakePlatform() as platform:
        platform.page_token(SECRETS["page_access_token"], SECRETS["app_secret"])
        platform.instagram_profile(U1, None, "peter.chang")
        account = Account(
            id="ig-brand", channel="instagram", workstream="social", options={"instagram_id": IG, "graph_base_url": platform.url}
        )
        envelope = parse((TESTDATA / "message_text.json").read_bytes())[0][0]
        fetch = ADAPTER.profile_request(envelope, account, SECRETS)
        assert fetch is not None
        answer = outbound_http.Client(outbound_http.LOCAL).request(
            "GET", fetch.url, limits=outbound_http.Limits(deadline=5.0, max_bytes=4096), params=dict(fetch.params)
        )
        assert answer.ok, answer.status
        assert ADAPTER.profile_name(answer.json()) == "peter.chang"
