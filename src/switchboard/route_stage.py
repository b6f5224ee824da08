"""The route stage: find or open the customer's conversation, keep its messages, decide its queue.

Runs once per envelope, in order per conversation (the inbound FIFO queue groups by conversation
key). Every step is safe to repeat: a message already stored is not stored again, and forwarding
again is harmless because the crm stage records what it has written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from switchboard import rules
from switchboard.conversations import Conversation, facts, new_conversation_id
from switchboard.envelope import Envelope
from switchboard.errors import ConfigurationError
from switchboard.ports import ConversationStore, Publisher, SettingsReader
from switchboard.settings import Workstream

if TYPE_CHECKING:
    from switchboard.attachments import AttachmentKeeper
    from switchboard.names import NameLookup


@dataclass
class RouteDeps:
    settings: SettingsReader
    conversations: ConversationStore
    crm_queue: Publisher
    clock: Callable[[], float] = field(default=time.time)
    names: NameLookup | None = None  # customer names from the platforms' profile APIs; None: names as the edge gave them
    attachments: AttachmentKeeper | None = None  # attachment bytes into the bucket; None: attachments stay unfetched


def workstream_for(envelope: Envelope, settings: SettingsReader) -> Workstream:
    if envelope.channel == "chat":
        widget = settings.widget(envelope.account_id)
        if widget is None:
            raise ConfigurationError(f"widget {envelope.account_id!r} is not configured")
        workstream_id = widget.workstream
    else:
        account = settings.account(envelope.account_id)
        if account is None:
            raise ConfigurationError(f"account {envelope.account_id!r} is not configured")
        workstream_id = account.workstream
    workstream = settings.workstream(workstream_id)
    if workstream is None:
        raise ConfigurationError(
            f"workstream {workstream_id!r} (of {envelope.channel} {envelope.account_id!r}) is not configured"
        )
    return workstream


def process(envelope: Envelope, deps: RouteDeps) -> dict[str, Any]:
    now = int(deps.clock() * 1000)
    workstream = workstream_for(envelope, deps.settings)
    store = deps.conversations
    if deps.names is not None:
        envelope = deps.names.named(envelope, now)

    if envelope.conversation_id:  # chat: token_validate chose the id and already answered it to the visitor
        conversation = store.get(envelope.conversation_id)
        previous = None
    else:
        conversation = store.current(envelope.conversation_key)
        previous = conversation if conversation is not None and conversation.is_quiet(envelope.received_at) else None
        if previous is not None:
            conversation = None

    if conversation is None:
        conversation = _open(envelope, workstream, now)
        store.open(conversation, replacing=previous)
        loaded = conversation
    else:
        loaded = conversation
        conversation = _absorb(conversation, envelope, workstream, now)

    if deps.attachments is not None:
        envelope = deps.attachments.keep(envelope, conversation.conversation_id)
    stored = store.add_message(conversation.conversation_id, envelope, seq=conversation.message_count + 1)
    if stored:
        conversation = conversation.with_(
            message_count=conversation.message_count + 1,
            updated_at=now,
            last_message_at=max(conversation.last_message_at, envelope.received_at),
        )
    if conversation != loaded:  # a redelivered duplicate that tells nothing new writes nothing
        store.save(conversation)
    deps.crm_queue.publish([envelope.with_(conversation_id=conversation.conversation_id, routing=conversation.routing())])
    return {"conversation_id": conversation.conversation_id, "queue": conversation.queue, "duplicate": not stored}


def _open(envelope: Envelope, workstream: Workstream, now: int) -> Conversation:
    conversation = Conversation(
        conversation_id=envelope.conversation_id or new_conversation_id(now),
        channel=envelope.channel,
        account_id=envelope.account_id,
        customer=envelope.customer,
        workstream=workstream.id,
        queue=workstream.fallback_queue,
        priority=10,
        created_at=now,
        updated_at=now,
        last_message_at=envelope.received_at,
        close_after_minutes=workstream.close_after_minutes,
        identity=envelope.identity,
        requested_live_agent=bool(envelope.data.get("requested_live_agent")),
    )
    return _reroute(conversation, envelope, workstream, now)


def _absorb(conversation: Conversation, envelope: Envelope, workstream: Workstream, now: int) -> Conversation:
    """Take in what a later message tells about the customer; re-route only when routing facts changed."""
    changed = False
    if envelope.customer.name and envelope.customer.name != conversation.customer.name:
        conversation = conversation.with_(customer=envelope.customer)
    if envelope.identity.authenticated and envelope.identity != conversation.identity:
        conversation = conversation.with_(identity=envelope.identity)
        changed = True
    if envelope.data.get("requested_live_agent") and not conversation.requested_live_agent:
        conversation = conversation.with_(requested_live_agent=True)
        changed = True
    return _reroute(conversation, envelope, workstream, now) if changed else conversation


def _reroute(conversation: Conversation, envelope: Envelope, workstream: Workstream, now: int) -> Conversation:
    decision = rules.route(workstream, facts(conversation, envelope, now))
    return conversation.with_(queue=decision.queue, priority=decision.priority, rule=decision.rule, workstream=workstream.id)
