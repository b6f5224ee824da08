"""CORS on the chat routes, the chat start's included (interface section 7)."""

from __future__ import annotations

import json

import pytest

from ._chat_stack import PORTAL, ChatStack

SESSION_ROUTES = ("messages", "end")


def test_an_allowed_origin_is_echoed_on_every_chat_answer(stack: ChatStack) -> None:
    start = stack.start("web", body={"text": "hi"}, origin=PORTAL)
    assert start.status == 201
    assert (start.headers["Access-Control-Allow-Origin"], start.headers["Vary"]) == (PORTAL, "Origin")
    doc = json.loads(start.body)
    chat_id, token = doc["conversation_id"], doc["session_token"]
    origin = {"origin": PORTAL}
    answers = [
        stack.call(
            "POST",
            "web",
            "messages",
            conversation_id=chat_id,
            token=token,
            body={"client_message_id": "a", "text": "x"},
            headers=origin,
        ),
        stack.call("GET", "web", "messages", conversation_id=chat_id, token=token, headers=origin),
        stack.call("POST", "web", "end", conversation_id=chat_id, token=token, headers=origin),
        stack.call(
            "POST",
            "web",
            "messages",
            conversation_id=chat_id,
            token=token,
            body={"client_message_id": "b", "text": "x"},
            headers=origin,
        ),
        stack.call("GET", "web", "messages", conversation_id=chat_id, token="sbs_forged", headers=origin),
        stack.call("GET", "web", "config", headers=origin),
    ]
    assert [a.status for a in answers] == [202, 200, 200, 409, 401, 200]
    for answer in answers:  # errors too: the widget must be able to read their code
        assert answer.headers["Access-Control-Allow-Origin"] == PORTAL
        assert answer.headers["Vary"] == "Origin"
        assert answer.headers["Access-Control-Allow-Origin"] != "*"


def test_an_origin_not_allowed_is_403_before_anything_is_read_or_enqueued(stack: ChatStack) -> None:
    chat = stack.chat()
    stack.queued()
    evil = {"origin": "https://evil.example.net"}
    answers = [
        stack.call(
            "POST",
            "web",
            "messages",
            conversation_id=chat.conversation_id,
            token=chat.token,
            body={"client_message_id": "a", "text": "x"},
            headers=evil,
        ),
        stack.call("GET", "web", "messages", conversation_id=chat.conversation_id, token=chat.token, headers=evil),
        stack.call("POST", "web", "end", conversation_id=chat.conversation_id, token=chat.token, headers=evil),
        stack.call("OPTIONS", "web", "messages", conversation_id=chat.conversation_id, headers=evil),
        stack.call("GET", "web", "config", headers=evil),
        stack.start("web", body={"text": "hi"}, origin="https://evil.example.net"),
        # Close relatives of the allowed origin are other origins.
        stack.start("web", origin="http://portal.example.com"),
        stack.start("web", origin="https://portal.example.com:8443"),
        stack.start("web", origin="https://portal.example.com.evil.net"),
        stack.start("web", origin="null"),
    ]
    for answer in answers:
        assert (answer.status, json.loads(answer.body)["error"]) == (403, "origin_not_allowed"), answer
        assert "Access-Control-Allow-Origin" not in answer.headers
    assert stack.queued() == []
    session = stack.sessions.session(chat.conversation_id)
    assert session is not None and session.ended_at is None


def test_a_star_widget_allows_any_origin_and_still_echoes_it(stack: ChatStack) -> None:
    for origin in ("https://a.example.org", "http://localhost:8080"):
        answer = stack.start("open", body={"text": "hi"}, origin=origin)
        assert answer.status == 201
        assert answer.headers["Access-Control-Allow-Origin"] == origin


def test_no_origin_is_not_refused_and_gets_no_cors_headers(stack: ChatStack) -> None:
    start = stack.start("web", body={"text": "hi"})
    assert start.status == 201 and "Access-Control-Allow-Origin" not in start.headers
    chat = stack.chat()
    answer = stack.read(chat)
    assert answer.status == 200 and "Access-Control-Allow-Origin" not in answer.headers


def test_a_page_on_the_apis_own_origin_is_same_origin(stack: ChatStack) -> None:
    answer = stack.call("GET", "off-list", "config", headers={"origin": "http://127.0.0.1:3000", "host": "127.0.0.1:3000"})
    assert answer.status == 404  # an unknown widget stays unknown
    chat = stack.chat("signed2", name=None)
    same = {"origin": "http://127.0.0.1:3000", "host": "127.0.0.1:3000"}
    assert stack.read(chat, headers=same).status == 200  # signed2 lists no origin: the API's own page may still call
    other = {"origin": "http://127.0.0.1:3001", "host": "127.0.0.1:3000"}
    assert stack.read(chat, headers=other).status == 403


@pytest.mark.parametrize("tail", SESSION_ROUTES)
def test_preflight_is_204_and_allows_the_methods_and_headers(stack: ChatStack, tail: str) -> None:
    answer = stack.call(
        "OPTIONS",
        "web",
        tail,
        conversation_id="0" * 28,
        headers={
            "origin": PORTAL,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type",
        },
    )
    assert answer.status == 204 and answer.body == ""
    assert answer.headers["Access-Control-Allow-Origin"] == PORTAL
    assert answer.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert set(answer.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "OPTIONS"}
    assert int(answer.headers["Access-Control-Max-Age"]) > 0


def test_the_chat_starts_preflight_is_answered_too(stack: ChatStack) -> None:
    answer = stack.call("OPTIONS", "web", "conversations", headers={"origin": PORTAL})
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert stack.call("OPTIONS", "nope", "conversations", headers={"origin": PORTAL}).status == 404
