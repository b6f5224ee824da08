"""The crm stage with provider none: records that it ran and marks each message written, exactly once."""

from __future__ import annotations

import pytest
from fakes.ports import FakeSettings, RecordingPublisher

from switchboard import crm_stage, route_stage
from switchboard.aws.conversation_store import DynamoConversations
from switchboard.crm.base import CrmAdapter
from switchboard.crm_stage import CrmDeps
from switchboard.envelope import Envelope, EnvelopeError
from switchboard.errors import ConfigurationError
from switchboard.route_stage import RouteDeps
from switchboard.settings import NO_CRM, Account, CrmSettings, Workstream

from ._fakes import envelope

T0 = 1_700_000_000_000


def no_adapter(settings: CrmSettings) -> CrmAdapter:
    raise AssertionError(f"provider none must not build an adapter (asked for {settings.provider})")


def routed(store: DynamoConversations, *messages: Envelope) -> list[Envelope]:
    """Run messages through route, as the crm stage only sees what route forwarded."""
    publisher = RecordingPublisher()
    settings = FakeSettings(
        accounts={"line-tokyo": Account(id="line-tokyo", channel="line", workstream="social")},
        workstreams={"social": Workstream(id="social", fallback_queue="general")},
    )
    deps = RouteDeps(settings=settings, conversations=store, crm_queue=publisher, clock=lambda: T0 / 1000)
    for message in messages:
        route_stage.process(message, deps)
    return publisher.published


def crm_deps(store: DynamoConversations, now_ms: int = T0 + 5000) -> CrmDeps:
    return CrmDeps(
        settings=FakeSettings(crm_settings=NO_CRM), conversations=store, adapter_for=no_adapter, clock=lambda: now_ms / 1000
    )


def test_provider_none_records_the_run_and_marks_written_once(conversations: DynamoConversations) -> None:
    first, second = routed(conversations, envelope("one", event_id="01A"), envelope("two", event_id="01B", sent_at=T0 + 10))
    conversation_id = first.conversation_id
    assert conversation_id is not None
    assert second.conversation_id == conversation_id
    deps = crm_deps(conversations)

    assert conversations.is_written(conversation_id, first) is False
    outcome = crm_stage.process(first, deps)
    assert outcome == {"conversation_id": conversation_id, "written": True, "provider": "none"}
    state = conversations.crm_state(conversation_id)
    assert state.provider == "none"
    assert state.stage_ran_at == T0 + 5000
    assert state.messages_written == 1
    assert (state.contact_id, state.ticket_id, state.owner_id) == (None, None, None)
    assert conversations.is_written(conversation_id, first) is True
    assert conversations.is_written(conversation_id, second) is False

    again = crm_stage.process(first, crm_deps(conversations, T0 + 9000))
    assert again["written"] is False
    state_after = conversations.crm_state(conversation_id)
    assert state_after.messages_written == 1
    assert state_after.stage_ran_at == T0 + 5000  # a redelivery writes nothing, not even the timestamp

    crm_stage.process(second, crm_deps(conversations, T0 + 7000))
    state = conversations.crm_state(conversation_id)
    assert state.messages_written == 2
    assert state.stage_ran_at == T0 + 7000
    assert conversations.is_written(conversation_id, second) is True


def test_unrouted_envelope_is_refused(conversations: DynamoConversations) -> None:
    with pytest.raises(EnvelopeError):
        crm_stage.process(envelope("x"), crm_deps(conversations))


def test_unknown_conversation_is_a_configuration_error(conversations: DynamoConversations) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        crm_stage.process(envelope("x").with_(conversation_id="0000nope"), crm_deps(conversations))
