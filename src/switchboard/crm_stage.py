"""The crm stage: write the contact and the ticket/case, then each later message, exactly once.

Ids the CRM returns are recorded on the conversation the moment they exist, and every message is
marked written once appended, so SQS redelivery or a crash between two calls never creates a
second record: the next attempt resumes where the last one stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from switchboard.conversations import Conversation, CrmState
from switchboard.crm.base import ConversationRef, CrmAdapter
from switchboard.envelope import Envelope, EnvelopeError
from switchboard.ports import ConversationStore, SettingsReader
from switchboard.route_stage import ConfigurationError
from switchboard.settings import CrmSettings

AdapterFactory = Callable[[CrmSettings], CrmAdapter]


@dataclass
class CrmDeps:
    settings: SettingsReader
    conversations: ConversationStore
    adapter_for: AdapterFactory
    clock: Callable[[], float] = field(default=time.time)


def process(envelope: Envelope, deps: CrmDeps) -> dict[str, Any]:
    if not envelope.conversation_id:
        raise EnvelopeError("crm stage needs an envelope routed to a conversation")
    store = deps.conversations
    conversation = store.get(envelope.conversation_id)
    if conversation is None:
        raise ConfigurationError(f"conversation {envelope.conversation_id} does not exist")
    if store.is_written(conversation.conversation_id, envelope):
        return {"conversation_id": conversation.conversation_id, "written": False, "reason": "already written"}

    settings = deps.settings.crm()
    state = store.crm_state(conversation.conversation_id)
    now = int(deps.clock() * 1000)
    if settings.provider == "none":
        state = replace(state, provider="none", stage_ran_at=now, messages_written=state.messages_written + 1)
        store.save_crm_state(conversation.conversation_id, state)
        store.mark_written(conversation.conversation_id, envelope)
        return {"conversation_id": conversation.conversation_id, "written": True, "provider": "none"}

    adapter = deps.adapter_for(settings)
    ref = _ref(conversation)
    opening = state.ticket_id is None
    owner = _owner(settings, adapter, opening=opening)
    state = replace(state, provider=settings.provider)

    contact_id = state.contact_id
    if contact_id is None:
        contact_id = adapter.upsert_contact(ref, owner_id=owner)
        state = replace(state, contact_id=contact_id)
        store.save_crm_state(conversation.conversation_id, state)
    if state.ticket_id is None:
        ticket_id = adapter.open_ticket(ref, contact_id=contact_id, first_message=envelope, owner_id=owner)
        state = replace(state, ticket_id=ticket_id, owner_id=owner)
    else:
        adapter.append_message(ref, ticket_id=state.ticket_id, contact_id=contact_id, message=envelope, owner_id=owner)
    state = replace(state, stage_ran_at=now, messages_written=state.messages_written + 1)
    store.save_crm_state(conversation.conversation_id, state)
    store.mark_written(conversation.conversation_id, envelope)
    return {"conversation_id": conversation.conversation_id, "written": True, "provider": settings.provider}


def _owner(settings: CrmSettings, adapter: CrmAdapter, *, opening: bool) -> str | None:
    """The default user (interface section 3): records no agent can be credited with, or every record with ``always``."""
    default = settings.default_user
    if default.always or (default.enabled and opening):
        return adapter.whoami().id
    return None


def _ref(conversation: Conversation) -> ConversationRef:
    return ConversationRef(
        conversation_id=conversation.conversation_id,
        channel=conversation.channel,
        account_id=conversation.account_id,
        customer=conversation.customer,
        contact_id=conversation.identity.contact_id if conversation.identity.authenticated else None,
        queue=conversation.queue,
        priority=conversation.priority,
    )


__all__ = ["AdapterFactory", "CrmDeps", "CrmState", "process"]
