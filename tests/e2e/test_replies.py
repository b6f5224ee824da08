"""`switchboard reply` on the local stack: the outbound queue, the sender stage, LINE's push on the fake platform,
and the transcript with both directions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fakes.platform import FakePlatform

from switchboard.channels.line import sign as sign_line

from ._stack import Stack, dump_config, line_body, new_event_id, new_user, wait_for

pytestmark = pytest.mark.e2e

LINE = "e2e-reply-line"
LINE_SECRETS = {"channel_secret": "e2e-reply-line-secret-e5e5", "channel_access_token": "e2e-reply-line-token-f6f6"}


@pytest.fixture(scope="module")
def platform(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.line_token(LINE_SECRETS["channel_access_token"])
        document = {
            "accounts": [
                {
                    "id": LINE,
                    "channel": "line",
                    "name": "LINE replies e2e",
                    "workstream": "replies",
                    "api_base_url": fake.url,
                    "data_base_url": fake.url,
                    "secrets": LINE_SECRETS,
                }
            ],
            "workstreams": [{"id": "replies", "fallback_queue": "replies"}],
        }
        path = tmp_path_factory.mktemp("replies") / "replies.yaml"
        path.write_text(dump_config(document))
        applied = stack.cli("apply", str(path)).stdout
        assert f"account {LINE}" in applied, applied
        yield fake


def post_line_text(stack: Stack, user: str, text: str) -> None:
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": new_event_id(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": uuid.uuid4().hex,
        "message": {"id": str(uuid.uuid4().int % 10**18), "type": "text", "text": text},
    }
    body = line_body(event)
    headers = {"Content-Type": "application/json", "X-Line-Signature": sign_line(LINE_SECRETS["channel_secret"], body)}
    answer = requests.post(f"{stack.url}/webhooks/line/{LINE}", data=body, headers=headers, timeout=10)
    assert (answer.status_code, answer.text) == (200, "{}")


def test_a_reply_reaches_line_push_once_and_the_transcript_shows_both_directions(stack: Stack, platform: FakePlatform) -> None:
    user = new_user()
    post_line_text(stack, user, "where is my parcel?")
    conversation_id = stack.wait_conversation(LINE, user)["conversation_id"]

    printed = json.loads(stack.cli("reply", conversation_id, "--text", "It left the depot this morning.", "--json").stdout)
    message_id = printed["message_id"]

    def pushed() -> list[Any] | None:
        found = [p for p in platform.line_pushes() if p.to == user]
        return found or None

    (push,) = wait_for(pushed, "the reply pushed to LINE")
    assert push.messages == [{"type": "text", "text": "It left the depot this morning."}]
    assert push.retry_key

    def sent() -> dict[str, Any] | None:
        view = stack.show(conversation_id)
        out = [m for m in view["messages"] if m["direction"] == "out"]
        return view if out and out[0]["delivery"]["status"] == "sent" else None

    view = wait_for(sent, "the reply marked sent")
    assert [(m["direction"], m["text"]) for m in view["messages"]] == [
        ("in", "where is my parcel?"),
        ("out", "It left the depot this morning."),
    ]
    out = view["messages"][1]
    assert out["id"] == message_id
    assert (out["author"], out["crm_id"], out["delivery"]["error"]) == (None, None, None)
    assert out["delivery"]["sent_at"]
    assert len([p for p in platform.line_pushes() if p.to == user]) == 1

    human = stack.cli("conversations", "show", conversation_id).stdout
    assert "reply [sent] It left the depot this morning." in human


def test_a_reply_to_no_conversation_is_refused_and_queues_nothing(stack: Stack, platform: FakePlatform) -> None:
    before = len(platform.line_pushes())
    answer = stack.cli("reply", "no-such-conversation", "--text", "hello?", check=False)
    assert answer.returncode == 1
    assert "no conversation no-such-conversation" in answer.stderr
    assert len(platform.line_pushes()) == before
