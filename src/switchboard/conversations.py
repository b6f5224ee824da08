"""The conversation: what route owns and every view of the system shows.

Records are plain dataclasses with ``to_doc``/``from_doc`` so stores can keep them as one JSON
document; anything derived from time (closed after a quiet spell, sign-in expiry) is computed at
read time rather than stored, so a view is never stale.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from switchboard.envelope import Customer, Envelope, Identity, Routing

# How long a delivered envelope is recognised wherever it was stored: longer than any platform redelivers
# (GBM: 7 days). Route looks for a redelivery in every conversation the customer left within it.
REDELIVERY_HORIZON_MS = 8 * 24 * 3600 * 1000


def new_conversation_id(now_ms: int | None = None) -> str:
    """Time-ordered, unguessable: 12 hex digits of milliseconds then 16 random hex digits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms:012x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class CrmState:
    provider: str = "none"
    contact_id: str | None = None
    ticket_id: str | None = None
    owner_id: str | None = None
    # Both derived from the messages' written marks when read (stores do not keep a counter: keeping one
    # cost the crm stage a second write per message and could drift from the marks after a crash).
    stage_ran_at: int | None = None  # ms; the last time the crm stage wrote a message of this conversation
    messages_written: int = 0
    notices: tuple[str, ...] = ()
    ticket_attempted_at: int | None = None  # ms; set before the first create call, so a retry knows to look first
    # The envelope whose message opened the ticket (it is in the ticket already): saved with the ticket id, so a
    # crash before that message's written mark does not append it a second time.
    opened_with: str | None = None


@dataclass(frozen=True)
class CustomerRecord:
    """What route reads first for a platform customer, in one request.

    ``current_id`` is the conversation the customer is in; ``profile`` what is known across
    conversations (name, CRM contacts); ``left`` the conversations the customer left within the
    redelivery horizon, newest first: a platform's late redelivery of a message stored in one of
    them must be recognised there, not stored again in the current conversation.
    """

    key: str
    current_id: str | None = None
    profile: Profile | None = None
    left: tuple[str, ...] = ()
    # A conversation whose replies wait for the customer to write again (a WhatsApp reply outside the 24-hour
    # window, the re-engagement template sent): the customer's next message has them sent.
    waiting: str | None = None


@dataclass(frozen=True)
class Located:
    """The customer's current conversation, and where this envelope is stored already, if anywhere."""

    conversation: Conversation | None
    stored_in: str | None = None  # a conversation that holds this envelope already
    stored: Envelope | None = None  # the copy kept there (attachments as they were kept)


@dataclass(frozen=True)
class StoredMessage:
    """The answer of the conditional message write: stored now, or the copy stored before."""

    new: bool
    seq: int
    envelope: Envelope


@dataclass(frozen=True)
class Profile:
    """What is known about one customer identity (channel, account, customer id) across conversations.

    The name comes from the channel's profile API and is re-read once ``name_checked_at`` is older
    than the cache TTL; ``contacts`` maps a CRM provider to the contact id it gave this customer,
    so the customer's next conversation reuses the contact.
    """

    key: str
    name: str | None = None
    name_checked_at: int | None = None  # ms; set even when the lookup failed, so a failing API is not hammered
    contacts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    channel: str
    account_id: str
    customer: Customer
    workstream: str
    queue: str
    priority: int
    created_at: int  # ms
    updated_at: int
    last_message_at: int
    close_after_minutes: int
    rule: str | None = None
    message_count: int = 0
    identity: Identity = field(default_factory=Identity)
    requested_live_agent: bool = False
    closed: bool = False
    # ms; the time the conversation lists (the table's indexes) order it by: ``updated_at`` to within the store's
    # refresh span, so that not every message rewrites three index entries. Kept beside the document, not in it.
    listed_at: int = 0

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.account_id}:{self.customer.id}"

    def is_quiet(self, now_ms: int) -> bool:
        return now_ms - self.last_message_at > self.close_after_minutes * 60_000

    def status(self, now_ms: int) -> str:
        return "closed" if self.closed or self.is_quiet(now_ms) else "open"

    def authenticated(self, now_ms: int) -> bool:
        """A sign-in lasts until its expiry; after it every view says false (interface section 2)."""
        ident = self.identity
        if not ident.authenticated:
            return False
        return ident.expires_at is None or ident.expires_at * 1000 > now_ms

    def with_(self, **changes: Any) -> Conversation:
        return replace(self, **changes)

    def routing(self) -> Routing:
        return Routing(workstream=self.workstream, queue=self.queue, priority=self.priority, rule=self.rule)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["listed_at"]
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Conversation:
        doc = {k: v for k, v in doc.items() if k != "listed_at"}
        doc["customer"] = Customer(**doc["customer"])
        doc["identity"] = Identity(**(doc.get("identity") or {}))
        return cls(**doc)


def facts(conversation: Conversation | None, envelope: Envelope, now_ms: int) -> dict[str, Any]:
    """The values routing rules read (interface section 3 rule fields)."""
    identity = conversation.identity if conversation else envelope.identity
    authenticated = conversation.authenticated(now_ms) if conversation else envelope.identity.authenticated
    customer = conversation.customer if conversation else envelope.customer
    out: dict[str, Any] = {
        "channel": envelope.channel,
        "account_id": envelope.account_id,
        "authenticated": authenticated,
        "contact_id": identity.contact_id if authenticated else None,
        "customer.name": customer.name,
        "customer.locale": customer.locale,
        "message.text": envelope.text,
        "message.kind": envelope.kind,
        "requested_live_agent": bool(
            (conversation.requested_live_agent if conversation else False) or envelope.data.get("requested_live_agent")
        ),
    }
    if authenticated or not identity.authenticated:
        for name, value in identity.context.items():
            out[f"context.{name}"] = value
    return out


def public_view(conversation: Conversation, crm: CrmState, messages: list[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    """``conversations show --json`` (interface section 4)."""
    authenticated = conversation.authenticated(now_ms)
    return {
        "conversation_id": conversation.conversation_id,
        "channel": conversation.channel,
        "account_id": conversation.account_id,
        "customer": {"id": conversation.customer.id, "name": conversation.customer.name},
        "contact_id": conversation.identity.contact_id,
        "authenticated": authenticated,
        "context": dict(conversation.identity.context),
        "expires_at": conversation.identity.expires_at,
        "workstream": conversation.workstream,
        "queue": conversation.queue,
        "priority": conversation.priority,
        "rule": conversation.rule,
        "status": conversation.status(now_ms),
        "requested_live_agent": conversation.requested_live_agent,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "crm": {
            "provider": crm.provider,
            "contact_id": crm.contact_id,
            "ticket_id": crm.ticket_id,
            "owner_id": crm.owner_id,
            "stage_ran_at": _iso(crm.stage_ran_at) if crm.stage_ran_at else None,
            "messages_written": crm.messages_written,
            "notices": list(crm.notices),
        },
        "messages": messages,
    }


def summary_view(conversation: Conversation, now_ms: int) -> dict[str, Any]:
    """One row of ``conversations list --json``."""
    return {
        "conversation_id": conversation.conversation_id,
        "channel": conversation.channel,
        "account_id": conversation.account_id,
        "customer": {"id": conversation.customer.id, "name": conversation.customer.name},
        "queue": conversation.queue,
        "priority": conversation.priority,
        "workstream": conversation.workstream,
        "status": conversation.status(now_ms),
        "authenticated": conversation.authenticated(now_ms),
        "message_count": conversation.message_count,
        "updated_at": _iso(conversation.updated_at),
    }


DELIVERY_STATES = ("pending", "sent", "delivered", "read", "failed")


def new_reply_id(now_ms: int | None = None) -> str:
    """Time-ordered like a conversation id, with its own prefix so it never reads as a platform event id."""
    return f"r{new_conversation_id(now_ms)}"


@dataclass(frozen=True)
class OutMessage:
    """A reply to the customer (``direction: "out"``): what was asked to be sent, and what became of it.

    Stored apart from the customer's messages (its own key prefix), so it can never collide with,
    or be mistaken for, a customer message that exactly once keys by the envelope id.
    """

    id: str
    conversation_id: str
    text: str
    created_at: int  # ms, when it was written (the transcript orders by it)
    author: str | None = None
    crm_id: str | None = None  # the CRM record it came from; None for `switchboard reply`
    status: str = "pending"
    error: str | None = None
    sent_at: int | None = None  # ms, when the platform took it
    platform_id: str | None = None
    # Agents' files: {"name", "url" (the CRM's, fetched by the sender), "content_type", "size"}; their credentials
    # (headers) are never stored, the sender asks the CRM adapter again.
    waiting: bool = False  # held until the customer writes again (still pending; ``error`` says why)
    files: tuple[dict[str, Any], ...] = ()
    unsent_files: tuple[dict[str, str], ...] = ()  # {"name", "reason"}: a file the channel or the limits refused


def out_message_view(message: OutMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": "out",
        "kind": "text",
        "text": message.text,
        "author": message.author,
        "crm_id": message.crm_id,
        "attachments": [
            {
                "type": f.get("kind") or "file",
                "name": f.get("name"),
                "content_type": f.get("content_type"),
                "size": f.get("size"),
                "stored_key": f.get("stored_key"),
                "error": f.get("reason"),
            }
            for f in message.files
        ],
        "delivery": {
            "status": message.status,
            "error": message.error,
            "sent_at": _iso(message.sent_at) if message.sent_at is not None else None,
            "unsent_files": [dict(f) for f in message.unsent_files],
        },
        "received_at": _iso(message.created_at),
        "written_at": _iso(message.created_at),
    }


def transcript(received: list[Envelope], replies: list[OutMessage]) -> list[dict[str, Any]]:
    """Both directions in the order they were written: the customer's messages keep their own order, and each
    reply comes after every customer message stored before it was written."""
    out = sorted(replies, key=lambda r: (r.created_at, r.id))
    rows: list[dict[str, Any]] = []
    i = 0
    for envelope in received:
        while i < len(out) and out[i].created_at < envelope.received_at:
            rows.append(out_message_view(out[i]))
            i += 1
        rows.append(message_view(envelope))
    rows.extend(out_message_view(r) for r in out[i:])
    return rows


def message_view(envelope: Envelope) -> dict[str, Any]:
    return {
        "id": envelope.id,
        "direction": "in",
        "kind": envelope.kind,
        "text": envelope.text,
        # type, name, size and stored key always (null until kept); where it came from and why not kept when known
        "attachments": [
            {k: v for k, v in asdict(a).items() if v is not None or k in ("type", "name", "size", "stored_key")}
            for a in envelope.attachments
        ],
        "sent_at": _iso(envelope.sent_at),
        "received_at": _iso(envelope.received_at),
        "data": envelope.data,
    }


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
