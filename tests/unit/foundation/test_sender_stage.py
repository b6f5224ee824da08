"""The sender stage: a stored reply reaches the channel's send once, and its delivery says what became of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from fakes.ports import FakeSecrets, FakeSettings, RecordingPublisher

from switchboard import channels, route_stage, sender_stage
from switchboard.aws.conversation_store import DynamoConversations
from switchboard.channels.base import Reply, SendRefused, SendRetryable, Sent
from switchboard.conversations import Conversation, OutMessage, transcript
from switchboard.errors import Permanent, Retryable
from switchboard.outbound import outbound_envelope
from switchboard.route_stage import RouteDeps
from switchboard.sender_stage import ReplyFailed, SenderDeps
from switchboard.settings import Account, Workstream

from ._fakes import envelope

T0 = 1_700_000_000_000
ACCOUNT = Account(id="line-tokyo", channel="line", workstream="social")
SETTINGS = FakeSettings(
    accounts={"line-tokyo": ACCOUNT}, workstreams={"social": Workstream(id="social", fallback_queue="general")}
)
SECRETS = FakeSecrets(values={"sb/account/line/line-tokyo": {"channel_access_token": "tok-123456"}})


class FakeChannel:
    file_kinds: frozenset[str] = frozenset()

    def __init__(self, outcome: Exception | None = None) -> None:
        self.outcome = outcome
        self.sent: list[Reply] = []

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        self.sent.append(reply)
        if self.outcome is not None:
            raise self.outcome
        return Sent(platform_id="plat-1")


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> FakeChannel:
    fake = FakeChannel()
    monkeypatch.setattr(channels, "adapter", lambda name: fake)
    return fake


def conversation_with_reply(store: DynamoConversations, text: str = "on our way") -> tuple[Conversation, OutMessage]:
    deps = RouteDeps(settings=SETTINGS, conversations=store, crm_queue=RecordingPublisher(), clock=lambda: T0 / 1000)
    route_stage.process(envelope("hi", event_id="a", sent_at=T0 - 3000), deps)
    route_stage.process(envelope("anyone?", event_id="b", sent_at=T0 - 1000), deps)
    conversation = store.current("line:line-tokyo:U1")
    assert conversation is not None
    reply = OutMessage(id="r1", conversation_id=conversation.conversation_id, text=text, created_at=T0 + 10_000)
    assert store.put_reply(reply)
    return conversation, reply


def deps(store: DynamoConversations) -> SenderDeps:
    return SenderDeps(
        settings=SETTINGS, secrets=SECRETS, secrets_prefix="sb", conversations=store, http=object(), clock=lambda: T0 / 1000 + 20
    )


def test_a_reply_is_sent_with_the_customers_last_platform_time_and_marked_sent(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation, reply = conversation_with_reply(conversations)
    outcome = sender_stage.process(outbound_envelope(conversation, reply), deps(conversations))
    assert outcome["sent"] is True
    [sent] = channel.sent
    assert (sent.id, sent.customer_id, sent.text, sent.last_customer_message_at) == ("r1", "U1", "on our way", T0 - 1000)
    stored = conversations.reply(conversation.conversation_id, "r1")
    assert stored is not None
    assert (stored.status, stored.sent_at, stored.platform_id, stored.error) == ("sent", T0 + 20_000, "plat-1", None)


def test_a_redelivery_of_a_sent_reply_sends_nothing_again(conversations: DynamoConversations, channel: FakeChannel) -> None:
    conversation, reply = conversation_with_reply(conversations)
    sender_stage.process(outbound_envelope(conversation, reply), deps(conversations))
    again = sender_stage.process(outbound_envelope(conversation, reply), deps(conversations))
    assert again["sent"] is False
    assert len(channel.sent) == 1


def test_a_refusal_marks_the_reply_failed_with_the_reason_and_is_permanent(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    channel.outcome = SendRefused("the user blocked the account", code="blocked")
    conversation, reply = conversation_with_reply(conversations)
    with pytest.raises(ReplyFailed) as raised:
        sender_stage.process(outbound_envelope(conversation, reply), deps(conversations))
    assert isinstance(raised.value, Permanent)
    assert "blocked" in raised.value.message
    stored = conversations.reply(conversation.conversation_id, "r1")
    assert stored is not None and stored.status == "failed" and stored.error and "blocked" in stored.error
    assert stored.sent_at is None


def test_a_channel_without_send_marks_the_reply_failed(conversations: DynamoConversations, channel: FakeChannel) -> None:
    channel.outcome = NotImplementedError()
    conversation, reply = conversation_with_reply(conversations)
    with pytest.raises(ReplyFailed):
        sender_stage.process(outbound_envelope(conversation, reply), deps(conversations))
    stored = conversations.reply(conversation.conversation_id, "r1")
    assert stored is not None and stored.status == "failed" and "not_supported" in (stored.error or "")


def test_a_retryable_failure_stays_pending_and_is_retried(conversations: DynamoConversations, channel: FakeChannel) -> None:
    channel.outcome = SendRetryable("LINE answered 500", retry_after=7)
    conversation, reply = conversation_with_reply(conversations)
    with pytest.raises(Retryable) as raised:
        sender_stage.process(outbound_envelope(conversation, reply), deps(conversations))
    assert raised.value.retry_after == 7
    stored = conversations.reply(conversation.conversation_id, "r1")
    assert stored is not None and stored.status == "pending"
    channel.outcome = None
    assert sender_stage.process(outbound_envelope(conversation, reply), deps(conversations))["sent"] is True
    assert len(channel.sent) == 2


def test_a_chat_reply_is_stored_and_marked_sent_without_calling_a_platform(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation, reply = conversation_with_reply(conversations)
    chat = conversation.with_(channel="chat")
    conversations.save(chat)
    outcome = sender_stage.process(outbound_envelope(chat, reply), deps(conversations))
    assert outcome["sent"] is True
    assert channel.sent == []
    stored = conversations.reply(conversation.conversation_id, "r1")
    assert stored is not None and stored.status == "sent"


def test_a_reply_key_never_collides_with_a_customer_message(conversations: DynamoConversations) -> None:
    conversation, _ = conversation_with_reply(conversations)
    cid = conversation.conversation_id
    # A reply whose id equals a customer message's envelope id is still its own item.
    assert conversations.put_reply(OutMessage(id="line:line-tokyo:a", conversation_id=cid, text="x", created_at=T0 + 11_000))
    assert [m.text for m in conversations.messages(cid)] == ["hi", "anyone?"]
    assert [r.id for r in conversations.replies(cid)] == ["r1", "line:line-tokyo:a"]
    assert not conversations.put_reply(OutMessage(id="r1", conversation_id=cid, text="overwrite?", created_at=T0))
    stored = conversations.reply(cid, "r1")
    assert stored is not None and stored.text == "on our way"
    assert conversations.crm_state(cid).messages_written == 0


def test_the_transcript_lists_both_directions_in_write_order(conversations: DynamoConversations) -> None:
    conversation, _ = conversation_with_reply(conversations)
    cid = conversation.conversation_id
    rows = transcript(conversations.messages(cid), conversations.replies(cid))
    assert [(r["direction"], r["text"]) for r in rows] == [("in", "hi"), ("in", "anyone?"), ("out", "on our way")]
    out = rows[-1]
    assert out["author"] is None and out["crm_id"] is None
    assert out["delivery"] == {"status": "pending", "error": None, "sent_at": None, "unsent_files": []}
