"""The crm stage: write the contact and the ticket/case, then each later message, exactly once.

One mechanism carries exactly once: each message's item is marked written by a write conditional
on it not being marked (:meth:`~switchboard.ports.ConversationStore.write_mark`), made right after
the CRM accepted the message. A delivery that finds the mark writes nothing; the queue is FIFO per
conversation and its visibility timeout outlasts the function, so two attempts at one conversation
never overlap, and no idempotency record is needed beside the mark.

Ids the CRM returns are recorded on the conversation the moment they exist, so a crash between two
calls never creates a second record: the next attempt resumes where the last one stopped. The one
window left in opening, a crash after the CRM created something but before its id was saved, is
closed on the CRM side: contacts are upserts keyed on the channel identity, and the ticket create is
idempotent on the conversation id (a Zendesk idempotency key and ``external_id``, a Salesforce
external-id upsert, a Dynamics create-once on a derived key, a Kustomer look-up by ``externalId``).
Before the first create call the stage records that it is trying, so on a retry the adapters that
need a look-up do one, and on the first attempt none does. The ticket id is saved together with the
envelope that opened it, so a crash before that first message's mark does not append it again.

The window left is in appending: a crash between the CRM accepting a later message and its mark
writes that message twice. Nothing is done between the two (the mark is the very next call), so the
window is as narrow as it can be without an idempotency key on the CRM's append.

With provider ``none`` the mark alone is the work: one conditional write, whose answer also says
"written before" or "no such message". What the stage did per conversation (messages written, when
it last ran) is counted from the marks when read, not kept as a counter beside them.

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
    conversation_id = envelope.conversation_id
    settings = deps.settings.crm()
    now = int(deps.clock() * 1000)
    if settings.provider == "none":
        mark = store.write_mark(conversation_id, envelope, at=now)
        if mark == "missing":
            raise ConfigurationError(f"conversation {conversation_id} does not exist or does not hold message {envelope.id}")
        if mark == "written before":
            return {"conversation_id": conversation_id, "written": False, "reason": "already written"}
        return {"conversation_id": conversation_id, "written": True, "provider": "none"}

    view = store.crm_view(conversation_id, envelope)
    conversation = view.conversation
    if conversation is None:
        raise ConfigurationError(f"conversation {conversation_id} does not exist")
    if view.written:
        return {"conversation_id": conversation_id, "written": False, "reason": "already written"}

    adapter = deps.adapter_for(settings)
    provider = settings.provider
    state = saved = view.state
    if state.provider != provider and (state.contact_id or state.ticket_id):
        # The CRM was switched mid-conversation: the old CRM's ids mean nothing to the new one.
        log.warning("crm provider changed from %s to %s; opening anew", state.provider, provider)
        state = replace(state, contact_id=None, ticket_id=None, owner_id=None, ticket_attempted_at=None)
    state = replace(state, provider=provider)
    ref = _ref(conversation, now)

    try:
        if state.ticket_id is None:
            state = saved = _open(adapter, settings, conversation, ref, envelope, state, deps, now)
            action = "opened"
        elif state.opened_with == envelope.id:  # it opened the ticket; the attempt that did stopped before its mark
            action = "opened"
        else:
            owner = adapter.whoami().id if settings.default_user.always else None
            contact_id = state.contact_id or _contact_of(adapter, ref)
            adapter.append_message(ref, ticket_id=state.ticket_id, contact_id=contact_id, message=envelope, owner_id=owner)
            action = "appended"
        if store.write_mark(conversation_id, envelope, at=now) == "missing":  # the very next call after the CRM's answer
            log.warning("message %s is not stored in conversation %s: not marked written", envelope.id, conversation_id)
    finally:
        notices = adapter.drain_notices()
        for notice in notices:
            log.warning("crm notice: %s", notice.message, extra={"kind": notice.kind, "conversation_id": conversation_id})
    if notices:
        state = replace(state, notices=(*state.notices, *(n.message for n in notices))[-MAX_NOTICES:])
    # The notices the CRM calls left (ids were saved as they came); or a ticket recorded before the by_ticket
    # index existed, saved once more so the CRM's events find its conversation.
    if state != saved or (view.state.ticket_id and not view.indexed):
        store.save_crm_state(conversation_id, state)
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
    state = replace(state, ticket_id=ticket_id, owner_id=ticket_owner, opened_with=envelope.id)
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
