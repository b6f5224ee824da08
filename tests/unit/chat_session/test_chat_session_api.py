"""A visitor's session after the chat start: the token, their messages and the end (interface section 7)."""

from __future__ import annotations

import hmac
import json
from typing import Any

import boto3
import pytest

from switchboard import chat_session
from switchboard.chat_records import new_token, token_digest

from ._chat_stack import T0, ChatStack


def _error(answer: Any) -> tuple[int, str]:
    return answer.status, json.loads(answer.body)["error"]


def _scan(stack: ChatStack) -> str:
    return json.dumps(boto3.client("dynamodb").scan(TableName=stack.table)["Items"])


# -- the session token ----------------------------------------------------------------------------------------


def test_the_start_answers_a_session_that_reveals_nothing_and_is_stored_as_a_digest(stack: ChatStack) -> None:
    chat = stack.chat()
    assert chat.token.startswith("sbs_") and len(chat.token) == 4 + 43  # 256 random bits, base64url
    assert chat.expires_at == int(T0) + 30 * 60  # the widget's session_minutes
    assert chat.conversation_id not in chat.token and "." not in chat.token  # no JWT, no claim, no id inside
    session = stack.sessions.session(chat.conversation_id)
    assert session is not None and session.token_digest == token_digest(chat.token)
    stored = _scan(stack)
    assert chat.token not in stored and chat.token[4:] not in stored  # the table never holds the token
    assert token_digest(chat.token) in stored
    other = stack.chat()
    assert other.token != chat.token


def test_the_default_session_lasts_an_hour(stack: ChatStack) -> None:
    chat = stack.chat("open")
    assert chat.expires_at == int(T0) + 60 * 60


@pytest.mark.parametrize(
    "token",
    [
        None,  # no Authorization at all
        "",  # "Bearer " with nothing after it
        "sbs_" + "A" * 43,  # made up in the right shape
        "not-a-token",
    ],
)
def test_a_missing_empty_or_forged_token_is_invalid_session(stack: ChatStack, token: str | None) -> None:
    chat = stack.chat()
    stack.queued()
    body = {"client_message_id": "m-1", "text": "hi"}
    headers = {"authorization": "Bearer "} if token == "" else None
    answer = stack.call(
        "POST", "web", "messages", conversation_id=chat.conversation_id, token=token or None, body=body, headers=headers
    )
    assert _error(answer) == (401, "invalid_session")
    assert _error(stack.call("GET", "web", "messages", conversation_id=chat.conversation_id, token=token or None)) == (
        401,
        "invalid_session",
    )
    assert stack.queued() == []  # a refusal enqueues nothing


def test_a_token_from_another_conversation_or_widget_is_invalid_session(stack: ChatStack) -> None:
    mine, theirs = stack.chat(), stack.chat()
    answer = stack.call("GET", "web", "messages", conversation_id=mine.conversation_id, token=theirs.token)
    assert _error(answer) == (401, "invalid_session")
    # The right token on the right conversation, through another widget's path: not this widget's session.
    assert _error(stack.call("GET", "open", "messages", conversation_id=mine.conversation_id, token=mine.token)) == (
        401,
        "invalid_session",
    )
    # An id no conversation has.
    assert _error(stack.call("GET", "web", "messages", conversation_id="0" * 28, token=mine.token)) == (401, "invalid_session")
    assert _error(stack.call("GET", "web", "messages", conversation_id="../" + "x" * 80, token=mine.token)) == (
        401,
        "invalid_session",
    )


def test_a_token_is_only_as_good_as_its_expiry(stack: ChatStack) -> None:
    chat = stack.chat()
    stack.clock.now = chat.expires_at - 1
    assert stack.read(chat).status == 200
    stack.clock.now = chat.expires_at
    assert _error(stack.read(chat)) == (401, "session_expired")
    assert _error(stack.send(chat)) == (401, "session_expired")
    assert _error(stack.end(chat)) == (401, "session_expired")
    # Expiry is told only to the holder of the right token: anyone else is simply not let in.
    forged, _ = new_token()
    answer = stack.call("GET", "web", "messages", conversation_id=chat.conversation_id, token=forged)
    assert _error(answer) == (401, "invalid_session")


def test_tokens_are_compared_as_digests_in_constant_time(stack: ChatStack, monkeypatch: pytest.MonkeyPatch) -> None:
    chat = stack.chat()
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(chat_session.hmac, "compare_digest", spy)
    assert stack.read(chat).status == 200
    forged, _ = new_token()
    assert stack.call("GET", "web", "messages", conversation_id=chat.conversation_id, token=forged).status == 401
    # Also with no session at all: the same comparison runs, against a digest nobody's token has.
    assert stack.call("GET", "web", "messages", conversation_id="f" * 28, token=forged).status == 401
    assert len(compared) == 3
    assert compared[0] == (token_digest(chat.token).encode(), token_digest(chat.token).encode())
    assert compared[1] == (token_digest(forged).encode(), token_digest(chat.token).encode())
    assert compared[2][0] == token_digest(forged).encode() and compared[2][1] != compared[2][0]
    for a, b in compared:  # digests of equal length, never the token itself
        assert len(a) == len(b) == 64 and chat.token.encode() not in (a, b)


def test_the_session_token_never_reaches_a_log_line_or_an_envelope(stack: ChatStack, capsys: pytest.CaptureFixture[str]) -> None:
    chat = stack.chat()
    stack.send(chat, "first")
    stack.read(chat)
    forged, _ = new_token()
    stack.call("GET", "web", "messages", conversation_id=chat.conversation_id, token=forged)
    stack.end(chat)
    out = capsys.readouterr()
    queued = json.dumps([e.to_dict() for e in stack.queued()])
    for text in (out.out, out.err, queued):
        assert chat.token not in text and forged not in text


# -- POST .../messages ------------------------------------------------------------------------------------------


def test_a_message_is_accepted_enqueued_in_the_visitors_group_and_stored_by_route(stack: ChatStack) -> None:
    chat = stack.chat(text="first")
    stack.clock.now += 5
    answer = stack.send(chat, "where is my order?", "c-42")
    assert answer.status == 202
    assert json.loads(answer.body) == {"id": json.loads(answer.body)["id"], "client_message_id": "c-42"}
    start, message = stack.queued()
    assert message.conversation_id == chat.conversation_id
    assert message.customer == start.customer  # the same visitor: the same FIFO group, after the start
    assert (message.channel, message.account_id, message.kind, message.text) == ("chat", "web", "text", "where is my order?")
    assert message.data == {"client_message_id": "c-42"}
    assert not message.identity.authenticated  # a later message claims nothing new
    assert message.sent_at == int(stack.clock.now * 1000)


def test_the_same_client_message_id_is_answered_202_again_and_stored_once(stack: ChatStack) -> None:
    chat = stack.chat(text=None)
    first = stack.send(chat, "hello there", "dup-1")
    stack.clock.now += 1
    again = stack.send(chat, "hello there", "dup-1")
    assert first.status == again.status == 202
    assert json.loads(first.body)["id"] == json.loads(again.body)["id"]
    stack.send(chat, "hello there", "dup-2")  # the same text under another id is another message
    stack.pump()
    stack.send(chat, "hello there", "dup-1")  # a retry after route stored it: still once
    stack.pump()
    rows = json.loads(stack.read(chat).body)["messages"]
    texts = [(r["client_message_id"], r["text"]) for r in rows if r["kind"] == "text"]
    assert texts == [("dup-1", "hello there"), ("dup-2", "hello there")]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not usable JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "client_message_id"),
        (json.dumps({"client_message_id": "a b", "text": "x"}).encode(), "client_message_id"),
        (json.dumps({"client_message_id": "x" * 129, "text": "x"}).encode(), "client_message_id"),
        (json.dumps({"client_message_id": 7, "text": "x"}).encode(), "client_message_id"),
        (json.dumps({"client_message_id": "m"}).encode(), "text"),
        (json.dumps({"client_message_id": "m", "text": "   "}).encode(), "text"),
        (json.dumps({"client_message_id": "m", "text": ["x"]}).encode(), "text"),
        (json.dumps({"client_message_id": "m", "text": "x" * 10_001}).encode(), "longer than"),
        (b"[" * 5000 + b"]" * 5000, "not usable JSON"),
    ],
)
def test_a_bad_body_is_400_and_enqueues_nothing(stack: ChatStack, raw: bytes, why: str) -> None:
    chat = stack.chat()
    stack.queued()
    answer = stack.call("POST", "web", "messages", conversation_id=chat.conversation_id, token=chat.token, raw=raw)
    assert _error(answer) == (400, "bad_request")
    assert why in json.loads(answer.body)["message"]
    assert stack.queued() == []


def test_a_body_over_64_kib_is_413(stack: ChatStack) -> None:
    chat = stack.chat()
    stack.queued()
    raw = json.dumps({"client_message_id": "big", "text": "x" * (64 * 1024)}).encode()
    answer = stack.call("POST", "web", "messages", conversation_id=chat.conversation_id, token=chat.token, raw=raw)
    assert _error(answer) == (413, "payload_too_large")
    assert stack.queued() == []


def test_an_unknown_or_disabled_widget_is_404(stack: ChatStack) -> None:
    chat = stack.chat()
    for widget in ("nope", "off", "x" * 200):
        answer = stack.call("POST", widget, "messages", conversation_id=chat.conversation_id, token=chat.token, body={})
        assert _error(answer) == (404, "not_found")
    assert _error(stack.call("DELETE", "web", "messages", conversation_id=chat.conversation_id, token=chat.token)) == (
        404,
        "not_found",
    )


def test_a_queue_that_refuses_is_503(stack: ChatStack, monkeypatch: pytest.MonkeyPatch) -> None:
    from switchboard.errors import StoreUnavailable

    chat = stack.chat()

    def refuse(envelopes: Any) -> None:
        raise StoreUnavailable("inbound queue unavailable")

    monkeypatch.setattr(stack.deps.publisher, "publish", refuse)
    answer = stack.send(chat, headers={"origin": "https://portal.example.com"})
    assert _error(answer) == (503, "unavailable")
    assert answer.headers["Access-Control-Allow-Origin"] == "https://portal.example.com"  # readable by the widget


# -- POST .../end -----------------------------------------------------------------------------------------------


def test_end_closes_the_chat_later_messages_are_409_and_the_session_still_reads(stack: ChatStack) -> None:
    chat = stack.chat(text="hi")
    assert stack.send(chat, "one", "m-1").status == 202
    stack.clock.now += 2
    answer = stack.end(chat)
    assert (answer.status, json.loads(answer.body)) == (200, {"status": "closed"})
    assert _error(stack.send(chat, "two", "m-2")) == (409, "conversation_closed")
    envelopes = stack.pump()
    assert [e.data.get("event") for e in envelopes] == ["chat_started", None, "chat_ended"]  # in the visitor's order
    conversation = stack.conversations.get(chat.conversation_id)
    assert conversation is not None and conversation.closed  # the route stage closed it, after the messages before it
    read = json.loads(stack.read(chat).body)
    assert read["status"] == "closed"
    assert [(r["kind"], r["text"], r["event"]) for r in read["messages"]] == [
        ("text", "hi", "chat_started"),
        ("text", "one", None),
        ("event", None, "chat_ended"),
    ]
    assert _error(stack.send(chat, "three", "m-3")) == (409, "conversation_closed")


def test_end_twice_is_200_twice_and_stored_once(stack: ChatStack) -> None:
    chat = stack.chat()
    assert stack.end(chat).status == 200
    session = stack.sessions.session(chat.conversation_id)
    assert session is not None and session.ended_at == int(T0 * 1000)
    stack.clock.now += 60
    assert stack.end(chat).status == 200
    again = stack.sessions.session(chat.conversation_id)
    assert again is not None and again.ended_at == int(T0 * 1000)  # the first end stands
    ends = [e for e in stack.pump() if e.data.get("event") == "chat_ended"]
    assert len({e.id for e in ends}) == 1 and ends[0].sent_at == int(T0 * 1000)
    read = json.loads(stack.read(chat).body)
    assert [r["event"] for r in read["messages"]].count("chat_ended") == 1


def test_a_conversation_closed_by_its_quiet_time_refuses_messages(stack: ChatStack) -> None:
    chat = stack.chat("open", text="hi")  # a 60-minute session; the workstream closes a chat quiet for 30
    stack.pump()
    stack.clock.now = T0 + 29 * 60
    assert stack.send(chat, "still there?", "m-1").status == 202
    stack.pump()
    stack.clock.now = T0 + 29 * 60 + 30 * 60 + 1  # quiet for 30 minutes since the last message, session still valid
    assert stack.clock.now < chat.expires_at
    assert _error(stack.send(chat, "hello?", "m-2")) == (409, "conversation_closed")
    assert json.loads(stack.read(chat).body)["status"] == "closed"
