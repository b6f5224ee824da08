"""The crm stage: write the contact and the ticket/case, then each later message, exactly once.

Ids the CRM returns are recorded on the conversation the moment they exist, and every message is
marked written once appended, so SQS redelivery or a crash between two calls never creates a
second record: the next attempt resumes where the last one stopped. The one window left, a crash
after the CRM created something but before its id was saved, is closed on the CRM side: contacts
are upserts keyed on the channel identity, and the ticket create is idempotent on the conversation
id (a Zendesk idempotency key and ``external_id``, a Salesforce external-id upsert, a Dynamics
create-once on a derived key, a Kustomer look-up by ``externalId``). Before the first create call
the stage records that it is trying, so on a retry the adapters that need a look-up do one, and on
the first attempt none does.

The contact id also goes on the customer's profile (channel, account, customer id), so the
customer's next conversation opens with the ticket call alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from switchboard.conversations import Conversation, CrmState
from switchboard.crm.base import ConversationRef, CrmAdapter
from switchboard.envelope import Envelope, EnvelopeError
from switchboard.errors import ConfigurationError
from switchboard.ports import ConversationStore, ProfileStore, SettingsReader
from switchboard.settings import CrmSettings

AdapterFactory = Callable[[CrmSettings], CrmAdapter]
MAX_NOTICES = 10  # per conversation: enough to show what happened, bounded so the item stays small
log = logging.getLogger("switchboard.crm_stage")


@dataclass
class CrmDeps:
    settings: SettingsReader
    conversations: ConversationStore
    adapter_for: AdapterFactory
    clock: Callable[[], float] = field(default=time.time)
    profiles: ProfileStore | None = None


def process(envelope: Envelope, deps: CrmDeps) -> dict[str, Any]:
    if not envelope.conversation_id:
        raise EnvelopeError("crm stage needs an envelope routed to a conversation")
    store = deps.conversations
    conversation = store.get(envelope.conversation_id)
    if conversation is None:
        raise ConfigurationError(f"conversation {envelope.conversation_id} does not exist")
    conversation_id = conversation.conversation_id
    if store.is_written(conversation_id, envelope):
        return {"conversation_id": conversation_id, "written": False, "reason": "already written"}

    settings = deps.settings.crm()
    state = store.crm_state(conversation_id)
    now = int(deps.clock() * 1000)
    if settings.provider == "none":
        state = replace(state, provider="none", stage_ran_at=now, messages_written=state.messages_written + 1)
        store.save_crm_state(conversation_id, state)
        store.mark_written(conversation_id, envelope)
        return {"conversation_id": conversation_id, "written": True, "provider": "none"}

    adapter = deps.adapter_for(settings)
    provider = settings.provider
    if state.provider != provider and (state.contact_id or state.ticket_id):
        # The CRM was switched mid-conversation: the old CRM's ids mean nothing to the new one.
        log.warning("crm provider changed from %s to %s; opening anew", state.provider, provider)
        state = replace(state, contact_id=None, ticket_id=None, owner_id=None, ticket_attempted_at=None)
    state = replace(state, provider=provider)
    ref = _ref(conversation, now)

    try:
        if state.ticket_id is None:
            state = _open(adapter, settings, conversation, ref, envelope, state, deps, now)
            action = "opened"
        else:
            owner = adapter.whoami().id if settings.default_user.always else None
            contact_id = state.contact_id or _contact_of(adapter, ref)
            adapter.append_message(ref, ticket_id=state.ticket_id, contact_id=contact_id, message=envelope, owner_id=owner)
            action = "appended"
    finally:
        notices = adapter.drain_notices()
        for notice in notices:
            log.warning("crm notice: %s", notice.message, extra={"kind": notice.kind, "conversation_id": conversation_id})
    if notices:
        state = replace(state, notices=(*state.notices, *(n.message for n in notices))[-MAX_NOTICES:])
    state = replace(state, stage_ran_at=now, messages_written=state.messages_written + 1)
    store.save_crm_state(conversation_id, state)
    store.mark_written(conversation_id, envelope)
    return {"conversation_id": conversation_id, "written": True, "provider": provider, "action": action}


def _open(
    adapter: CrmAdapter,
    settings: CrmSettings,
    conversation: Conversation,
    ref: ConversationRef,
    envelope: Envelope,
    state: CrmState,
    deps: CrmDeps,
    now: int,
) -> CrmState:
    """Contact (reused when known), then the ticket; every id saved as soon as it exists."""
    store = deps.conversations
    conversation_id = conversation.conversation_id
    default = settings.default_user
    # Everything created at conversation start is what no agent can be credited with.
    owner = adapter.whoami().id if default.enabled or default.always else None

    contact_id = state.contact_id
    created_contact = False
    if contact_id is None:
        contact_id = _known_contact(deps.profiles, conversation.key, settings.provider, ref)
        if contact_id is None:
            contact_id = adapter.upsert_contact(ref, owner_id=owner)
            created_contact = True
        state = replace(state, contact_id=contact_id)

    retry = state.ticket_attempted_at is not None
    if not retry:
        state = replace(state, ticket_attempted_at=now)
    # One write saves the contact id and says a ticket create is under way, before that call:
    # a crash after it makes the next attempt a retry.
    store.save_crm_state(conversation_id, state)
    if created_contact and deps.profiles is not None:
        deps.profiles.set_contact(conversation.key, settings.provider, contact_id)
    ticket_id = adapter.open_ticket(ref, contact_id=contact_id, first_message=envelope, owner_id=owner, retry=retry)
    ticket_owner = adapter.ticket_owner(owner)  # after the write: a credential failover during it may change the owner
    state = replace(state, ticket_id=ticket_id, owner_id=ticket_owner)
    store.save_crm_state(conversation_id, state)
    return state


def _contact_of(adapter: CrmAdapter, ref: ConversationRef) -> str:
    """A ticket recorded without its contact (written by an older version): find the contact again."""
    return adapter.upsert_contact(ref, owner_id=None)


def _known_contact(profiles: ProfileStore | None, key: str, provider: str, ref: ConversationRef) -> str | None:
    """The contact this customer already has in this CRM, unless a sign-in names another one to check."""
    if profiles is None:
        return None
    profile = profiles.profile(key)
    known = profile.contacts.get(provider) if profile is not None else None
    if ref.contact_id and ref.contact_id != known:
        return None  # the adapter checks the authenticated contact id against the CRM
    return known


def _ref(conversation: Conversation, now_ms: int) -> ConversationRef:
    return ConversationRef(
        conversation_id=conversation.conversation_id,
        channel=conversation.channel,
        account_id=conversation.account_id,
        customer=conversation.customer,
        contact_id=conversation.identity.contact_id if conversation.authenticated(now_ms) else None,
        queue=conversation.queue,
        priority=conversation.priority,
    )


__all__ = ["AdapterFactory", "CrmDeps", "CrmState", "process"]
