"""A LINE customer's messages through the whole local pipeline: webhook -> route -> crm, seen through the command."""

from __future__ import annotations

import json
import time

import pytest

from switchboard.channels.line import sign

from ._stack import Stack, line_body, line_event, new_event_id, new_user

pytestmark = pytest.mark.e2e

A, B = "e2e-line-a", "e2e-line-b"


def test_signed_line_text_becomes_a_routed_conversation(stack: Stack) -> None:
    user = new_user()
    sent = stack.cli("send", "line", "--account", B, "--text", "urgent: my order never came", "--user", user)
    assert sent.stdout.strip() == "200 {}"

    view = stack.wait_conversation(B, user)
    (row,) = stack.conversations_of(B, user)
    for key in ("conversation_id", "channel", "account_id", "customer", "queue", "status", "updated_at"):
        assert key in row, key
    assert (row["channel"], row["account_id"], row["queue"], row["status"]) == ("line", B, "urgent", "open")
    assert row["customer"]["id"] == user

    for key in (
        "conversation_id",
        "channel",
        "account_id",
        "customer",
        "contact_id",
        "authenticated",
        "context",
        "workstream",
        "queue",
        "priority",
        "status",
        "crm",
        "messages",
    ):
        assert key in view, key
    assert view["conversation_id"] == row["conversation_id"]
    assert (view["channel"], view["account_id"]) == ("line", B)
    assert view["customer"] == {"id": user, "name": None}
    assert (view["workstream"], view["queue"], view["priority"], view["status"]) == ("support", "urgent", 1, "open")
    assert view["authenticated"] is False
    assert view["contact_id"] is None
    assert view["context"] == {}
    for key in ("provider", "contact_id", "ticket_id", "owner_id"):
        assert key in view["crm"], key
    assert view["crm"]["provider"] == "none"
    assert view["crm"]["messages_written"] == 1
    (message,) = view["messages"]
    for key in ("id", "kind", "text", "attachments", "received_at"):
        assert key in message, key
    assert (message["kind"], message["text"], message["attachments"]) == ("text", "urgent: my order never came", [])
    assert message["id"].startswith(f"line:{B}:")


def test_other_account_routes_by_its_own_workstream(stack: Stack) -> None:
    user = new_user()
    stack.send_text(A, user, "I want a refund")
    view = stack.wait_conversation(A, user)
    assert (view["workstream"], view["queue"], view["priority"], view["rule"]) == ("social", "billing", 2, "refunds")


@pytest.mark.parametrize(
    ("signature", "error"),
    [("sign-with-wrong-secret", "invalid_signature"), ("AAAA", "invalid_signature"), (None, "missing_signature")],
)
def test_bad_or_missing_signature_is_401_and_enqueues_nothing(stack: Stack, signature: str | None, error: str) -> None:
    bad_user = new_user()
    body = line_body(line_event("you should never see this", bad_user))
    if signature == "sign-with-wrong-secret":
        signature = sign(stack.secret(B), body)  # another account's secret
    answer = stack.post_line(A, body, signature=signature)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/json"
    payload = answer.json()
    assert set(payload) == {"error", "message"}
    assert payload["error"] == error
    assert stack.secret(A) not in answer.text

    # A later, valid message from someone else gets through; by then the refused one would have too.
    good_user = new_user()
    stack.send_text(A, good_user, "hello after the bad one")
    stack.wait_conversation(A, good_user)
    assert stack.conversations_of(A, bad_user) == []
    assert [r for r in stack.conversations() if r["customer"]["id"] == bad_user] == []


def test_redelivered_webhook_event_id_gives_one_message(stack: Stack) -> None:
    user = new_user()
    event_id = new_event_id()
    first = line_event("only once", user, event_id=event_id)
    body = line_body(first)
    for _ in range(2):  # the same delivery twice
        answer = stack.post_line(A, body)
        assert (answer.status_code, answer.text) == (200, "{}")
    redelivered = line_body({**first, "deliveryContext": {"isRedelivery": True}})
    answer = stack.post_line(A, redelivered)
    assert (answer.status_code, answer.text) == (200, "{}")
    replay = stack.cli("send", "line", "--account", A, "--text", "only once", "--user", user, "--event-id", event_id)
    assert replay.stdout.strip() == "200 {}"
    # A later message of the same customer: same FIFO group, so any duplicate would be stored before it.
    stack.send_text(A, user, "the next one", timestamp=first["timestamp"] + 1000)

    view = stack.wait_conversation(A, user, messages=2)
    assert [(m["id"], m["text"]) for m in view["messages"]] == [
        (f"line:{A}:{event_id}", "only once"),
        (view["messages"][1]["id"], "the next one"),
    ]
    assert view["messages"][1]["id"] != f"line:{A}:{event_id}"
    (row,) = stack.conversations_of(A, user)
    assert row["message_count"] == 2
    assert view["crm"]["messages_written"] == 2


def test_twenty_messages_keep_their_order(stack: Stack) -> None:
    user = new_user()
    start = int(time.time() * 1000)
    texts = [f"m{i:02d}" for i in range(20)]
    for i, text in enumerate(texts):
        stack.send_text(A, user, text, timestamp=start + i)
    view = stack.wait_conversation(A, user, messages=20)
    assert [m["text"] for m in view["messages"]] == texts
    assert len({m["id"] for m in view["messages"]}) == 20
    (row,) = stack.conversations_of(A, user)
    assert row["message_count"] == 20


@pytest.mark.parametrize(
    ("text", "queue", "priority", "rule"),
    [
        ("10000", "sales", 3, "big numbers"),  # as strings "10000" < "5000": only a numeric comparison routes it
        ("5000.5", "sales", 3, "big numbers"),
        ("600", "general", 10, None),  # as strings "600" > "5000": a numeric comparison leaves it
        ("5000", "general", 10, None),
    ],
)
def test_rule_on_a_string_held_number(stack: Stack, text: str, queue: str, priority: int, rule: str | None) -> None:
    user = new_user()
    stack.send_text(A, user, text)
    view = stack.wait_conversation(A, user)
    assert (view["queue"], view["priority"], view["rule"]) == (queue, priority, rule)
    assert [m["text"] for m in view["messages"]] == [text]


def test_verify_request_with_no_events_is_200(stack: Stack) -> None:
    body = b'{"destination":"U123","events":[]}'
    answer = stack.post_line(A, body)
    assert (answer.status_code, json.loads(answer.text)) == (200, {})
