"""The crm stage with every CRM: real adapters against the fake CRM server, conversations in moto's DynamoDB.

One contact and one ticket per conversation however often a message arrives, the contact reused by
the customer's next conversation, the default user as interface section 3 says, and no second
ticket after a crash between the CRM's answer and the stage recording it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from crm_support import split_section
from fakes.crash import Crash, When, crash_at
from fakes.crm import RECORD_KINDS, SF_DEFAULT_CASE_OWNER, SF_REFRESH_TOKENS, FakeCrm

from switchboard import crm_stage
from switchboard.aws.conversation_store import DynamoConversations, DynamoProfiles
from switchboard.conversations import Conversation, CrmState
from switchboard.crm import registry
from switchboard.crm.base import CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.crm.factory import AdapterCache
from switchboard.crm_stage import CrmDeps
from switchboard.envelope import Customer, Envelope, Identity
from switchboard.errors import SecretMissing
from switchboard.settings import CrmSettings, crm_from_dict

PROVIDERS = registry.names()
T0 = 1_751_339_045_000
KINDS = RECORD_KINDS
# Calls that open a ticket for a contact the profile knows: the ticket call alone, but Kustomer records
# the first message with a call of its own (bench/crm_calls.py's goal is at most 2).
OPENING_CALLS = {"kustomer": 2}


@dataclass
class Settings:
    crm_settings: CrmSettings

    def crm(self) -> CrmSettings:
        return self.crm_settings


@dataclass
class Secrets:
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, name: str) -> dict[str, Any]:
        if name not in self.values:
            raise SecretMissing(name)
        return self.values[name]


class CrashingStore(DynamoConversations):
    """Raises in ``save_crm_state`` once ``when`` says so: a crash between a CRM call and recording its answer."""

    def __init__(self, table: str, when: Callable[[CrmState], bool]) -> None:
        super().__init__(table)
        self.when = when
        self.crashed = False

    def save_crm_state(self, conversation_id: str, state: CrmState) -> None:
        if not self.crashed and self.when(state):
            self.crashed = True
            raise RuntimeError("crashed before the id was recorded")
        super().save_crm_state(conversation_id, state)


@dataclass
class World:
    crm: FakeCrm
    store: DynamoConversations
    profiles: DynamoProfiles
    settings: Settings
    adapters: AdapterCache
    uid: str  # the moto tables are shared by the module: every test names its own conversations and customers

    def deps(self, store: DynamoConversations | None = None) -> CrmDeps:
        return CrmDeps(
            settings=self.settings,
            conversations=store or self.store,
            adapter_for=self.adapters.adapter_for,
            clock=lambda: T0 / 1000 + 60,
            profiles=self.profiles,
        )

    def configure(self, provider: str, **section: Any) -> None:
        doc, secrets = split_section(self.crm.config(provider, **section))
        self.settings.crm_settings = crm_from_dict(doc)
        self.adapters.secrets.values["switchboard/unit/crm"] = secrets  # type: ignore[attr-defined]

    def conversation(self, user: str = "U1", *, conversation_id: str = "c-1", identity: Identity | None = None) -> Conversation:
        conversation = Conversation(
            conversation_id=self.id(conversation_id),
            channel="line",
            account_id="line-tokyo",
            customer=Customer(id=f"{user}-{self.uid}", name="Taro Yamada"),
            workstream="social",
            queue="billing",
            priority=2,
            created_at=T0,
            updated_at=T0,
            last_message_at=T0,
            close_after_minutes=1440,
            identity=identity or Identity(),
        )
        self.store.open(conversation, replacing=None)
        return conversation

    def id(self, conversation_id: str) -> str:
        return f"{conversation_id}-{self.uid}"

    def state(self, conversation_id: str) -> CrmState:
        return self.store.crm_state(self.id(conversation_id))

    def message(self, conversation: Conversation, n: int, text: str | None = None) -> Envelope:
        envelope = Envelope(
            id=f"line:line-tokyo:{conversation.conversation_id}-{n}",
            channel="line",
            account_id="line-tokyo",
            customer=conversation.customer,
            kind="text",
            sent_at=T0 + n,
            received_at=T0 + n + 5,
            correlation_id=f"corr-{n}",
            text=text or f"message {n}",
            conversation_id=conversation.conversation_id,
        )
        self.store.add_message(conversation.conversation_id, envelope, seq=n)
        return envelope

    def count(self, provider: str, which: int) -> int:
        kind = KINDS[provider][which]
        records = self.crm.records(provider, kind)
        if provider == "zendesk" and which == 0:
            records = [r for r in records if r.get("role") == "end-user"]
        return len(records)


@pytest.fixture
def world(aws: dict[str, str], fake_crm: FakeCrm) -> World:
    table = aws["CONVERSATIONS_TABLE"]
    return World(
        crm=fake_crm,
        store=DynamoConversations(table),
        profiles=DynamoProfiles(table),
        settings=Settings(CrmSettings("none")),
        adapters=AdapterCache(Secrets(), "switchboard/unit/crm"),
        uid=uuid.uuid4().hex[:10],
    )


def api_calls(world: World, provider: str) -> int:
    return len(world.crm.calls(provider=provider, kind="api"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_one_contact_one_ticket_then_appends_and_redelivery_writes_nothing(world: World, provider: str) -> None:
    world.configure(provider, default_user={"enabled": True})
    conversation = world.conversation()
    first, second = world.message(conversation, 1, "I need a refund"), world.message(conversation, 2, "order 1234")

    outcome = crm_stage.process(first, world.deps())
    assert outcome["action"] == "opened"
    state = world.state("c-1")
    assert state.provider == provider
    assert state.contact_id and state.ticket_id
    assert state.owner_id == world.crm.admin_id(provider)  # enabled: the admin owns what opens the conversation
    assert (world.count(provider, 0), world.count(provider, 1)) == (1, 1)
    profile = world.profiles.profile(conversation.key)
    assert profile is not None and profile.contacts == {provider: state.contact_id}

    assert crm_stage.process(second, world.deps())["action"] == "appended"
    calls_before = len(world.crm.log)
    for envelope in (first, second):  # SQS redelivery of both
        assert crm_stage.process(envelope, world.deps())["written"] is False
    assert len(world.crm.log) == calls_before
    assert (world.count(provider, 0), world.count(provider, 1)) == (1, 1)
    after = world.state("c-1")
    assert (after.contact_id, after.ticket_id, after.messages_written) == (state.contact_id, state.ticket_id, 2)
    assert world.store.is_written(world.id("c-1"), first) and world.store.is_written(world.id("c-1"), second)

    (ticket,) = world.crm.tickets(provider, world.id("c-1"))
    assert world.crm.texts(provider, ticket) == ["I need a refund", "order 1234"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_next_conversation_reuses_the_contact(world: World, provider: str) -> None:
    opening_calls = OPENING_CALLS.get(provider, 1)
    world.configure(provider)
    old = world.conversation(conversation_id="c-old")
    crm_stage.process(world.message(old, 1), world.deps())
    contact = world.state("c-old").contact_id

    new = world.conversation(conversation_id="c-new")
    before = api_calls(world, provider)
    crm_stage.process(world.message(new, 1), world.deps())
    assert api_calls(world, provider) - before == opening_calls  # no contact call: the profile knew it
    state = world.state("c-new")
    assert state.contact_id == contact and state.ticket_id != world.state("c-old").ticket_id
    assert (world.count(provider, 0), world.count(provider, 1)) == (1, 2)

    before = api_calls(world, provider)
    crm_stage.process(world.message(new, 2), world.deps())
    assert api_calls(world, provider) - before == 1  # one call per later message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_crash_after_the_ticket_was_created_makes_no_second_ticket(world: World, provider: str) -> None:
    world.configure(provider)
    conversation = world.conversation()
    first = world.message(conversation, 1)
    crashing = CrashingStore(world.store.table, when=lambda state: state.ticket_id is not None)
    with pytest.raises(RuntimeError, match="crashed"):
        crm_stage.process(first, world.deps(crashing))
    assert world.count(provider, 1) == 1  # the CRM has the ticket; the conversation does not know it
    assert world.state("c-1").ticket_id is None
    if provider == "zendesk":
        world.crm.zendesk_keys.clear()  # even after the idempotency key expired (two hours)

    crm_stage.process(first, world.deps())
    assert (world.count(provider, 0), world.count(provider, 1)) == (1, 1)
    state = world.state("c-1")
    (ticket,) = world.crm.records(provider, KINDS[provider][1])
    assert state.ticket_id == str(ticket.get("id") or ticket.get("Id") or ticket.get("incidentid"))
    if provider == "kustomer":  # the first message was recorded once
        assert len(world.crm.records("kustomer", "messages")) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_crash_after_the_contact_was_created_makes_no_second_contact(world: World, provider: str) -> None:
    world.configure(provider)
    conversation = world.conversation()
    first = world.message(conversation, 1)
    crashing = CrashingStore(world.store.table, when=lambda state: state.contact_id is not None)
    with pytest.raises(RuntimeError, match="crashed"):
        crm_stage.process(first, world.deps(crashing))
    assert (world.count(provider, 0), world.count(provider, 1)) == (1, 0)
    crm_stage.process(first, world.deps())
    assert (world.count(provider, 0), world.count(provider, 1)) == (1, 1)


def test_first_attempt_looks_nothing_up_and_a_retry_does(world: World) -> None:
    world.configure("zendesk")
    conversation = world.conversation()
    first = world.message(conversation, 1)
    world.crm.fail_next(1, status=503, provider="zendesk", path_contains="tickets")
    with pytest.raises(CrmRetryable):
        crm_stage.process(first, world.deps())
    assert world.state("c-1").ticket_attempted_at is not None
    crm_stage.process(first, world.deps())
    methods = [(c.method, c.path.rsplit("/", 1)[-1]) for c in world.crm.calls(provider="zendesk", kind="api")]
    assert methods == [
        ("POST", "create_or_update.json"),
        ("POST", "tickets.json"),  # 503
        ("GET", "tickets.json"),  # the retry looks for the ticket first
        ("POST", "tickets.json"),
    ]
    assert world.count("zendesk", 1) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_default_user_off_leaves_records_unassigned_where_the_crm_allows(world: World, provider: str) -> None:
    world.configure(provider)  # default_user absent: off
    conversation = world.conversation()
    crm_stage.process(world.message(conversation, 1), world.deps())
    state = world.state("c-1")
    (ticket,) = world.crm.tickets(provider, world.id("c-1"))
    # None, unless the CRM cannot leave a ticket unassigned (Dynamics: the application user owns it).
    expected = world.adapters.adapter_for(world.settings.crm()).ticket_owner(None)
    assert state.owner_id == expected == world.crm.ticket_owner(provider, ticket)
    if provider == "salesforce":
        assert ticket["SforceAutoAssign"] is None and ticket["OwnerId"] == SF_DEFAULT_CASE_OWNER  # assignment rules decide
    if provider == "dynamics":
        assert expected == world.crm.admin_id("dynamics")
    assert not any(c.kind == "whoami" for c in world.crm.calls(provider="zendesk"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_default_user_enabled_owns_the_opening_records_only(world: World, provider: str) -> None:
    world.configure(provider, default_user={"enabled": True, "always": False})
    conversation = world.conversation()
    crm_stage.process(world.message(conversation, 1), world.deps())
    crm_stage.process(world.message(conversation, 2), world.deps())
    admin = world.crm.admin_id(provider)
    (ticket,) = world.crm.tickets(provider, world.id("c-1"))
    assert world.crm.ticket_owner(provider, ticket) == admin
    if provider == "zendesk":
        put = world.crm.calls(provider="zendesk", kind="api")[-1]
        assert put.method == "PUT" and "assignee_id" not in put.body["ticket"]  # a later message is not the admin's
    elif provider == "salesforce":
        assert ticket["SforceAutoAssign"] == "FALSE"
        contact = world.crm.records("salesforce", "Contact")[0]
        assert contact["OwnerId"] == admin
    elif provider == "dynamics":
        note = world.crm.records("dynamics", "annotations")[0]
        assert world.crm.calls(provider="dynamics", kind="api")[-1].body.get("ownerid@odata.bind") is None
        assert note["_ownerid_value"] == admin  # created by the application user anyway


@pytest.mark.parametrize("provider", PROVIDERS)
def test_default_user_always_owns_later_records_too(world: World, provider: str) -> None:
    world.configure(provider, default_user={"enabled": False, "always": True})
    conversation = world.conversation()
    crm_stage.process(world.message(conversation, 1), world.deps())
    crm_stage.process(world.message(conversation, 2), world.deps())
    admin = world.crm.admin_id(provider)
    last = world.crm.calls(provider=provider, kind="api")[-1]
    if provider == "zendesk":
        assert last.body["ticket"]["assignee_id"] == int(admin)
    elif provider == "dynamics":
        assert last.body["ownerid@odata.bind"] == f"/systemusers({admin})"
    elif provider == "salesforce":  # a CaseComment has no owner: the linked admin creates it in every mode
        assert set(last.body) == {"ParentId", "CommentBody"}
        assert world.crm.records("salesforce", "CaseComment")[0]["CreatedById"] == admin
    elif provider == "kustomer":  # a Kustomer message has no owner; the conversation stays the admin's
        assert "assignedUsers" not in last.body
    (ticket,) = world.crm.tickets(provider, world.id("c-1"))
    assert world.crm.ticket_owner(provider, ticket) == admin
    assert world.state("c-1").owner_id == admin


@pytest.mark.parametrize("provider", PROVIDERS)
def test_authenticated_contact_id_is_the_contact_when_the_crm_has_it(world: World, provider: str) -> None:
    world.configure(provider)
    # A contact the CRM already has (made through another conversation), named by the sign-in's sub.
    other = world.conversation("U-other", conversation_id="c-other")
    crm_stage.process(world.message(other, 1), world.deps())
    sub = world.state("c-other").contact_id
    assert sub is not None

    signed_in = world.conversation(
        "visitor-9", conversation_id="c-signed", identity=Identity(authenticated=True, contact_id=sub, expires_at=None)
    )
    crm_stage.process(world.message(signed_in, 1), world.deps())
    assert world.state("c-signed").contact_id == sub
    assert world.count(provider, 0) == 1  # no contact was created for the visitor

    unknown = world.conversation(
        "visitor-10",
        conversation_id="c-unknown",
        identity=Identity(authenticated=True, contact_id="portal-user-that-the-crm-does-not-know"),
    )
    crm_stage.process(world.message(unknown, 1), world.deps())
    assert world.state("c-unknown").contact_id not in (None, sub)
    assert world.count(provider, 0) == 2


def test_salesforce_failover_is_recorded_on_the_conversation(world: World) -> None:
    world.configure("salesforce", default_user={"enabled": True})
    world.crm.revoke_refresh_token(SF_REFRESH_TOKENS[0])
    conversation = world.conversation()
    crm_stage.process(world.message(conversation, 1), world.deps())
    state = world.state("c-1")
    (notice,) = state.notices
    assert "refresh token #1 of 2" in notice and "failing over to #2" in notice
    assert state.owner_id != world.crm.admin_id("salesforce")  # the second linked admin owns it now
    assert world.count("salesforce", 1) == 1
    for secret in SF_REFRESH_TOKENS:
        assert secret not in notice


@pytest.mark.parametrize("provider", PROVIDERS)
def test_faults_surface_as_the_error_class_the_runner_acts_on(world: World, provider: str) -> None:
    world.configure(provider)
    conversation = world.conversation()
    first = world.message(conversation, 1)
    world.crm.fail_next(1, status=500, provider=provider)
    with pytest.raises(CrmRetryable):
        crm_stage.process(first, world.deps())
    world.crm.fail_next(1, status=429, provider=provider, retry_after=7)
    with pytest.raises(CrmRateLimited) as limited:
        crm_stage.process(first, world.deps())
    assert limited.value.retry_after == 7
    crm_stage.process(first, world.deps())
    assert (world.count(provider, 0), world.count(provider, 1)) == (1, 1)


@pytest.mark.parametrize("provider", ["salesforce", "dynamics"])
def test_expired_token_is_refreshed_once(world: World, provider: str) -> None:
    world.configure(provider)
    conversation = world.conversation()
    crm_stage.process(world.message(conversation, 1), world.deps())
    tokens_before = len(world.crm.calls(provider=provider, kind="token"))
    world.crm.expire_tokens(provider)
    crm_stage.process(world.message(conversation, 2), world.deps())
    assert len(world.crm.calls(provider=provider, kind="token")) == tokens_before + 1
    statuses = [c.status for c in world.crm.calls(provider=provider, kind="api")][-2:]
    assert statuses[0] == 401 and statuses[1] < 300


def test_validation_error_carries_the_crms_own_message(world: World) -> None:
    world.configure("kustomer", channel_map={"line": "carrier-pigeon"})  # a channel Kustomer does not have
    conversation = world.conversation()
    with pytest.raises(CrmRejected) as info:
        crm_stage.process(world.message(conversation, 1), world.deps())
    assert "HTTP 400" in info.value.message and '"channel" must be one of' in info.value.message


def test_switching_crm_mid_conversation_opens_in_the_new_one(world: World) -> None:
    world.configure("zendesk")
    conversation = world.conversation()
    crm_stage.process(world.message(conversation, 1), world.deps())
    world.configure("kustomer")
    crm_stage.process(world.message(conversation, 2), world.deps())
    state = world.state("c-1")
    assert state.provider == "kustomer"
    assert state.ticket_id == world.crm.records("kustomer", "conversations")[0]["id"]
    profile = world.profiles.profile(conversation.key)
    assert profile is not None and set(profile.contacts) == {"zendesk", "kustomer"}


def test_adapter_is_rebuilt_only_when_settings_or_secret_change(world: World) -> None:
    world.configure("dynamics")
    conversation = world.conversation()
    crm_stage.process(world.message(conversation, 1), world.deps())
    crm_stage.process(world.message(conversation, 2), world.deps())
    assert world.adapters.builds == 1
    assert len(world.crm.calls(provider="dynamics", kind="token")) == 1  # the token is cached across messages
    world.configure("dynamics", secrets={"client_secret": "rotated"})
    with pytest.raises(Exception, match="Invalid client secret"):
        crm_stage.process(world.message(conversation, 3), world.deps())
    assert world.adapters.builds == 2


# -- every crash point, every CRM ------------------------------------------------------------------


def _crash_points(run: Callable[[], Any]) -> list[tuple[int, When, str]]:
    """Each AWS call of a clean run, as (position, before/after, operation)."""
    with crash_at(None) as calls:
        run()
    return [(n, when, name) for n, name in enumerate(calls.made, start=1) for when in ("before", "after")]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("phase", ["opening", "appending"])
def test_every_crash_point_leaves_one_contact_one_ticket_and_each_message_once(world: World, provider: str, phase: str) -> None:
    """The stage dies at each AWS call of its run (before it is sent, or after its answer came back), then the message
    is delivered again, and once more. One contact, one ticket, each message in it once, whatever the point; the one
    exception is the documented window of appending: a crash before the mark that follows the CRM's append (closed
    on the CRM side where its append is idempotent, as Dynamics' create-once note is)."""
    world.configure(provider)
    runs = iter(range(1_000))

    def conversation_with_messages() -> tuple[Conversation, Envelope, Envelope]:
        i = next(runs)
        conversation = world.conversation(f"U{i}", conversation_id=f"c-{phase}-{i}")
        first, second = (
            world.message(conversation, 1, f"first {i} {world.uid}"),
            world.message(conversation, 2, f"second {i} {world.uid}"),
        )
        if phase == "appending":
            crm_stage.process(first, world.deps())
        return conversation, first, second

    conversation, first, second = conversation_with_messages()
    points = _crash_points(lambda: crm_stage.process(first if phase == "opening" else second, world.deps()))
    assert points[-1][2] == "UpdateItem"  # the written mark is the last call
    for n, when, operation in points:
        conversation, first, second = conversation_with_messages()
        message = first if phase == "opening" else second
        with pytest.raises(Crash), crash_at(n, when):
            crm_stage.process(message, world.deps())
        crm_stage.process(message, world.deps())  # SQS delivers it again
        assert crm_stage.process(message, world.deps())["written"] is False  # and again: already written

        where = f"{phase}, crash {when} call {n} ({operation})"
        assert len(world.crm.contacts(provider, conversation.key)) == 1, where
        (ticket,) = world.crm.tickets(provider, conversation.conversation_id)
        texts = world.crm.texts(provider, ticket)
        in_window = phase == "appending" and when == "before" and n == len(points) // 2
        assert texts.count(first.text) == 1, where
        if phase == "appending":  # twice only in the window, and only where the CRM's append is not itself idempotent
            assert texts.count(second.text) in ((1, 2) if in_window else (1,)), where
            assert texts[-1] == second.text, where
        assert world.store.is_written(conversation.conversation_id, message), where
