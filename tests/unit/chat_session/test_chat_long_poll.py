"""GET .../messages: the transcript after a cursor, both directions in order, and the long poll (interface section 7).

Time is the stack's clock: the poll's sleeps move it, and a sleep can make a reply land, so nothing here
depends on how fast the machine is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchboard.chat_records import ChatCursor

from ._chat_stack import T0, ChatStack


def _read(stack: ChatStack, chat: Any, **kw: Any) -> dict[str, Any]:
    answer = stack.read(chat, **kw)
    assert answer.status == 200, answer.body
    doc: dict[str, Any] = json.loads(answer.body)
    return doc


def test_the_whole_transcript_in_order_then_only_what_is_new(stack: ChatStack) -> None:
    chat = stack.chat(text="hi, I need help", name="Kim")
    stack.pump()
    stack.clock.now += 10
    pending = stack.reply(chat, "not sent yet", sent=False)
    stack.clock.now += 1
    stack.reply(chat, "Hello Kim, how can I help?")
    stack.clock.now += 10
    stack.send(chat, "my order is late", "m-1")
    stack.pump()

    first = _read(stack, chat)
    assert first["status"] == "open" and first["authenticated"] is False
    assert [(r["direction"], r["text"], r["author"]) for r in first["messages"]] == [
        ("in", "hi, I need help", "Kim"),
        ("out", "Hello Kim, how can I help?", "Agent Ana"),  # a pending reply waits until the sender stage took it
        ("in", "my order is late", "Kim"),
    ]
    row = first["messages"][2]
    assert set(row) == {"id", "direction", "text", "kind", "author", "sent_at", "client_message_id", "event"}
    assert row["kind"] == "text" and row["client_message_id"] == "m-1"
    assert row["sent_at"] == _iso_seconds(T0 + 21) + ".000Z"  # when the chat function accepted it

    assert _read(stack, chat, after=first["cursor"])["messages"] == []  # nothing new
    assert stack.conversations.mark_reply(chat.conversation_id, pending.id, status="sent", at=int(stack.clock.now * 1000))
    stack.clock.now += 5
    stack.send(chat, "thanks", "m-2")
    stack.pump()
    second = _read(stack, chat, after=first["cursor"])
    # The late-sent reply was written first; each side keeps its own order, merged by when they were written.
    assert [r["text"] for r in second["messages"]] == ["not sent yet", "thanks"]
    assert _read(stack, chat, after=second["cursor"])["messages"] == []


def _iso_seconds(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def test_a_message_stored_late_is_not_skipped_by_a_cursor_that_saw_a_later_reply(stack: ChatStack) -> None:
    chat = stack.chat(text="hi")
    stack.pump()
    seen = _read(stack, chat)
    stack.clock.now += 1
    stack.send(chat, "sent before the reply", "m-1")  # accepted, not yet stored by the route stage
    stack.clock.now += 1
    stack.reply(chat, "a reply")
    after_reply = _read(stack, chat, after=seen["cursor"])
    assert [r["text"] for r in after_reply["messages"]] == ["a reply"]
    stack.pump()  # now the route stage stores the visitor's message
    late = _read(stack, chat, after=after_reply["cursor"])
    assert [r["text"] for r in late["messages"]] == ["sent before the reply"]


def test_before_the_route_stage_stored_the_conversation_the_session_answers(stack: ChatStack) -> None:
    chat = stack.chat()
    doc = _read(stack, chat)
    assert doc == {"messages": [], "cursor": ChatCursor().encode(), "status": "open", "authenticated": False}


def test_the_long_poll_answers_as_soon_as_a_reply_lands(stack: ChatStack) -> None:
    chat = stack.chat(text="hi")
    stack.pump()
    seen = _read(stack, chat)

    def agent_answers(sleeps: int) -> None:
        if sleeps == 3:
            stack.reply(chat, "here I am")

    stack.clock.on_sleep = agent_answers
    started = stack.clock.now
    doc = _read(stack, chat, after=seen["cursor"], wait=20)
    assert [r["text"] for r in doc["messages"]] == ["here I am"]
    assert len(stack.clock.sleeps) == 3  # it stopped polling when the reply was there
    assert stack.clock.now - started == pytest.approx(3 * stack.deps.poll_interval)
    assert all(s == stack.deps.poll_interval for s in stack.clock.sleeps)


def test_the_long_poll_answers_after_wait_seconds_with_nothing_new(stack: ChatStack) -> None:
    chat = stack.chat(text="hi")
    stack.pump()
    seen = _read(stack, chat)
    started = stack.clock.now
    doc = _read(stack, chat, after=seen["cursor"], wait=3)
    assert doc["messages"] == [] and doc["cursor"] == seen["cursor"]
    assert stack.clock.now - started <= 3
    assert stack.clock.now - started > 3 - stack.deps.poll_interval * 1.01
    assert len(stack.clock.sleeps) == round(3 / stack.deps.poll_interval)


def test_the_long_poll_answers_when_the_chat_closes(stack: ChatStack) -> None:
    chat = stack.chat(text="hi")
    stack.pump()
    seen = _read(stack, chat)

    def closes(sleeps: int) -> None:
        if sleeps == 2:
            conversation = stack.conversations.get(chat.conversation_id)
            assert conversation is not None
            stack.conversations.save(conversation.with_(closed=True))

    stack.clock.on_sleep = closes
    doc = _read(stack, chat, after=seen["cursor"], wait=20)
    assert doc["status"] == "closed" and len(stack.clock.sleeps) == 2


def test_without_wait_there_is_no_waiting(stack: ChatStack) -> None:
    chat = stack.chat(text="hi")
    stack.pump()
    seen = _read(stack, chat)
    for wait in (None, 0):
        assert _read(stack, chat, after=seen["cursor"], wait=wait)["messages"] == []
    assert stack.clock.sleeps == []


@pytest.mark.parametrize("wait", ["21", "-1", "1.5", "x", "\uff19"])  # a fullwidth nine: a digit to str.isdigit
def test_wait_outside_0_to_20_is_400(stack: ChatStack, wait: str) -> None:
    chat = stack.chat()
    answer = stack.call("GET", "web", "messages", conversation_id=chat.conversation_id, token=chat.token, query={"wait": wait})
    assert (answer.status, json.loads(answer.body)["error"]) == (400, "bad_request")
    assert stack.clock.sleeps == []


@pytest.mark.parametrize(
    "after", ["garbage!", "e30", "x" * 600, ChatCursor().encode()[:-3] + "AAA", "eyJ2IjoxLCJpIjotMSwibyI6WzAsIiJdfQ"]
)
def test_a_cursor_this_server_did_not_hand_out_is_400(stack: ChatStack, after: str) -> None:
    chat = stack.chat()
    answer = stack.call("GET", "web", "messages", conversation_id=chat.conversation_id, token=chat.token, query={"after": after})
    assert (answer.status, json.loads(answer.body)["error"]) == (400, "bad_request")


def test_the_cursor_round_trips_and_refuses_other_shapes() -> None:
    cursor = ChatCursor(seq=7, reply=(1_780_000_000_123, "r0019"))
    assert ChatCursor.decode(cursor.encode()) == cursor
    for text in ("", "eyJ2IjoyLCJpIjowLCJvIjpbMCwiIl19", "eyJ2Ijp0cnVlLCJpIjp0cnVlLCJvIjpbMCwiIl19"):
        with pytest.raises(ValueError, match="cursor"):
            ChatCursor.decode(text)
