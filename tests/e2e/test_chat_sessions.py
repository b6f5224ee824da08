"""A web chat session on the local stack (interface section 7): start, the visitor's messages, an agent's reply
through `switchboard reply` arriving in the long poll, the end and the 409 after it, with CORS as a browser
on the portal's page sees it (preflights included, through the local gateway)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ._stack import Stack, dump_config, wait_for

pytestmark = pytest.mark.e2e

WIDGET = "e2e-session"
PORTAL = "https://portal.e2e.example"


@pytest.fixture(scope="module")
def widget(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    document = {
        "widgets": [{"id": WIDGET, "workstream": "sessions", "allowed_origins": [PORTAL], "session_minutes": 15}],
        "workstreams": [{"id": "sessions", "fallback_queue": "web"}],
    }
    path = tmp_path_factory.mktemp("sessions") / "sessions.yaml"
    path.write_text(dump_config(document))
    applied = stack.cli("apply", str(path)).stdout
    assert f"widget {WIDGET}" in applied, applied
    yield WIDGET


class Visitor:
    """A browser on the portal's page: every call carries the page's Origin, the session calls its token."""

    def __init__(self, stack: Stack, widget: str) -> None:
        self.base = f"{stack.url}/chat/{widget}"
        self.http = requests.Session()
        self.http.headers["Origin"] = PORTAL
        self.conversation_id = ""
        self.token = ""
        self.cursor: str | None = None

    def start(self, text: str) -> dict[str, Any]:
        answer = self.http.post(f"{self.base}/conversations", json={"text": text, "customer": {"name": "Sam"}}, timeout=15)
        assert answer.status_code == 201, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == PORTAL
        doc: dict[str, Any] = answer.json()
        self.conversation_id, self.token = doc["conversation_id"], doc["session_token"]
        return doc

    def url(self, tail: str) -> str:
        return f"{self.base}/conversations/{self.conversation_id}/{tail}"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def send(self, text: str, client_message_id: str) -> requests.Response:
        body = {"client_message_id": client_message_id, "text": text}
        return self.http.post(self.url("messages"), json=body, headers=self.auth(), timeout=15)

    def poll(self, wait: int = 0) -> dict[str, Any]:
        params = {"wait": str(wait), **({"after": self.cursor} if self.cursor else {})}
        answer = self.http.get(self.url("messages"), params=params, headers=self.auth(), timeout=wait + 15)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == PORTAL
        doc: dict[str, Any] = answer.json()
        self.cursor = doc["cursor"]
        return doc


def test_start_send_reply_in_the_long_poll_end_then_409(stack: Stack, widget: str) -> None:
    visitor = Visitor(stack, widget)
    started = visitor.start("Hello, is anyone there?")
    assert started["session_expires_at"] > 0 and started["session_token"].startswith("sbs_")

    for n, text in enumerate(("My order 1234 is late", "It was due Monday")):
        answer = visitor.send(text, f"c-{n}")
        assert answer.status_code == 202, answer.text
    assert visitor.send("It was due Monday", "c-1").status_code == 202  # a retry: stored once

    seen: list[dict[str, Any]] = []

    def stored() -> bool | None:
        seen.extend(visitor.poll(wait=2)["messages"])
        return len(seen) >= 3 or None

    wait_for(stored, "the start and both messages in the transcript")
    assert [(m["direction"], m["text"]) for m in seen] == [
        ("in", "Hello, is anyone there?"),
        ("in", "My order 1234 is late"),
        ("in", "It was due Monday"),
    ]
    assert [m["client_message_id"] for m in seen] == [None, "c-0", "c-1"]

    # The visitor waits in a long poll; the agent answers meanwhile; the poll returns with the reply.
    answered: dict[str, Any] = {}
    poll = threading.Thread(target=lambda: answered.update(visitor.poll(wait=20)))
    poll.start()
    printed = json.loads(
        stack.cli("reply", visitor.conversation_id, "--text", "Let me check <b>that</b> for you.", "--json").stdout
    )
    poll.join(timeout=30)
    assert not poll.is_alive()
    if not answered.get("messages"):  # the reply landed between two polls' answers: the next one has it
        answered = visitor.poll(wait=20)
    assert [(m["direction"], m["id"], m["text"]) for m in answered["messages"]] == [
        ("out", printed["message_id"], "Let me check <b>that</b> for you.")
    ]
    assert answered["status"] == "open"

    end = visitor.http.post(visitor.url("end"), headers=visitor.auth(), timeout=15)
    assert (end.status_code, end.json()) == (200, {"status": "closed"})
    refused = visitor.send("one more thing", "c-2")
    assert (refused.status_code, refused.json()["error"]) == (409, "conversation_closed")
    assert refused.headers["Access-Control-Allow-Origin"] == PORTAL
    after_end = visitor.poll(wait=0)
    assert after_end["status"] == "closed"  # the session still reads

    def closed() -> dict[str, Any] | None:
        shown = stack.show(visitor.conversation_id)
        return shown if shown["status"] == "closed" else None

    shown = wait_for(closed, "the route stage closing the conversation")
    texts = [m.get("text") for m in shown["messages"]]
    assert "one more thing" not in texts and texts.count("It was due Monday") == 1
    assert [m.get("data", {}).get("event") for m in shown["messages"] if m["direction"] == "in"][-1] == "chat_ended"
    assert shown["channel"] == "chat"


def test_sessions_refuse_forged_and_foreign_tokens(stack: Stack, widget: str) -> None:
    mine, theirs = Visitor(stack, widget), Visitor(stack, widget)
    mine.start("first visitor")
    theirs.start("second visitor")
    for token in (theirs.token, "sbs_" + uuid.uuid4().hex, ""):
        answer = mine.http.get(mine.url("messages"), headers={"Authorization": f"Bearer {token}"}, timeout=15)
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_session")


def test_cors_preflight_and_refusal_through_the_local_gateway(stack: Stack, widget: str) -> None:
    visitor = Visitor(stack, widget)
    visitor.start("preflight")
    for url in (f"{stack.url}/chat/{widget}/conversations", visitor.url("messages"), visitor.url("end")):
        answer = requests.options(
            url,
            headers={
                "Origin": PORTAL,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
            timeout=15,
        )
        assert answer.status_code == 204, (url, answer.text)
        assert answer.headers["Access-Control-Allow-Origin"] == PORTAL
        assert answer.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    evil = requests.post(
        f"{stack.url}/chat/{widget}/conversations", json={"text": "hi"}, headers={"Origin": "https://evil.example"}, timeout=15
    )
    assert (evil.status_code, evil.json()["error"]) == (403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in evil.headers
    plain = requests.post(f"{stack.url}/chat/{widget}/conversations", json={"text": "from a server"}, timeout=15)
    assert plain.status_code == 201 and "Access-Control-Allow-Origin" not in plain.headers


def test_the_widget_script_and_config_are_served(stack: Stack, widget: str) -> None:
    script = requests.get(f"{stack.url}/chat/{widget}/widget.js", timeout=15)
    assert script.status_code == 200 and script.text.strip()
    assert script.headers["Content-Type"] == "application/javascript; charset=utf-8"
    config = requests.get(f"{stack.url}/chat/{widget}/config", headers={"Origin": PORTAL}, timeout=15)
    assert config.json() == {
        "widget_id": widget,
        "auth": "anonymous",
        "client_function": None,
        "allow_anonymous": True,
        "ask_contact": True,
        "session_minutes": 15,
    }
    assert requests.get(f"{stack.url}/chat/no-such-widget/widget.js", timeout=15).status_code == 404
