"""Facebook Messenger through the real HTTP edge of the local stack: Meta's GET check, signatures, batches, echoes, pages."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
import requests

from switchboard.channels.facebook import FacebookAdapter, sign_sha1, sign_sha256
from switchboard.envelope import RECEIPT, Envelope
from switchboard.settings import Account
from switchboard.web import WebhookRequest

from ._stack import ROOT, Stack

pytestmark = pytest.mark.e2e

FB, FB_SHA1 = "e2e-fb", "e2e-fb-sha1"
TESTDATA = ROOT / "src" / "switchboard" / "channels" / "testdata" / "facebook"
OTHER_PAGE = "998877665544332"  # the other page in testdata/facebook/other_page.json
# Kinds the attachments stage may turn into `unsupported` when a file breaks the account's limits.
MEDIA_KINDS = {"image", "video", "audio", "file", "sticker"}


def new_psid() -> str:
    """A page-scoped id of the real shape (16 digits), unique per test."""
    return str(10**15 + uuid.uuid4().int % (9 * 10**15))


def page_of(stack: Stack, account_id: str) -> str:
    return str(next(a for a in stack.config["accounts"] if a["id"] == account_id)["page_id"])


def meta_bytes(doc: dict[str, Any]) -> bytes:
    """Serialised as Meta sends it (\\uXXXX and \\/ escapes): signatures must hold over exactly these bytes."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


def item(psid: str, page: str, timestamp: int, **event: Any) -> dict[str, Any]:
    return {"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": timestamp, **event}


def text_item(psid: str, page: str, timestamp: int, text: str, mid: str | None = None) -> dict[str, Any]:
    return item(psid, page, timestamp, message={"mid": mid or "m_" + uuid.uuid4().hex, "text": text})


def page_body(*entries: tuple[str, list[dict[str, Any]]]) -> bytes:
    now = int(time.time() * 1000)
    return meta_bytes({"object": "page", "entry": [{"id": page, "time": now, "messaging": items} for page, items in entries]})


def accepted(answer: requests.Response) -> None:
    assert (answer.status_code, answer.text) == (200, "EVENT_RECEIVED"), answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")


def error_of(answer: requests.Response) -> str:
    assert answer.headers["Content-Type"] == "application/json"
    payload = answer.json()
    assert set(payload) == {"error", "message"}, payload
    return str(payload["error"])


def view_of(view: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(m["id"], m["kind"], m["text"]) for m in view["messages"]]


# -- GET verification ------------------------------------------------------------------------------


def test_get_with_the_verify_token_echoes_the_challenge_as_plain_text(stack: Stack) -> None:
    token = stack.account_secrets(FB)["verify_token"]
    answer = requests.get(
        f"{stack.url}/webhooks/facebook/{FB}",
        params={"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": token},
        timeout=10,
    )
    assert (answer.status_code, answer.text) == (200, "1158201444")
    assert answer.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": "wrong-token"},
        {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": "<sha1 account's token>"},
        {"hub.mode": "unsubscribe", "hub.challenge": "42", "hub.verify_token": "<token>"},
        {"hub.mode": "subscribe", "hub.challenge": "42"},
        {"hub.mode": "subscribe", "hub.verify_token": "<token>"},
        {},
    ],
    ids=["wrong-token", "other-accounts-token", "not-subscribe", "no-token", "no-challenge", "nothing"],
)
def test_any_other_get_is_403_and_repeats_no_token(stack: Stack, query: dict[str, str]) -> None:
    token = stack.account_secrets(FB)["verify_token"]
    other = stack.account_secrets(FB_SHA1)["verify_token"]
    sent = {k: v.replace("<token>", token).replace("<sha1 account's token>", other) for k, v in query.items()}
    answer = requests.get(f"{stack.url}/webhooks/facebook/{FB}", params=sent, timeout=10)
    assert answer.status_code == 403
    assert error_of(answer) == "forbidden"
    assert token not in answer.text and other not in answer.text and "42" not in answer.text


def test_unknown_account_is_404_for_get_and_post(stack: Stack) -> None:
    token = stack.account_secrets(FB)["verify_token"]
    answer = requests.get(
        f"{stack.url}/webhooks/facebook/no-such-page",
        params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": token},
        timeout=10,
    )
    assert (answer.status_code, error_of(answer)) == (404, "not_found")
    body = page_body((page_of(stack, FB), [text_item(new_psid(), page_of(stack, FB), 1, "hi")]))
    answer = requests.post(
        f"{stack.url}/webhooks/facebook/no-such-page",
        data=body,
        headers={"X-Hub-Signature-256": sign_sha256(stack.account_secrets(FB)["app_secret"], body)},
        timeout=10,
    )
    assert (answer.status_code, error_of(answer)) == (404, "not_found")


# -- POST signatures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account_id", "how", "error"),
    [
        (FB, "none", "missing_signature"),
        (FB, "sha256-other-secret", "invalid_signature"),
        (FB, "sha256-tampered", "invalid_signature"),
        (FB, "sha1-only", "invalid_signature"),  # allow_sha1: false
        (FB, "sha256-wrong-sha1-right", "invalid_signature"),  # a wrong -256 is not rescued by a right sha1
        (FB_SHA1, "sha1-wrong", "invalid_signature"),
        (FB_SHA1, "none", "missing_signature"),
    ],
)
def test_unsigned_or_badly_signed_post_is_401_and_records_nothing(stack: Stack, account_id: str, how: str, error: str) -> None:
    page = page_of(stack, account_id)
    bad_user = new_psid()
    body = page_body((page, [text_item(bad_user, page, int(time.time() * 1000), "you should never see this")]))
    secret = stack.account_secrets(account_id)["app_secret"]
    other = stack.account_secrets(FB_SHA1 if account_id == FB else FB)["app_secret"]
    headers = {
        "none": {},
        "sha256-other-secret": {"X-Hub-Signature-256": sign_sha256(other, body)},
        "sha256-tampered": {"X-Hub-Signature-256": sign_sha256(secret, body + b" ")},
        "sha1-only": {"X-Hub-Signature": sign_sha1(secret, body)},
        "sha256-wrong-sha1-right": {"X-Hub-Signature-256": sign_sha256(other, body), "X-Hub-Signature": sign_sha1(secret, body)},
        "sha1-wrong": {"X-Hub-Signature": sign_sha1(other, body)},
    }[how]
    answer = stack.post_facebook(account_id, body, headers=headers)
    assert answer.status_code == 401
    assert error_of(answer) == error
    assert secret not in answer.text

    # A later, valid message on the same account gets through; by then the refused one would have too.
    good_user = new_psid()
    accepted(stack.post_facebook(account_id, page_body((page, [text_item(good_user, page, 1, "after the bad one")]))))
    stack.wait_conversation(account_id, good_user)
    assert [r for r in stack.conversations() if r["customer"]["id"] == bad_user] == []


def test_sha1_only_is_accepted_where_the_account_allows_it(stack: Stack) -> None:
    page, user = page_of(stack, FB_SHA1), new_psid()
    body = page_body((page, [text_item(user, page, int(time.time() * 1000), "signed the old way", mid="m_sha1_" + user)]))
    accepted(
        stack.post_facebook(
            FB_SHA1, body, headers={"X-Hub-Signature": sign_sha1(stack.account_secrets(FB_SHA1)["app_secret"], body)}
        )
    )
    view = stack.wait_conversation(FB_SHA1, user)
    assert view_of(view) == [(f"facebook:{FB_SHA1}:m_sha1_{user}", "text", "signed the old way")]


# -- what is recorded ------------------------------------------------------------------------------


def test_batched_payload_of_two_entries_by_three_items_is_recorded_whole(stack: Stack) -> None:
    page, u1, u2 = page_of(stack, FB), new_psid(), new_psid()
    t = int(time.time() * 1000)
    postback = {"mid": f"m_pb_{u1}", "title": "Track my order", "payload": "TRACK_ORDER"}
    quick = {"mid": f"m_qr_{u2}", "text": "Yes please", "quick_reply": {"payload": "YES"}}
    body = page_body(
        (
            page,
            [
                text_item(u1, page, t, "batch one", mid=f"m_1_{u1}"),
                text_item(u2, page, t + 1, "batch two", mid=f"m_2_{u2}"),
                item(u1, page, t + 2, postback=postback),
            ],
        ),
        (
            page,
            [
                item(u2, page, t + 10, message=quick),
                text_item(u1, page, t + 11, "batch five", mid=f"m_5_{u1}"),
                item(u2, page, t + 12, read={"watermark": t + 1}),
            ],
        ),
    )
    answer = stack.post_facebook(FB, body)
    accepted(answer)

    first = stack.wait_conversation(FB, u1, messages=3)
    second = stack.wait_conversation(FB, u2, messages=2)
    assert view_of(first) == [
        (f"facebook:{FB}:m_1_{u1}", "text", "batch one"),
        (f"facebook:{FB}:m_pb_{u1}", "postback", "TRACK_ORDER"),
        (f"facebook:{FB}:m_5_{u1}", "text", "batch five"),
    ]
    assert first["messages"][1]["data"]["title"] == "Track my order"
    assert view_of(second) == [
        (f"facebook:{FB}:m_2_{u2}", "text", "batch two"),
        (f"facebook:{FB}:m_qr_{u2}", "text", "Yes please"),
    ]  # u2's read receipt is not a message (interface section 4)
    assert second["messages"][1]["data"]["quick_reply_payload"] == "YES"
    for view, user in ((first, u1), (second, u2)):
        assert (view["channel"], view["account_id"], view["customer"]["id"]) == ("facebook", FB, user)
        assert (view["workstream"], view["queue"]) == ("social", "general")
    assert [r["message_count"] for r in stack.conversations_of(FB, u1)] == [3]
    assert [r["message_count"] for r in stack.conversations_of(FB, u2)] == [2]


def test_echoes_are_never_customer_messages(stack: Stack) -> None:
    page, user = page_of(stack, FB), new_psid()
    t = int(time.time() * 1000)
    echo = {
        "is_echo": True,
        "app_id": 1517776481860111,
        "metadata": "agent:42",
        "mid": f"m_echo_{user}",
        "text": "Your order ships today.",
    }
    body = meta_bytes(
        {
            "object": "page",
            "entry": [
                {
                    "id": page,
                    "time": t,
                    # The page's own message: sender is the page, recipient the customer.
                    "messaging": [{"sender": {"id": page}, "recipient": {"id": user}, "timestamp": t, "message": echo}],
                    "standby": [
                        {
                            "sender": {"id": page},
                            "recipient": {"id": user},
                            "timestamp": t + 1,
                            "message": {**echo, "mid": f"m_echo2_{user}"},
                        }
                    ],
                },
                {"id": page, "time": t + 5, "messaging": [text_item(user, page, t + 5, "thanks!", mid=f"m_thanks_{user}")]},
            ],
        }
    )
    accepted(stack.post_facebook(FB, body))
    view = stack.wait_conversation(FB, user)
    assert view_of(view) == [(f"facebook:{FB}:m_thanks_{user}", "text", "thanks!")]
    assert stack.conversations_of(FB, page) == []  # the page never becomes a customer


def test_a_duplicate_mid_is_recorded_once(stack: Stack) -> None:
    page, user = page_of(stack, FB), new_psid()
    t = int(time.time() * 1000)
    mid = f"m_dup_{user}"
    body = page_body((page, [text_item(user, page, t, "only once", mid=mid)]))
    for _ in range(2):  # the same delivery twice
        accepted(stack.post_facebook(FB, body))
    # Meta's retry may batch it differently: same mid, another entry time, next to another page's entry.
    rebatched = meta_bytes(
        {
            "object": "page",
            "entry": [
                {"id": OTHER_PAGE, "time": t + 99, "messaging": [text_item(user, OTHER_PAGE, t, "not ours")]},
                {"id": page, "time": t + 100, "messaging": [text_item(user, page, t, "only once", mid=mid)]},
            ],
        }
    )
    accepted(stack.post_facebook(FB, rebatched))
    replay = stack.cli("send", "facebook", "--account", FB, "--text", "only once", "--user", user, "--event-id", mid)
    assert replay.stdout.strip() == "200 EVENT_RECEIVED"
    # A later message of the same customer: same FIFO group, so any duplicate would be stored before it.
    accepted(stack.post_facebook(FB, page_body((page, [text_item(user, page, t + 1000, "the next one", mid=f"m_next_{user}")]))))

    view = stack.wait_conversation(FB, user, messages=2)
    assert view_of(view) == [
        (f"facebook:{FB}:{mid}", "text", "only once"),
        (f"facebook:{FB}:m_next_{user}", "text", "the next one"),
    ]
    (row,) = stack.conversations_of(FB, user)
    assert row["message_count"] == 2


def test_entries_for_another_page_are_skipped_not_refused(stack: Stack) -> None:
    page, user = page_of(stack, FB), new_psid()
    t = int(time.time() * 1000)
    only_other = page_body((OTHER_PAGE, [text_item(user, OTHER_PAGE, t, "for someone else")]))
    accepted(stack.post_facebook(FB, only_other))
    mixed = page_body(
        (OTHER_PAGE, [text_item(user, OTHER_PAGE, t + 1, "also for someone else")]),
        (page, [text_item(user, page, t + 2, "for us", mid=f"m_ours_{user}")]),
    )
    accepted(stack.post_facebook(FB, mixed))
    view = stack.wait_conversation(FB, user)
    assert view_of(view) == [(f"facebook:{FB}:m_ours_{user}", "text", "for us")]
    # To the sha1 account (another app: another app secret), e2e-fb's page is no sibling's: skipped there too.
    accepted(stack.post_facebook(FB_SHA1, page_body((page, [text_item(user, page, t + 3, "wrong page")]))))
    good = new_psid()
    sha1_page = page_of(stack, FB_SHA1)
    accepted(stack.post_facebook(FB_SHA1, page_body((sha1_page, [text_item(good, sha1_page, t + 4, "right page")]))))
    stack.wait_conversation(FB_SHA1, good)
    assert stack.conversations_of(FB_SHA1, user) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"object":"instagram","entry":[]}',
        b'{"object":"page"}',
        b'{"object":"page","entry":{}}',
        b"not json",
        b"[]",
    ],
)
def test_signed_but_not_a_page_webhook_is_400(stack: Stack, body: bytes) -> None:
    answer = stack.post_facebook(FB, body)
    assert (answer.status_code, error_of(answer)) == (400, "bad_request")


def test_receipts_are_acknowledged_and_never_stored(stack: Stack) -> None:
    page, user = page_of(stack, FB), new_psid()
    t = int(time.time() * 1000)
    receipts = page_body((page, [item(user, page, t, read={"watermark": t}), item(user, page, t + 1, delivery={"watermark": t})]))
    accepted(stack.post_facebook(FB, receipts))
    # A later message of the same customer: same FIFO group, so a receipt would be stored before it.
    accepted(stack.post_facebook(FB, page_body((page, [text_item(user, page, t + 2, "after the receipts", mid=f"m_r_{user}")]))))
    view = stack.wait_conversation(FB, user)
    assert view_of(view) == [(f"facebook:{FB}:m_r_{user}", "text", "after the receipts")]
    assert [r["message_count"] for r in stack.conversations_of(FB, user)] == [1]


def test_a_signed_body_nested_too_deep_is_400(stack: Stack) -> None:
    page, user = page_of(stack, FB), new_psid()
    body = page_body((page, [text_item(user, page, int(time.time() * 1000), "deep", mid=f"m_deep_{user}")]))
    for depth in (30, 5000):
        deep = body[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
        answer = stack.post_facebook(FB, deep)
        assert (answer.status_code, error_of(answer)) == (400, "bad_request"), depth


def test_an_empty_entry_list_is_acknowledged(stack: Stack) -> None:
    accepted(stack.post_facebook(FB, b'{"object":"page","entry":[]}'))


def test_send_facebook_signs_with_the_stored_app_secret(stack: Stack) -> None:
    user = new_psid()
    sent = stack.cli("send", "facebook", "--account", FB, "--text", "hello from the command, caf\u00e9 / ok", "--user", user)
    assert sent.stdout.strip() == "200 EVENT_RECEIVED"
    view = stack.wait_conversation(FB, user)
    ((message_id, kind, text),) = view_of(view)
    assert message_id.startswith(f"facebook:{FB}:m_")
    assert (kind, text) == ("text", "hello from the command, caf\u00e9 / ok")
    assert view["customer"]["id"] == user
    # The sha1 account gets both signatures too, as Meta sends them.
    other = new_psid()
    assert (
        stack.cli("send", "facebook", "--account", FB_SHA1, "--text", "hi", "--user", other).stdout.strip()
        == "200 EVENT_RECEIVED"
    )
    stack.wait_conversation(FB_SHA1, other)


def test_send_facebook_to_an_account_of_another_channel_fails_clearly(stack: Stack) -> None:
    done = stack.cli("send", "facebook", "--account", "e2e-line-a", "--text", "hi", check=False)
    assert done.returncode == 2
    assert "no facebook account 'e2e-line-a'" in done.stderr


# -- the recorded payloads, table-driven through the HTTP edge -------------------------------------


def freshened(doc: Any, ids: dict[str, str]) -> Any:
    """The payload with each customer id swapped for a fresh one, so every run starts new conversations."""
    if isinstance(doc, dict):
        return {k: freshened(v, ids) for k, v in doc.items()}
    if isinstance(doc, list):
        return [freshened(v, ids) for v in doc]
    return ids.get(doc, doc) if isinstance(doc, str) else doc


def customer_ids(doc: dict[str, Any], page: str) -> set[str]:
    found: set[str] = set()
    for entry in doc.get("entry", []):
        for stream in ("messaging", "standby"):
            for it in entry.get(stream, []):
                for party in ("sender", "recipient"):
                    found.update(str(v) for k, v in it.get(party, {}).items() if k in ("id", "user_ref"))
                found.update([str(it["optin"]["user_ref"])] if "user_ref" in it.get("optin", {}) else [])
    return found - {page, OTHER_PAGE}


def expected_envelopes(body: bytes, account: Account) -> list[Envelope]:
    """The messages a body stores: receipts only move our replies' delivery and are never messages."""
    request = WebhookRequest("POST", "", {}, {}, {}, body, "")
    envelopes = FacebookAdapter().parse(request, account, received_at=0, correlation_id="").envelopes
    return [e for e in envelopes if e.kind != RECEIPT]


@pytest.mark.parametrize("name", sorted(p.name for p in TESTDATA.glob("*.json")))
def test_recorded_payload_through_the_http_edge(stack: Stack, name: str) -> None:
    page = page_of(stack, FB)
    original = json.loads((TESTDATA / name).read_bytes())
    ids = {old: new_psid() for old in sorted(customer_ids(original, page))}
    assert ids, "every recorded payload names a customer"
    body = meta_bytes(freshened(original, ids))
    account = Account(id=FB, channel="facebook", workstream="social", options={"page_id": page})
    expected: dict[str, list[Envelope]] = defaultdict(list)
    for envelope in expected_envelopes(body, account):
        expected[envelope.customer.id].append(envelope)

    accepted(stack.post_facebook(FB, body))

    for user in ids.values():
        wanted = sorted(expected.get(user, []), key=lambda e: e.sent_at)  # stable: arrival order breaks ties
        if not wanted:  # an echo or another page's entry: nothing of this customer may appear
            barrier = f"m_barrier_{user}"
            accepted(
                stack.post_facebook(FB, page_body((page, [text_item(user, page, int(time.time() * 1000), "barrier", barrier)])))
            )
            view = stack.wait_stored(FB, user)
            assert [m["id"] for m in view["messages"]] == [f"facebook:{FB}:{barrier}"]
            continue
        view = stack.wait_stored(FB, user, messages=len(wanted))
        got = view["messages"]
        assert [m["id"] for m in got] == [e.id for e in wanted]
        for message, envelope in zip(got, wanted, strict=True):
            assert [a["type"] for a in message["attachments"]] == [a.type for a in envelope.attachments]
            if envelope.kind in MEDIA_KINDS:
                assert message["kind"] in (envelope.kind, "unsupported")
            else:
                assert (message["kind"], message["text"]) == (envelope.kind, envelope.text)
        (row,) = stack.conversations_of(FB, user)
        assert row["message_count"] == len(wanted)
