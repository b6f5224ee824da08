"""The sender stage: a reply from the outbound queue to the customer's platform, recorded once.

The outbound queue is FIFO with one message group per conversation, so replies reach the platform
in the order they were written, and two attempts at one conversation never overlap. The reply
itself is stored (pending) before it is queued; the queued envelope names it (``id`` = the reply's
id), and the stage sends the stored text, never the envelope's.

Exactly once rests on two things. The delivery moves from ``pending`` to ``sent`` by one write
conditional on it being pending, so a redelivery of a sent reply finds it sent and calls nothing.
A crash between the platform's acceptance and that write makes the next attempt call again: the
channels make that harmless where the platform allows it (LINE's retry key and GBM's message id are
derived from the reply's id, which is the same on every attempt).

A refusal that will not change (:class:`~switchboard.channels.base.SendRefused`, or a channel whose
send is not built yet) marks the reply ``failed`` with the reason and is dead-lettered at once; a
retryable failure is left to the stage runner's backoff, then its dead-letter queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switchboard import channels
from switchboard.channels.base import Reply, SendRefused
from switchboard.conversations import Conversation, OutMessage
from switchboard.envelope import Envelope, EnvelopeError
from switchboard.errors import ConfigurationError, Permanent
from switchboard.ports import ReplyStore, SecretReader, SettingsReader
from switchboard.secret_names import secret_name

STORED_ONLY = frozenset({"chat"})  # the widget reads the reply from the conversation (interface section 7)
log = logging.getLogger("switchboard.sender_stage")


class ReplyFailed(Permanent):
    """The platform will not take this reply: it is marked failed and dead-lettered with the reason."""


@dataclass
class SenderDeps:
    settings: SettingsReader
    secrets: SecretReader
    secrets_prefix: str
    conversations: ReplyStore
    http: Any  # an outbound_http.Client
    clock: Callable[[], float] = field(default=time.time)


def process(envelope: Envelope, deps: SenderDeps) -> dict[str, Any]:
    conversation_id = envelope.conversation_id
    if not conversation_id:
        raise EnvelopeError("the sender needs an envelope naming its conversation")
    store = deps.conversations
    stored = store.reply(conversation_id, envelope.id)
    if stored is None:
        raise ReplyFailed(f"conversation {conversation_id} holds no reply {envelope.id}")
    if stored.status != "pending":  # a redelivery: what was recorded stands, nothing is sent again
        return {"conversation_id": conversation_id, "reply_id": stored.id, "sent": False, "reason": f"already {stored.status}"}
    conversation = store.get(conversation_id)
    if conversation is None:
        raise ReplyFailed(f"conversation {conversation_id} does not exist")
    now = int(deps.clock() * 1000)
    channel = conversation.channel
    if channel in STORED_ONLY:
        store.mark_reply(conversation_id, stored.id, status="sent", at=now)
        return {"conversation_id": conversation_id, "reply_id": stored.id, "sent": True, "channel": channel}

    account = deps.settings.account(conversation.account_id)
    if account is None:
        # Configuration can be fixed and the reply redriven: retryable, so it waits in the backoff first.
        raise ConfigurationError(f"account {conversation.account_id} is not configured")
    secrets = deps.secrets.get(secret_name(deps.secrets_prefix, "account", account.id, account.channel))
    received = store.messages(conversation_id)
    reply = Reply(
        id=stored.id,
        conversation_id=conversation_id,
        customer_id=conversation.customer.id,
        text=stored.text,
        last_customer_message_at=max((m.sent_at for m in received), default=None),
        author=stored.author,
    )
    try:
        sent = channels.adapter(channel).send(reply, account, secrets, deps.http)
    except SendRefused as exc:
        reason = f"{exc.code}: {exc.message}"
        _fail(store, conversation_id, stored.id, reason, now)
        raise ReplyFailed(reason) from None
    except NotImplementedError:
        reason = f"not_supported: sending replies on {channel} is not built yet"
        _fail(store, conversation_id, stored.id, reason, now)
        raise ReplyFailed(reason) from None
    store.mark_reply(conversation_id, stored.id, status="sent", at=now, platform_id=sent.platform_id)
    return {"conversation_id": conversation_id, "reply_id": stored.id, "sent": True, "channel": channel}


def outbound_envelope(conversation: Conversation, message: OutMessage) -> Envelope:
    """What goes on the outbound queue for a stored reply: it names the reply (``id``) and its conversation;
    the text travels too, for whoever reads a dead letter, but the stage sends the stored one."""
    return Envelope(
        id=message.id,
        channel=conversation.channel,
        account_id=conversation.account_id,
        customer=conversation.customer,
        kind="text",
        sent_at=message.created_at,
        received_at=message.created_at,
        correlation_id=message.id,
        text=message.text,
        data={"direction": "out"},
        conversation_id=conversation.conversation_id,
    )


def _fail(store: ReplyStore, conversation_id: str, reply_id: str, reason: str, now: int) -> None:
    if not store.mark_reply(conversation_id, reply_id, status="failed", at=now, error=reason):
        log.warning("reply %s was no longer pending when it failed", reply_id)


__all__ = ["ReplyFailed", "SenderDeps", "outbound_envelope", "process"]
