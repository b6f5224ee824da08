"""Google Business Messages through the real HTTP edge of the local stack: handshake, both signing keys, payload kinds.

GBM was shut down on 2024-07-31; these deliveries are what an archive replay sends.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fakes.platform import FakePlatform

from switchboard.channels.gbm import GbmAdapter, build_message
from switchboard.channels.gbm import sign as sign_gbm
from switchboard.envelope import Envelope
from switchboard.settings import Account
from switchboard.web import WebhookRequest

from ._stack import ROOT, Stack, dump_config, wait_for

pytestmark = pytest.mark.e2e

GBM, PARTNER = "e2e-gbm", "e2e-gbm-partner"
# The agents of tests/e2e/config.yaml's two accounts, as Google names them in each delivery.
AGENTS = {GBM: "brands/e2e-brand/agents/e2e-agent", PARTNER: "brands/e2e-brand/agents/e2e-agent-partner"}
TESTDATA = ROOT / "src" / "switchboard" / "channels" / "testdata" / "gbm"


def new_conversation() -> str:
    return str(uuid.uuid4())


def message(
    conversation: str,
    text: str,
    *,
    message_id: str | None = None,
    name: str | None = "Kevin Neubert",
    now_ms: int | None = None,
    to: str = GBM,
) -> bytes:
    """A user message for account ``to``'s agent, as Google sends it."""
    agent_id = AGENTS[to].rpartition("/agents/")[2]
    return build_message(
        conversation, text, brand_id="e2e-brand", agent_id=agent_id, display_name=name, message_id=message_id, now_ms=now_ms
    )


def status(conversation: str, **user_status: Any) -> bytes:
    # Millisecond precision, as Google stamps: a status truncated to the second could sort before the
    # message sent just before it (messages are stored in the order they were sent).
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}000Z"
    body = {
        "agent": "brands/e2e-brand/agents/e2e-agent",
        "conversationId": conversation,
        "customAgentId": "",
        "requestId": str(uuid.uuid4()).upper(),
        "userStatus": {**user_status, "createTime": stamp},
        "context": {"userInfo": {"displayName": "Kevin Neubert", "userDeviceLocale": "en-US"}, "resolvedLocale": "en"},
        "sendTime": stamp,
    }
    return json.dumps(body).encode()


def ok(answer: requests.Response) -> None:
    assert (answer.status_code, answer.text) == (200, "{}"), answer.text
    assert answer.headers["Content-Type"] == "application/json"


def error_of(answer: requests.Response) -> str:
    assert answer.headers["Content-Type"] == "application/json"
    payload = answer.json()
    assert set(payload) == {"error", "message"}, payload
    return str(payload["error"])


def texts(view: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(m["kind"], m["text"]) for m in view["messages"]]


# -- the verification handshake ----------------------------------------------------------------------


@pytest.mark.parametrize("account_id", [GBM, PARTNER])
def test_handshake_with_the_client_token_answers_the_secret_as_plain_text(stack: Stack, account_id: str) -> None:
    token = stack.account_secrets(account_id)["client_token"]
    body = json.dumps({"clientToken": token, "secret": "0123456789"}).encode()
    answer = stack.post_gbm(account_id, body, key=None)  # Google does not sign the handshake
    assert (answer.status_code, answer.text) == (200, "0123456789")
    assert answer.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("token", ["WRONGCLIENTTOKEN", "<partner account's token>", "<partner key>"])
def test_handshake_with_another_token_is_401_and_echoes_nothing(stack: Stack, token: str) -> None:
    token = {
        "<partner account's token>": stack.account_secrets(PARTNER)["client_token"],
        "<partner key>": stack.account_secrets(PARTNER)["partner_key"],
    }.get(token, token)
    body = json.dumps({"clientToken": token, "secret": "s3cr3t-echo-9876"}).encode()
    answer = stack.post_gbm(GBM, body, key=None)
    assert answer.status_code == 401
    assert error_of(answer) == "invalid_client_token"
    assert "s3cr3t-echo-9876" not in answer.text and token not in answer.text


def test_handshake_for_an_unknown_account_is_404(stack: Stack) -> None:
    body = json.dumps({"clientToken": stack.account_secrets(GBM)["client_token"], "secret": "1"}).encode()
    answer = stack.post_gbm("no-such-agent", body, key=None)
    assert (answer.status_code, error_of(answer)) == (404, "not_found")


# -- signatures ------------------------------------------------------------------------------------


def test_client_token_account_records_a_signed_message_with_the_customers_name(stack: Stack) -> None:
    conversation = new_conversation()
    ok(stack.post_gbm(GBM, message(conversation, "hello there", message_id=f"msg-{conversation}")))
    view = stack.wait_conversation(GBM, conversation)
    assert [(m["id"], m["kind"], m["text"]) for m in view["messages"]] == [
        (f"gbm:{GBM}:msg-{conversation}", "text", "hello there")
    ]
    assert (view["channel"], view["account_id"], view["customer"]) == ("gbm", GBM, {"id": conversation, "name": "Kevin Neubert"})
    assert (view["workstream"], view["queue"], view["requested_live_agent"]) == ("social", "general", False)


def test_a_partner_key_account_verifies_with_the_partner_key(stack: Stack) -> None:
    conversation = new_conversation()
    refused = stack.post_gbm(PARTNER, message(conversation, "signed with the client token", to=PARTNER), key="client_token")
    assert (refused.status_code, error_of(refused)) == (401, "invalid_signature")
    ok(stack.post_gbm(PARTNER, message(conversation, "signed with the partner key", to=PARTNER), key="partner_key"))
    view = stack.wait_conversation(PARTNER, conversation)
    assert texts(view) == [("text", "signed with the partner key")]


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("none", "missing_signature"),
        ("partner-accounts-key", "invalid_signature"),
        ("partner-accounts-client-token", "invalid_signature"),
        ("tampered", "invalid_signature"),
        ("hex-not-base64", "invalid_signature"),
    ],
)
def test_unsigned_or_badly_signed_delivery_is_401_and_records_nothing(stack: Stack, how: str, error: str) -> None:
    import base64
    import hashlib
    import hmac

    from switchboard.channels.gbm import sign

    bad = new_conversation()
    body = message(bad, "you should never see this")
    own = stack.account_secrets(GBM)["client_token"]
    headers = {
        "none": {},
        "partner-accounts-key": {"X-Goog-Signature": sign(stack.account_secrets(PARTNER)["partner_key"], body)},
        "partner-accounts-client-token": {"X-Goog-Signature": sign(stack.account_secrets(PARTNER)["client_token"], body)},
        "tampered": {"X-Goog-Signature": sign(own, body + b" ")},
        "hex-not-base64": {"X-Goog-Signature": hmac.new(own.encode(), body, hashlib.sha512).hexdigest()},
    }[how]
    assert base64.b64decode(sign(own, body))  # the right signature is base64, as Google sends it
    answer = stack.post_gbm(GBM, body, key=None, headers=headers)
    assert (answer.status_code, error_of(answer)) == (401, error)
    assert own not in answer.text

    good = new_conversation()
    ok(stack.post_gbm(GBM, message(good, "after the bad one")))
    stack.wait_conversation(GBM, good)
    assert [r for r in stack.conversations() if r["customer"]["id"] == bad] == []


@pytest.mark.parametrize("body", [b'{"message":{"text":"no conversation"}}', b"not json", b"[]", b'{"conversationId":""}'])
def test_signed_but_not_a_gbm_body_is_400(stack: Stack, body: bytes) -> None:
    answer = stack.post_gbm(GBM, body)
    assert (answer.status_code, error_of(answer)) == (400, "bad_request")


def test_bodies_nested_too_deep_are_refused_not_a_crash(stack: Stack) -> None:
    conversation = new_conversation()
    # Unsigned and small enough to be read as the set-up body: not a handshake, so unsigned, so 401.
    handshake = ('{"clientToken":"x","secret":' + "[" * 2000 + "]" * 2000 + "}").encode()
    assert len(handshake) <= 4096
    answer = stack.post_gbm(GBM, handshake, key=None)
    assert (answer.status_code, error_of(answer)) == (401, "missing_signature")
    # Signed: 400, whatever the depth past the limit.
    body = message(conversation, "deep")
    for depth in (30, 5000):
        deep = body[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
        answer = stack.post_gbm(GBM, deep)
        assert (answer.status_code, error_of(answer)) == (400, "bad_request"), depth


def test_a_delivery_for_another_agent_is_acknowledged_but_not_recorded(stack: Stack) -> None:
    """The partner key signs for every agent: e2e-gbm's delivery, signed with it, is not e2e-gbm-partner's."""
    conversation = new_conversation()
    replayed = message(conversation, "meant for e2e-agent", message_id=f"replayed-{conversation}")
    ok(stack.post_gbm(PARTNER, replayed, key="partner_key"))
    # The same customer's next delivery to the partner account's own agent: a recorded replay would come first.
    own = message(conversation, "meant for e2e-agent-partner", message_id=f"own-{conversation}", to=PARTNER)
    ok(stack.post_gbm(PARTNER, own, key="partner_key"))
    view = stack.wait_conversation(PARTNER, conversation)
    assert [(m["id"], m["text"]) for m in view["messages"]] == [
        (f"gbm:{PARTNER}:own-{conversation}", "meant for e2e-agent-partner")
    ]
    (row,) = stack.conversations_of(PARTNER, conversation)
    assert row["message_count"] == 1


# -- payload kinds ---------------------------------------------------------------------------------


def test_typing_makes_no_message(stack: Stack) -> None:
    conversation = new_conversation()
    ok(stack.post_gbm(GBM, status(conversation, isTyping=True)))
    ok(stack.post_gbm(GBM, status(conversation, isTyping=False)))
    # A later message of the same customer: same FIFO group, so a typing message would be stored before it.
    ok(stack.post_gbm(GBM, message(conversation, "typed it")))
    view = stack.wait_conversation(GBM, conversation)
    assert texts(view) == [("text", "typed it")]
    (row,) = stack.conversations_of(GBM, conversation)
    assert row["message_count"] == 1


def test_requested_live_agent_reroutes_the_conversation(stack: Stack) -> None:
    conversation = new_conversation()
    ok(stack.post_gbm(GBM, message(conversation, "hello")))
    before = stack.wait_conversation(GBM, conversation)
    assert (before["queue"], before["priority"], before["rule"], before["requested_live_agent"]) == ("general", 10, None, False)

    ok(stack.post_gbm(GBM, status(conversation, requestedLiveAgent=True)))
    after = stack.wait_conversation(GBM, conversation, messages=2)
    assert (after["queue"], after["priority"], after["rule"], after["requested_live_agent"]) == ("humans", 1, "live agent", True)
    assert after["conversation_id"] == before["conversation_id"]
    assert texts(after) == [("text", "hello"), ("event", None)]
    assert after["messages"][1]["data"]["requested_live_agent"] is True
    (row,) = stack.conversations_of(GBM, conversation)
    assert row["queue"] == "humans"

    # It stays with a person: a later message does not send it back to the fallback queue.
    ok(stack.post_gbm(GBM, message(conversation, "still there?")))
    later = stack.wait_conversation(GBM, conversation, messages=3)
    assert (later["queue"], later["requested_live_agent"]) == ("humans", True)


def test_a_duplicate_message_id_or_request_id_is_recorded_once(stack: Stack) -> None:
    conversation = new_conversation()
    t = int(time.time() * 1000)
    first = message(conversation, "only once", message_id=f"dup-{conversation}", now_ms=t)
    ok(stack.post_gbm(GBM, first))
    ok(stack.post_gbm(GBM, first))  # Google's retry
    # Same messageId, other requestId and send time: still the same message.
    ok(stack.post_gbm(GBM, message(conversation, "only once", message_id=f"dup-{conversation}")))
    replay = stack.cli(
        "send", "gbm", "--account", GBM, "--text", "only once", "--user", conversation, "--event-id", f"dup-{conversation}"
    )
    assert replay.stdout.strip() == "200 {}"
    suggestion = {
        "agent": "brands/e2e-brand/agents/e2e-agent",
        "conversationId": conversation,
        "requestId": f"req-{conversation}",
        "suggestionResponse": {"message": "m", "postbackData": "YES", "text": "Yes", "suggestionType": "REPLY"},
        "sendTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(t / 1000 + 1)),
    }
    for _ in range(2):
        ok(stack.post_gbm(GBM, json.dumps(suggestion).encode()))
    ok(stack.post_gbm(GBM, message(conversation, "the next one", now_ms=t + 2000)))

    view = stack.wait_conversation(GBM, conversation, messages=3)
    assert [(m["id"], m["kind"], m["text"]) for m in view["messages"]] == [
        (f"gbm:{GBM}:dup-{conversation}", "text", "only once"),
        (f"gbm:{GBM}:req-{conversation}", "postback", "Yes"),
        (view["messages"][2]["id"], "text", "the next one"),
    ]
    assert view["messages"][1]["data"]["postback_data"] == "YES"
    (row,) = stack.conversations_of(GBM, conversation)
    assert row["message_count"] == 3


@pytest.mark.parametrize("account_id", [GBM, PARTNER])
def test_send_gbm_signs_with_the_key_the_account_names(stack: Stack, account_id: str) -> None:
    conversation = new_conversation()
    sent = stack.cli("send", "gbm", "--account", account_id, "--text", "from the command", "--user", conversation)
    assert sent.stdout.strip() == "200 {}"
    view = stack.wait_conversation(account_id, conversation)
    assert texts(view) == [("text", "from the command")]


# -- the recorded payloads (Google's test-framework samples and realistic ones), table-driven ------


def expected_envelopes(body: bytes, account_id: str) -> list[Envelope]:
    brand, _, agent = AGENTS[account_id].removeprefix("brands/").partition("/agents/")
    account = Account(id=account_id, channel="gbm", workstream="social", options={"brand_id": brand, "agent_id": agent})
    request = WebhookRequest("POST", "", {}, {}, {}, body, "")
    return GbmAdapter().parse(request, account, received_at=0, correlation_id="").envelopes


@pytest.mark.parametrize("name", sorted(p.name for p in TESTDATA.glob("*.json")))
def test_recorded_payload_through_the_http_edge(stack: Stack, name: str) -> None:
    conversation = new_conversation()
    doc = json.loads((TESTDATA / name).read_bytes())
    # Fresh ids each run, as Google's are unique (the samples share placeholders); everything else as recorded.
    doc["conversationId"] = conversation
    doc["agent"] = AGENTS[GBM]  # as Google addresses each delivery (the samples name placeholder agents)
    if "requestId" in doc:
        doc["requestId"] = str(uuid.uuid4()).upper()
    if isinstance(doc.get("message"), dict) and "messageId" in doc["message"]:
        doc["message"]["messageId"] = str(uuid.uuid4()).upper()
    body = json.dumps(doc, indent=2).encode()
    expected = expected_envelopes(body, GBM)

    ok(stack.post_gbm(GBM, body))

    # Typing, a status with placeholder booleans, or receipts (they name replies this new conversation
    # never had, so the route stage applies them to nothing): no message may appear.
    if all(e.kind == "receipt" for e in expected):
        ok(stack.post_gbm(GBM, message(conversation, "barrier", message_id=f"barrier-{conversation}")))
        view = stack.wait_stored(GBM, conversation)
        assert [m["id"] for m in view["messages"]] == [f"gbm:{GBM}:barrier-{conversation}"]
        return
    (envelope,) = expected
    view = stack.wait_stored(GBM, conversation)
    (got,) = view["messages"]
    assert got["id"] == envelope.id
    assert [a["type"] for a in got["attachments"]] == [a.type for a in envelope.attachments]
    if envelope.attachments:  # the attachments stage may find a file over the account's limits
        assert got["kind"] in (envelope.kind, "unsupported")
    else:
        assert (got["kind"], got["text"]) == (envelope.kind, envelope.text)
    assert view["requested_live_agent"] is bool(envelope.data.get("requested_live_agent"))
    assert "AUTHORIZATION_CODE" not in json.dumps(view)  # an authentication code is never kept


# -- receipts move the delivery of Switchboard's replies ------------------------------------------------

REPLIES = "e2e-gbm-replies"
REPLIES_TOKEN = "E2EGBMREPLYCLTKN"


@pytest.fixture(scope="module")
def replies_platform(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePlatform]:
    """A GBM account whose replies go to the fake platform (the config's accounts reach no Google)."""
    with FakePlatform() as fake:
        document = {
            "accounts": [
                {
                    "id": REPLIES,
                    "channel": "gbm",
                    "name": "GBM replies and receipts e2e",
                    "brand_id": "e2e-brand",
                    "agent_id": "e2e-agent-replies",
                    "workstream": "gbm-replies",
                    "api_base_url": fake.url,
                    "secrets": {"client_token": REPLIES_TOKEN, "service_account_json": json.dumps(fake.gbm_service_account())},
                }
            ],
            "workstreams": [{"id": "gbm-replies", "fallback_queue": "gbm-replies"}],
        }
        path = tmp_path_factory.mktemp("gbm-replies") / "gbm-replies.yaml"
        path.write_text(dump_config(document))
        applied = stack.cli("apply", str(path)).stdout
        assert f"account {REPLIES}" in applied, applied
        yield fake


def post_replies_account(stack: Stack, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "X-Goog-Signature": sign_gbm(REPLIES_TOKEN, body)}
    ok(requests.post(f"{stack.url}/webhooks/gbm/{REPLIES}", data=body, headers=headers, timeout=10))


def receipt(conversation: str, message_id: str, receipt_type: str) -> bytes:
    body = {
        "agent": "brands/e2e-brand/agents/e2e-agent-replies",
        "conversationId": conversation,
        "requestId": str(uuid.uuid4()).upper(),
        # Google writes ids in capitals; the send recorded the messageId it derived, in lowercase.
        "receipts": {
            "receipts": [{"message": f"conversations/{conversation}/messages/{message_id.upper()}", "receiptType": receipt_type}]
        },
        "sendTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
    }
    return json.dumps(body).encode()


def test_receipts_mark_the_reply_delivered_then_read_and_are_never_messages(stack: Stack, replies_platform: FakePlatform) -> None:
    conversation = new_conversation()
    body = build_message(conversation, "is my order ready?", brand_id="e2e-brand", agent_id="e2e-agent-replies")
    post_replies_account(stack, body)
    conversation_id = stack.wait_conversation(REPLIES, conversation)["conversation_id"]
    stack.cli("reply", conversation_id, "--text", "Ready for pickup.")
    (sent,) = wait_for(
        lambda: [s for s in replies_platform.gbm_sent() if s.conversation_id == conversation] or None, "the reply sent"
    )

    def delivery(status: str) -> dict[str, Any] | None:
        view = stack.show(conversation_id)
        out = [m for m in view["messages"] if m["direction"] == "out"]
        return view if out and out[0]["delivery"]["status"] == status else None

    wait_for(lambda: delivery("sent"), "the reply marked sent")
    post_replies_account(stack, receipt(conversation, sent.message_id, "DELIVERED"))
    wait_for(lambda: delivery("delivered"), "the reply marked delivered")
    post_replies_account(stack, receipt(conversation, sent.message_id, "READ"))
    view = wait_for(lambda: delivery("read"), "the reply marked read")
    assert [(m["direction"], m["text"]) for m in view["messages"]] == [("in", "is my order ready?"), ("out", "Ready for pickup.")]
