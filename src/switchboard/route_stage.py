"""The route stage: find or open the customer's conversation, keep its messages, decide its queue.

Runs once per envelope, in order per conversation (the inbound FIFO queue groups by conversation
key, and a queue's visibility timeout outlasts the function, so two attempts at one customer's
messages never overlap). Exactly once rests on one mechanism, the conditional message write:

- A message's key is derived from its envelope id, so a second delivery of it into the same
  conversation fails the write's condition, whose answer is the copy stored before.
- A redelivery can only land in another conversation if the customer moved on since (a quiet
  conversation closed, a new one opened). So before storing, route looks the envelope up in every
  conversation the customer left within the redelivery horizon (:data:`REDELIVERY_HORIZON_MS`), in
  the same request that reads the current conversation, and, before closing a quiet conversation to
  open a new one, in the quiet one. Found: nothing is written, and the stored copy is forwarded.
- Writes go in an order that makes every crash resumable by the next delivery: the pointer to a
  new conversation before its first message (so a retry reopens the same conversation instead of a
  second one), the message before the conversation's count (so a retry, finding its message stored,
  counts it from the message's own sequence number instead of twice).

Forwarding again is harmless: the crm queue drops a repeat within five minutes, and the crm stage
marks each message written by a write conditional on it not being marked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from switchboard import rules
from switchboard.conversations import REDELIVERY_HORIZON_MS, Conversation, CustomerRecord, facts, new_conversation_id
from switchboard.envelope import RECEIPT, Envelope
from switchboard.errors import ConfigurationError
from switchboard.observability import logger
from switchboard.outbound import resume_envelope
from switchboard.ports import ConversationStore, Publisher, SettingsReader
from switchboard.settings import Workstream

RECEIPT_SLACK_MS = 2_000  # our "sent" is recorded just after the platform's own clock took the reply

if TYPE_CHECKING:
    from switchboard.attachments import AttachmentKeeper
    from switchboard.names import NameLookup


@dataclass
class RouteDeps:
    settings: SettingsReader
    conversations: ConversationStore
    crm_queue: Publisher
    outbound: Publisher | None = None  # the customer's answer sends the replies that waited for it (WhatsApp)
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
    if envelope.kind == RECEIPT:
        return _apply_receipt(envelope, deps, now)
    workstream = workstream_for(envelope, deps.settings)
    if envelope.conversation_id:  # chat: token_validate chose the id and already answered it to the visitor
        return _store(envelope, deps.conversations.get(envelope.conversation_id), workstream, deps, now)
    store, key = deps.conversations, envelope.conversation_key
    customer = store.read_customer(key, since=now - REDELIVERY_HORIZON_MS)
    result = _route(envelope, customer, workstream, deps, now)
    if customer.waiting and not result.get("duplicate") and deps.outbound is not None:
        # The customer wrote again: the replies that waited for it go now (after this message is stored,
        # so the channel counts its window from it). A crash before the flag is cleared queues it again:
        # the sender finds those replies sent and sends nothing twice.
        deps.outbound.publish([resume_envelope(envelope, customer.waiting)])
        store.set_waiting(key, None)
    return result


def _route(envelope: Envelope, customer: CustomerRecord, workstream: Workstream, deps: RouteDeps, now: int) -> dict[str, Any]:
    store, key = deps.conversations, envelope.conversation_key
    try:
        # Attachments are fetched before the message is written: look in the current conversation first too,
        # so a redelivery does not fetch them again.
        located = store.locate(customer, envelope, check_current=bool(envelope.attachments))
        if located.stored_in is not None:  # delivered before, into a conversation it reached then
            return _forward_stored(located.stored_in, located.stored or envelope, located.conversation, deps)
        conversation = located.conversation
        if conversation is None:  # a new customer, or an opening that stopped after its pointer: reopen that id
            return _store(envelope, None, workstream, deps, now, open_as=customer.current_id, repoint=True)
        if conversation.is_quiet(envelope.received_at):
            stored = store.holds(conversation.conversation_id, envelope)  # a late redelivery must not open a new one
            if stored is not None:
                return _forward_stored(conversation.conversation_id, stored, conversation, deps)
            return _store(envelope, None, workstream, deps, now, replacing=conversation, repoint=True)
        return _store(envelope, conversation, workstream, deps, now)
    finally:
        try:
            store.release_customer(key)  # a name looked up but not yet written with the pointer
        except Exception as exc:  # the name is a nicety: a store hiccup must not fail the message
            logger.warning("profile not updated", extra={"profile": key, "error": type(exc).__name__})


def _apply_receipt(envelope: Envelope, deps: RouteDeps, now: int) -> dict[str, Any]:
    """A platform's receipt moves the delivery of the replies it covers forward; it is never a message.

    It travels the customer's message group, so it comes after the customer's earlier events; the
    replies it covers are in the customer's current conversation or one left within the redelivery
    horizon (a receipt can trail a conversation that just closed). What it names: the platform's ids of
    the replies (``platform_ids``), or a time up to which all were delivered or read (``watermark``,
    Messenger), compared with when each reply was recorded sent, allowing :data:`RECEIPT_SLACK_MS` for
    the gap between the platform's clock taking it and ours recording it.
    """
    receipt = envelope.data.get("receipt")
    if not isinstance(receipt, dict) or receipt.get("status") not in ("sent", "delivered", "read", "failed"):
        return {"receipt": "ignored", "reason": "no status"}
    status = str(receipt["status"])
    ids = {str(i) for i in receipt.get("platform_ids") or () if i}
    watermark = receipt.get("watermark")
    error = receipt.get("error")
    store, key = deps.conversations, envelope.conversation_key
    customer = store.read_customer(key, since=now - REDELIVERY_HORIZON_MS)
    try:
        candidates = [c for c in (customer.current_id, *customer.left) if c]
    finally:
        store.release_customer(key)
    moved = 0
    for conversation_id in candidates:
        for reply in store.replies(conversation_id):
            covered = (reply.platform_id is not None and reply.platform_id in ids) or (
                isinstance(watermark, int)
                and reply.sent_at is not None
                and reply.sent_at <= watermark + RECEIPT_SLACK_MS
                and reply.status in ("sent", "delivered")
            )
            if covered and store.advance_reply(
                conversation_id, reply.id, status=status, error=str(error)[:500] if error and status == "failed" else None
            ):
                moved += 1
    return {"receipt": status, "replies": moved}


def _store(
    envelope: Envelope,
    conversation: Conversation | None,
    workstream: Workstream,
    deps: RouteDeps,
    now: int,
    *,
    open_as: str | None = None,
    replacing: Conversation | None = None,
    repoint: bool = False,
) -> dict[str, Any]:
    """Store the message in ``conversation``, or in a new one (pointed at before anything is stored in it)."""
    store = deps.conversations
    if deps.names is not None:
        envelope = deps.names.named(envelope, now)
    loaded = conversation
    if conversation is None:
        conversation = _open(envelope, workstream, now, conversation_id=envelope.conversation_id or open_as)
        if repoint:
            store.repoint(envelope.conversation_key, conversation.conversation_id, replacing=replacing, at=now)
    else:
        conversation = _absorb(conversation, envelope, workstream, now)

    if deps.attachments is not None:
        envelope = deps.attachments.keep(envelope, conversation.conversation_id)
    kept = store.put_message(conversation.conversation_id, envelope, seq=conversation.message_count + 1)
    # Counted from the message's own sequence number, so a retry after a crash between the message and the
    # conversation write counts it once; a redelivery's own receipt time never extends a conversation's life.
    counted = conversation.with_(
        message_count=max(conversation.message_count, kept.seq),
        last_message_at=max(conversation.last_message_at, kept.envelope.received_at),
    )
    if (counted.message_count, counted.last_message_at) != (conversation.message_count, conversation.last_message_at):
        counted = counted.with_(updated_at=now)
    if counted != loaded:  # a redelivered duplicate that tells nothing new writes nothing
        store.save(counted)
    deps.crm_queue.publish([kept.envelope.with_(conversation_id=counted.conversation_id, routing=counted.routing())])
    return {"conversation_id": counted.conversation_id, "queue": counted.queue, "duplicate": not kept.new}


def _forward_stored(conversation_id: str, stored: Envelope, conversation: Conversation | None, deps: RouteDeps) -> dict[str, Any]:
    """A redelivery of a message stored before: write nothing, forward the stored copy (the crm stage writes it once)."""
    if conversation is None or conversation.conversation_id != conversation_id:
        conversation = deps.conversations.get(conversation_id)
    routing = conversation.routing() if conversation is not None else stored.routing
    deps.crm_queue.publish([stored.with_(conversation_id=conversation_id, routing=routing)])
    queue = conversation.queue if conversation is not None else None
    return {"conversation_id": conversation_id, "queue": queue, "duplicate": True}


def _open(envelope: Envelope, workstream: Workstream, now: int, *, conversation_id: str | None) -> Conversation:
    conversation = Conversation(
        conversation_id=conversation_id or new_conversation_id(now),
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
    if envelope.kind == "event" and envelope.data.get("ends_conversation") is True and not conversation.closed:
        # The customer ended it (a web chat's end, interface section 7): closed after every message sent before it.
        conversation = conversation.with_(closed=True)
    return _reroute(conversation, envelope, workstream, now) if changed else conversation


def _reroute(conversation: Conversation, envelope: Envelope, workstream: Workstream, now: int) -> Conversation:
    decision = rules.route(workstream, facts(conversation, envelope, now))
    return conversation.with_(queue=decision.queue, priority=decision.priority, rule=decision.rule, workstream=workstream.id)
