"""Exactly once without an idempotency layer: route and the crm stage (provider none) at every crash point.

Each case runs the stage once and kills it at one AWS call, just before the call is sent or just
after its answer came back (every boundary a Lambda environment can die at; tests/fakes/crash.py),
or just after the forward to the crm queue. Then the same envelope is delivered again, as SQS does
after a crash, and runs to the end. What the attempts left together must be what one clean run
leaves: the message stored once, in one conversation, counted once, the customer in that one
conversation, and every forward naming it. A platform's late redelivery afterwards (the
conversation quiet by then, or left for a newer one) must change nothing either.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from fakes.crash import Crash, When, crash_at
from fakes.ports import FakeSettings

from switchboard import crm_stage, route_stage
from switchboard.aws.conversation_store import DynamoConversations
from switchboard.crm.base import CrmAdapter
from switchboard.crm_stage import CrmDeps
from switchboard.envelope import Envelope
from switchboard.route_stage import RouteDeps
from switchboard.settings import NO_CRM, Account, CrmSettings, Workstream

from ._fakes import envelope

T0 = 1_700_000_000_000
CLOSE_AFTER = 5  # minutes
QUIET = (CLOSE_AFTER * 60 + 1) * 1000


@dataclass
class Forwards:
    """The crm queue: records what route forwarded, and can die just after a send."""

    published: list[Envelope] = field(default_factory=list)
    crash_after: bool = False

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.published.extend(envelopes)
        if self.crash_after:
            raise Crash("after the forward")


@dataclass
class Clock:
    ms: int = T0

    def __call__(self) -> float:
        return self.ms / 1000


def route_deps(store: DynamoConversations, clock: Clock, forwards: Forwards) -> RouteDeps:
    settings = FakeSettings(
        accounts={"line-tokyo": Account(id="line-tokyo", channel="line", workstream="social")},
        workstreams={"social": Workstream(id="social", fallback_queue="general", close_after_minutes=CLOSE_AFTER)},
    )
    return RouteDeps(settings=settings, conversations=store, crm_queue=forwards, clock=clock)


def items(table: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        out.extend(page["Items"])
    return out


def check_one_copy(store: DynamoConversations, user: str, message: Envelope, forwards: Forwards) -> str:
    """The message is stored once, in the customer's one live conversation, which counts each of its messages once."""
    rows = items(store.table)
    copies = [r for r in rows if r["sk"]["S"].startswith("m#") and json.loads(r["doc"]["S"])["id"] == message.id]
    assert len(copies) == 1, f"{message.id} stored {len(copies)} times"
    holder = copies[0]["pk"]["S"][2:]
    conversations = [
        json.loads(r["doc"]["S"]) for r in rows if r["sk"]["S"] == "meta" and json.loads(r["doc"]["S"])["customer"]["id"] == user
    ]
    for doc in conversations:  # every conversation holds messages, and counts exactly the ones it holds
        held = [r for r in rows if r["pk"]["S"] == f"c#{doc['conversation_id']}" and r["sk"]["S"].startswith("m#")]
        assert held, f"conversation {doc['conversation_id']} was opened for nothing"
        assert doc["message_count"] == len(held), (doc["message_count"], len(held))
    assert holder in {doc["conversation_id"] for doc in conversations}
    sent = [e for e in forwards.published if e.id == message.id]
    assert sent and {e.conversation_id for e in sent} == {holder}
    return holder


def clean_calls(run: Callable[[], Any]) -> int:
    with crash_at(None) as calls:
        run()
    return len(calls.made)


# -- route -----------------------------------------------------------------------------------------

CASES = ("new conversation", "later message", "after a quiet spell")


@dataclass
class RouteCase:
    store: DynamoConversations
    case: str
    user: str = field(default_factory=lambda: "U" + uuid.uuid4().hex[:12])
    clock: Clock = field(default_factory=Clock)
    forwards: Forwards = field(default_factory=Forwards)
    first: str | None = None  # the conversation the customer was in before the message

    def __post_init__(self) -> None:
        if self.case != "new conversation":
            outcome = route_stage.process(self.message("before", T0), self.deps())
            self.first = outcome["conversation_id"]
        if self.case == "after a quiet spell":
            self.clock.ms = T0 + QUIET
        elif self.case == "later message":
            self.clock.ms = T0 + 1000

    def deps(self) -> RouteDeps:
        return route_deps(self.store, self.clock, self.forwards)

    def message(self, event: str, at: int) -> Envelope:
        return envelope(f"text {event}", event_id=f"{self.user}-{event}", user=self.user, sent_at=at, received_at=at + 50)

    @property
    def the_message(self) -> Envelope:
        return self.message("m", self.clock.ms - 50)

    def run(self) -> dict[str, Any]:
        return route_stage.process(self.the_message, self.deps())


def crash_points(calls: int) -> list[tuple[int, When]]:
    return [(n, when) for n in range(1, calls + 1) for when in ("before", "after")]


@pytest.mark.parametrize("case", CASES)
def test_route_stores_once_whatever_call_it_dies_at(conversations: DynamoConversations, case: str) -> None:
    calls = clean_calls(RouteCase(conversations, case).run)
    assert calls >= 4
    points: list[tuple[int | None, When]] = [*crash_points(calls), (None, "after")]  # None: after the forward
    for n, when in points:
        c = RouteCase(conversations, case)
        if n is None:
            c.forwards.crash_after = True
        with pytest.raises(Crash), crash_at(n, when):
            c.run()
        c.forwards.crash_after = False
        outcome = c.run()  # SQS delivers it again
        holder = check_one_copy(conversations, c.user, c.the_message, c.forwards)
        assert outcome["conversation_id"] == holder
        current = conversations.current(f"line:line-tokyo:{c.user}")
        assert current is not None and current.conversation_id == holder, (n, when)
        if case == "later message":
            assert holder == c.first, (n, when)
        elif case == "after a quiet spell":
            assert holder != c.first, (n, when)
            closed = conversations.get(c.first or "")
            assert closed is not None and closed.closed and closed.message_count == 1


@pytest.mark.parametrize("case", CASES)
def test_a_late_redelivery_finds_the_message_where_it_was_stored(conversations: DynamoConversations, case: str) -> None:
    c = RouteCase(conversations, case)
    message = c.the_message
    holder = c.run()["conversation_id"]

    # Platform redelivery after the conversation went quiet: not a new conversation, not a second copy.
    c.clock.ms += QUIET
    again = route_stage.process(message.with_(received_at=c.clock.ms), c.deps())
    assert again == {"conversation_id": holder, "queue": "general", "duplicate": True}
    check_one_copy(conversations, c.user, message, c.forwards)

    # The customer writes again (a new conversation opens), then the old message is delivered once more.
    newer = route_stage.process(c.message("next", c.clock.ms), c.deps())
    assert newer["conversation_id"] != holder
    c.clock.ms += 60_000
    late = route_stage.process(message.with_(received_at=c.clock.ms), c.deps())
    assert late["conversation_id"] == holder and late["duplicate"] is True
    check_one_copy(conversations, c.user, message, c.forwards)
    assert c.forwards.published[-1].conversation_id == holder  # the crm stage is asked about the copy it has
    assert conversations.current(f"line:line-tokyo:{c.user}").conversation_id == newer["conversation_id"]  # type: ignore[union-attr]


def test_a_redelivery_without_the_platform_time_is_still_one_message(conversations: DynamoConversations) -> None:
    """The message's key is its envelope id alone: a redelivery that says it was sent at another time (a platform
    event without a timestamp takes its receipt time) is the same message."""
    c = RouteCase(conversations, "later message")
    message = c.the_message
    c.run()
    route_stage.process(message.with_(sent_at=message.sent_at + 7_000, received_at=message.received_at + 7_000), c.deps())
    check_one_copy(conversations, c.user, message, c.forwards)


def test_a_redelivery_past_the_horizon_is_not_looked_for_in_conversations_left_long_ago(
    conversations: DynamoConversations,
) -> None:
    """The conversations a customer left are kept findable for the redelivery horizon, then dropped from the read."""
    c = RouteCase(conversations, "after a quiet spell")
    c.run()
    record = conversations.read_customer(f"line:line-tokyo:{c.user}", since=c.clock.ms - route_stage.REDELIVERY_HORIZON_MS)
    assert record.left == (c.first,)
    later = conversations.read_customer(f"line:line-tokyo:{c.user}", since=c.clock.ms + 1)
    assert later.left == ()


# -- crm stage, provider none ----------------------------------------------------------------------


def no_adapter(settings: CrmSettings) -> CrmAdapter:
    raise AssertionError("provider none builds no adapter")


def test_crm_none_marks_once_whatever_call_it_dies_at(conversations: DynamoConversations) -> None:
    def routed() -> Envelope:
        c = RouteCase(conversations, "new conversation")
        c.run()
        return c.forwards.published[-1]

    deps = CrmDeps(settings=FakeSettings(crm_settings=NO_CRM), conversations=conversations, adapter_for=no_adapter)
    forwarded = routed()
    assert clean_calls(lambda: crm_stage.process(forwarded, deps)) == 1  # one conditional write is the whole job
    for n, when in crash_points(1):
        message = routed()
        with pytest.raises(Crash), crash_at(n, when):
            crm_stage.process(message, deps)
        first = crm_stage.process(message, deps)
        assert first["written"] is (when == "before"), (n, when)
        assert crm_stage.process(message, deps)["written"] is False
        state = conversations.crm_state(message.conversation_id or "")
        assert state.messages_written == 1
