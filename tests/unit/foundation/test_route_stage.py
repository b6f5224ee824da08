"""The route stage against DynamoDB (moto) with the template's conversations table."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import pytest
from fakes.ports import FakeSettings, RecordingPublisher

from switchboard import route_stage
from switchboard.aws.conversation_store import LIST_REFRESH_MS, DynamoConversations
from switchboard.errors import ConfigurationError
from switchboard.route_stage import RouteDeps
from switchboard.settings import Account, Condition, Rule, Widget, Workstream

from ._fakes import envelope

T0 = 1_700_000_000_000


@dataclass
class Clock:
    now: float = T0 / 1000

    def __call__(self) -> float:
        return self.now


def settings(close_after_minutes: int = 1440) -> FakeSettings:
    social = Workstream(
        id="social",
        fallback_queue="general",
        close_after_minutes=close_after_minutes,
        rules=(
            Rule(name="refunds", queue="billing", priority=2, when=(Condition("message.text", "contains", "refund"),)),
            Rule(name="big", queue="sales", when=(Condition("message.text", "gt", 5000),)),
        ),
    )
    return FakeSettings(
        accounts={
            "line-tokyo": Account(id="line-tokyo", channel="line", workstream="social"),
            "line-lost": Account(id="line-lost", channel="line", workstream="gone"),
        },
        workstreams={"social": social},
        widgets={"web": Widget(id="web", workstream="gone")},
    )


def deps(store: DynamoConversations, clock: Clock | None = None, **kw: int) -> RouteDeps:
    return RouteDeps(settings=settings(**kw), conversations=store, crm_queue=RecordingPublisher(), clock=clock or Clock())


def forwarded(d: RouteDeps) -> RecordingPublisher:
    assert isinstance(d.crm_queue, RecordingPublisher)
    return d.crm_queue


def test_opens_a_conversation_and_routes_by_rule(conversations: DynamoConversations) -> None:
    d = deps(conversations)
    outcome = route_stage.process(envelope("I need a refund", event_id="01A", user="Ualice"), d)
    assert outcome["queue"] == "billing"
    assert outcome["duplicate"] is False
    conversation = conversations.get(outcome["conversation_id"])
    assert conversation is not None
    assert conversation.customer.id == "Ualice"
    assert (conversation.workstream, conversation.queue, conversation.priority, conversation.rule) == (
        "social",
        "billing",
        2,
        "refunds",
    )
    assert conversation.message_count == 1
    assert conversation.channel == "line"
    assert conversation.account_id == "line-tokyo"
    assert conversations.current("line:line-tokyo:Ualice") == conversation
    assert [m.text for m in conversations.messages(conversation.conversation_id)] == ["I need a refund"]
    (sent,) = forwarded(d).published
    assert sent.conversation_id == conversation.conversation_id
    assert sent.routing is not None
    assert (sent.routing.queue, sent.routing.priority, sent.routing.workstream) == ("billing", 2, "social")
    assert [c.conversation_id for c in conversations.recent()] == [conversation.conversation_id]
    assert [c.conversation_id for c in conversations.recent(queue="billing")] == [conversation.conversation_id]
    assert conversations.recent(queue="general") == []


@pytest.mark.parametrize(
    ("text", "queue", "priority"), [("10000", "sales", 10), ("999", "general", 10), ("hello", "general", 10)]
)
def test_numeric_text_rule_and_fallback(conversations: DynamoConversations, text: str, queue: str, priority: int) -> None:
    outcome = route_stage.process(envelope(text, event_id="01N", user="Unum"), deps(conversations))
    conversation = conversations.get(outcome["conversation_id"])
    assert conversation is not None
    assert (conversation.queue, conversation.priority) == (queue, priority)


def test_later_messages_join_the_same_conversation_and_keep_its_queue(conversations: DynamoConversations) -> None:
    d = deps(conversations)
    first = route_stage.process(envelope("refund please", event_id="01A", user="Ubob"), d)
    second = route_stage.process(envelope("10000", event_id="01B", user="Ubob", sent_at=T0 + 1000), d)
    assert second["conversation_id"] == first["conversation_id"]
    assert second["queue"] == "billing"  # routing facts unchanged: no re-route on every message
    conversation = conversations.get(first["conversation_id"])
    assert conversation is not None
    assert conversation.message_count == 2
    other = route_stage.process(envelope("refund", event_id="01C", user="Ucarol"), d)
    assert other["conversation_id"] != first["conversation_id"]


def test_duplicate_envelope_is_stored_once(conversations: DynamoConversations) -> None:
    d = deps(conversations)
    message = envelope("refund", event_id="01DUP", user="Udup")
    first = route_stage.process(message, d)
    again = route_stage.process(message, d)
    assert again["conversation_id"] == first["conversation_id"]
    assert again["duplicate"] is True
    conversation = conversations.get(first["conversation_id"])
    assert conversation is not None
    assert conversation.message_count == 1
    assert [m.id for m in conversations.messages(first["conversation_id"])] == ["line:line-tokyo:01DUP"]


def test_messages_are_ordered_by_sent_time(conversations: DynamoConversations) -> None:
    d = deps(conversations)
    order = [3, 0, 4, 1, 2]  # delivered out of order
    conversation_id = None
    for i in order:
        outcome = route_stage.process(envelope(f"m{i:02d}", event_id=f"01M{i:02d}", user="Uord", sent_at=T0 + i * 10), d)
        conversation_id = conversation_id or outcome["conversation_id"]
        assert outcome["conversation_id"] == conversation_id
    assert conversation_id is not None
    assert [m.text for m in conversations.messages(conversation_id)] == ["m00", "m01", "m02", "m03", "m04"]


def test_same_millisecond_keeps_arrival_order(conversations: DynamoConversations) -> None:
    d = deps(conversations)
    ids = []
    for i in range(5):
        ids.append(route_stage.process(envelope(f"m{i}", event_id=f"01S{9 - i}", user="Usame", sent_at=T0), d)["conversation_id"])
    assert len(set(ids)) == 1
    assert [m.text for m in conversations.messages(ids[0])] == ["m0", "m1", "m2", "m3", "m4"]


def test_quiet_conversation_closes_and_next_message_opens_a_new_one(conversations: DynamoConversations) -> None:
    clock = Clock()
    d = deps(conversations, clock, close_after_minutes=5)
    first = route_stage.process(envelope("hello", event_id="01Q1", user="Uquiet", sent_at=T0), d)
    soon = T0 + 4 * 60_000
    clock.now = soon / 1000
    second = route_stage.process(envelope("still here", event_id="01Q2", user="Uquiet", sent_at=soon), d)
    assert second["conversation_id"] == first["conversation_id"]
    late = soon + 5 * 60_000 + 1
    clock.now = late / 1000
    third = route_stage.process(envelope("refund", event_id="01Q3", user="Uquiet", sent_at=late), d)
    assert third["conversation_id"] != first["conversation_id"]
    assert third["queue"] == "billing"
    old = conversations.get(first["conversation_id"])
    new = conversations.get(third["conversation_id"])
    assert old is not None
    assert new is not None
    assert old.closed is True
    assert old.status(late) == "closed"
    assert new.status(late) == "open"
    assert new.message_count == 1
    assert [m.text for m in conversations.messages(first["conversation_id"])] == ["hello", "still here"]
    assert [m.text for m in conversations.messages(third["conversation_id"])] == ["refund"]
    assert conversations.current("line:line-tokyo:Uquiet") == new


@pytest.mark.parametrize(
    ("account_id", "channel", "match"),
    [
        ("line-lost", "line", "workstream 'gone'"),
        ("line-nobody", "line", "account 'line-nobody'"),
        ("web", "chat", "workstream 'gone'"),
    ],
)
def test_missing_configuration_raises(conversations: DynamoConversations, account_id: str, channel: str, match: str) -> None:
    d = deps(conversations)
    message = envelope("hi", event_id="01X", account_id=account_id, user="Ulost").with_(channel=channel)
    with pytest.raises(ConfigurationError, match=match):
        route_stage.process(message, d)
    assert conversations.recent() == []
    assert forwarded(d).published == []


def indexed_time(conversations: DynamoConversations, conversation_id: str) -> int:
    item = boto3.client("dynamodb").get_item(
        TableName=conversations.table, Key={"pk": {"S": f"c#{conversation_id}"}, "sk": {"S": "meta"}}, ConsistentRead=True
    )["Item"]
    return int(item["updated_at"]["N"])


def test_the_indexed_time_moves_only_when_it_lags_by_the_refresh_span(conversations: DynamoConversations) -> None:
    """Every change of the indexed time rewrites the conversation in three indexes (six write units): a later message
    leaves it as it is until it lags the conversation's own time by LIST_REFRESH_MS."""
    clock = Clock()
    d = deps(conversations, clock)
    first = route_stage.process(envelope("hello", event_id="01L1", user="Ulist", sent_at=T0), d)["conversation_id"]
    assert indexed_time(conversations, first) == T0

    clock.now = (T0 + LIST_REFRESH_MS - 1000) / 1000
    route_stage.process(envelope("more", event_id="01L2", user="Ulist", sent_at=T0 + 1000), d)
    conversation = conversations.get(first)
    assert conversation is not None and conversation.updated_at == T0 + LIST_REFRESH_MS - 1000
    assert indexed_time(conversations, first) == T0  # unchanged: no index write

    clock.now = (T0 + LIST_REFRESH_MS) / 1000
    route_stage.process(envelope("and more", event_id="01L3", user="Ulist", sent_at=T0 + 2000), d)
    assert indexed_time(conversations, first) == T0 + LIST_REFRESH_MS


def test_lists_are_newest_first_by_the_conversations_own_time(conversations: DynamoConversations) -> None:
    clock = Clock()
    d = deps(conversations, clock)
    a = route_stage.process(envelope("a", event_id="01O1", user="Ua", sent_at=T0), d)["conversation_id"]
    clock.now = (T0 + 60_000) / 1000
    b = route_stage.process(envelope("b", event_id="01O2", user="Ub", sent_at=T0 + 60_000), d)["conversation_id"]
    clock.now = (T0 + 120_000) / 1000
    route_stage.process(envelope("a again", event_id="01O3", user="Ua", sent_at=T0 + 120_000), d)
    assert indexed_time(conversations, a) < indexed_time(conversations, b)  # the index alone would put b first

    assert [c.conversation_id for c in conversations.recent(limit=1)] == [a]
    assert [c.conversation_id for c in conversations.recent()] == [a, b]
    assert [c.conversation_id for c in conversations.recent(queue="general", limit=1)] == [a]
    assert [c.conversation_id for c in conversations.recent(channel="line", limit=2)] == [a, b]
