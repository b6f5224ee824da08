"""The sender crashes after the platform took a reply and before recording it sent: what the next attempt does.

For every channel with a send API, through the real sender stage and the real channel against the fake
platform: LINE (X-Line-Retry-Key) and GBM (messageId) derive their idempotency key from the reply, so the
retry is recognised and the customer gets one copy; Meta's Send API (Messenger, Instagram) and WhatsApp's
Cloud API have no such key, and this very window is the one way to a second copy (docs/replies.md says so).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes.platform import FakePlatform
from fakes.ports import FakeSecrets, FakeSettings, RecordingPublisher

from switchboard import outbound_http, route_stage, sender_stage
from switchboard.aws.conversation_store import DynamoConversations
from switchboard.conversations import OutMessage
from switchboard.envelope import Customer, Envelope
from switchboard.outbound import outbound_envelope
from switchboard.route_stage import RouteDeps
from switchboard.sender_stage import SenderDeps
from switchboard.settings import Account, Workstream

# Now: Messenger's windows are counted on the platform's clock and checked by the channel against the real one.
T0 = int(time.time() * 1000)


class Crash(BaseException):
    """The process dies: not an exception the stage could catch and classify."""


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        yield fake


def setup_line(platform: FakePlatform) -> tuple[Account, dict[str, Any], str]:
    platform.line_token("line-token")
    account = Account(id="acc", channel="line", workstream="w", options={"api_base_url": platform.url})
    return account, {"channel_access_token": "line-token"}, "U" + "1" * 32


def setup_gbm(platform: FakePlatform) -> tuple[Account, dict[str, Any], str]:
    account = Account(
        id="acc", channel="gbm", workstream="w", options={"api_base_url": platform.url, "brand_id": "b", "agent_id": "a"}
    )
    secrets = {"client_token": "x", "service_account_json": json.dumps(platform.gbm_service_account())}
    return account, secrets, "conv-gbm-1"


def setup_facebook(platform: FakePlatform) -> tuple[Account, dict[str, Any], str]:
    platform.page_token("page-token")
    platform.messenger_customer("psid-1", T0 - 1000)
    account = Account(id="acc", channel="facebook", workstream="w", options={"graph_base_url": platform.url, "page_id": "p1"})
    return account, {"page_access_token": "page-token", "app_secret": "s", "verify_token": "v"}, "psid-1"


def setup_instagram(platform: FakePlatform) -> tuple[Account, dict[str, Any], str]:
    platform.page_token("ig-token")
    platform.messenger_customer("igsid-1", T0 - 1000)
    options = {"graph_base_url": platform.url, "instagram_id": "17841400000000000"}
    account = Account(id="acc", channel="instagram", workstream="w", options=options)
    return account, {"page_access_token": "ig-token", "app_secret": "s", "verify_token": "v"}, "igsid-1"


def setup_whatsapp(platform: FakePlatform) -> tuple[Account, dict[str, Any], str]:
    platform.whatsapp_number("106540352242922", "wa-token")
    platform.whatsapp_customer("447700900123", T0 - 1000)
    options = {"graph_base_url": platform.url, "phone_number_id": "106540352242922"}
    account = Account(id="acc", channel="whatsapp", workstream="w", options=options)
    return account, {"access_token": "wa-token", "app_secret": "s", "verify_token": "v"}, "447700900123"


def delivered(platform: FakePlatform, channel: str) -> int:
    counts: dict[str, Callable[[], list[Any]]] = {
        "line": platform.line_pushes,
        "gbm": platform.gbm_sent,
        "facebook": platform.messenger_sent,
        "instagram": platform.messenger_sent,  # Instagram replies go through the same Send API
        "whatsapp": platform.whatsapp_sent,
    }
    return len(counts[channel]())


@pytest.mark.parametrize(
    ("setup", "copies"),
    [(setup_line, 1), (setup_gbm, 1), (setup_facebook, 2), (setup_instagram, 2), (setup_whatsapp, 2)],
    ids=[
        "line: one copy",
        "gbm: one copy",
        "facebook: the documented second copy",
        "instagram: the documented second copy",
        "whatsapp: the documented second copy",
    ],
)
def test_a_crash_between_the_platforms_acceptance_and_the_record(
    conversations: DynamoConversations,
    platform: FakePlatform,
    monkeypatch: pytest.MonkeyPatch,
    setup: Callable[[FakePlatform], tuple[Account, dict[str, Any], str]],
    copies: int,
) -> None:
    account, secrets, customer = setup(platform)
    channel = account.channel
    settings = FakeSettings(accounts={"acc": account}, workstreams={"w": Workstream(id="w", fallback_queue="q")})
    first = Envelope(
        id=f"{channel}:acc:m1",
        channel=channel,
        account_id="acc",
        customer=Customer(id=customer),
        kind="text",
        text="where is my parcel?",
        sent_at=T0 - 1000,
        received_at=T0 - 900,
        correlation_id="c",
    )
    route_stage.process(first, RouteDeps(settings=settings, conversations=conversations, crm_queue=RecordingPublisher()))
    conversation = conversations.current(first.conversation_key)
    assert conversation is not None
    reply = OutMessage(id="r-crash", conversation_id=conversation.conversation_id, text="on its way", created_at=T0)
    conversations.put_reply(reply)
    deps = SenderDeps(
        settings=settings,
        secrets=FakeSecrets(values={f"sb/account/{channel}/acc": secrets}),
        secrets_prefix="sb",
        conversations=conversations,
        http=outbound_http.Client(outbound_http.LOCAL),
        clock=lambda: T0 / 1000 + 5,
    )
    real_mark = conversations.mark_reply

    def crash_once(*args: Any, **kwargs: Any) -> bool:
        monkeypatch.setattr(conversations, "mark_reply", real_mark)
        raise Crash

    monkeypatch.setattr(conversations, "mark_reply", crash_once)
    with pytest.raises(Crash):
        sender_stage.process(outbound_envelope(conversation, reply), deps)
    assert delivered(platform, channel) == 1  # the platform took it; Switchboard did not record it
    stored = conversations.reply(conversation.conversation_id, "r-crash")
    assert stored is not None and stored.status == "pending"

    assert sender_stage.process(outbound_envelope(conversation, reply), deps)["sent"] is True
    assert delivered(platform, channel) == copies
    stored = conversations.reply(conversation.conversation_id, "r-crash")
    assert stored is not None and stored.status == "sent"
    # Once recorded, a further redelivery sends nothing, on every channel.
    sender_stage.process(outbound_envelope(conversation, reply), deps)
    assert delivered(platform, channel) == copies
