"""The one message format that travels between stages.

Every stage boundary (edge -> route, route -> crm) carries an :class:`Envelope` serialised as JSON.
It is versioned so that a deployed stage can refuse (and dead-letter, with a reason) a message
written by a newer or older producer instead of misreading it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from switchboard.errors import Permanent

ENVELOPE_VERSION = 1

# Message kinds as the interface names them (interface.md section 4).
KINDS = frozenset({"text", "image", "video", "audio", "file", "location", "sticker", "postback", "event", "unsupported"})
UNSUPPORTED_TEXT = "Customer sent an unsupported message type"
# Not a message: a platform's receipt for Switchboard's replies (channels.base.RECEIPT_STATUSES says what it carries).
# It travels the inbound queue like a message so it stays in order with the customer's events, and the
# route stage applies it to the replies instead of storing it.
RECEIPT = "receipt"


class EnvelopeError(Permanent, ValueError):
    """A message body that is not an envelope this code can read: no retry can make it one."""


@dataclass(frozen=True)
class Attachment:
    """Media the customer sent. ``url``/``content_id`` say where to fetch it; bytes are never inline."""

    type: str  # image | video | audio | file | sticker | ...
    url: str | None = None  # external URL (Facebook CDN, GBM storage, LINE external provider)
    content_id: str | None = None  # platform content id (LINE message id when contentProvider is line)
    name: str | None = None
    size: int | None = None
    stored_key: str | None = None  # S3 key once kept
    error: str | None = None  # why the bytes could not be kept


@dataclass(frozen=True)
class Customer:
    id: str
    name: str | None = None
    locale: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Identity:
    """What the edge proved about who is writing (chat sign-in); empty for platform channels."""

    authenticated: bool = False
    contact_id: str | None = None
    context: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    expires_at: int | None = None


@dataclass(frozen=True)
class Routing:
    workstream: str
    queue: str
    priority: int
    rule: str | None = None


@dataclass(frozen=True)
class Envelope:
    """One customer event.

    ``id`` is the platform's own event id scoped by channel and account, so the same delivery
    arriving twice (platform redelivery, SQS redelivery) is recognised wherever it lands.
    """

    id: str
    channel: str
    account_id: str
    customer: Customer
    kind: str
    sent_at: int  # milliseconds since the epoch, as the platform says the customer sent it
    received_at: int  # milliseconds, when the edge accepted it
    correlation_id: str
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # channel-specific detail (event type, postback data, ...)
    identity: Identity = field(default_factory=Identity)
    conversation_id: str | None = None  # set by route (or by token_validate, which opens it)
    routing: Routing | None = None  # set by route
    v: int = ENVELOPE_VERSION

    @property
    def conversation_key(self) -> str:
        """Channel + account + customer: the key a conversation is found by, and the FIFO group before route."""
        return f"{self.channel}:{self.account_id}:{self.customer.id}"

    @property
    def dedupe_id(self) -> str:
        """A FIFO MessageDeduplicationId (<=128 chars, restricted alphabet) derived from ``id``."""
        return hashlib.sha256(self.id.encode("utf-8")).hexdigest()

    def with_(self, **changes: Any) -> Envelope:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        # Written out rather than dataclasses.asdict, which deep-copies every value: this runs on the edge's path.
        c, i, r = self.customer, self.identity, self.routing
        return {
            "v": self.v,
            "id": self.id,
            "channel": self.channel,
            "account_id": self.account_id,
            "customer": {"id": c.id, "name": c.name, "locale": c.locale, "email": c.email},
            "kind": self.kind,
            "sent_at": self.sent_at,
            "received_at": self.received_at,
            "correlation_id": self.correlation_id,
            "text": self.text,
            "attachments": [a.__dict__.copy() for a in self.attachments],
            "data": self.data,
            "identity": {
                "authenticated": i.authenticated,
                "contact_id": i.contact_id,
                "context": i.context,
                "expires_at": i.expires_at,
            },
            "conversation_id": self.conversation_id,
            "routing": None
            if r is None
            else {"workstream": r.workstream, "queue": r.queue, "priority": r.priority, "rule": r.rule},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        try:
            body = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise EnvelopeError(f"body is not JSON: {exc}") from None
        return cls.from_dict(body)

    @classmethod
    def from_dict(cls, body: Any) -> Envelope:
        if not isinstance(body, dict):
            raise EnvelopeError("envelope must be a JSON object")
        version = body.get("v")
        if version != ENVELOPE_VERSION:
            raise EnvelopeError(f"envelope version {version!r} is not supported (expected {ENVELOPE_VERSION})")
        try:
            customer = Customer(**body["customer"])
            identity = Identity(**(body.get("identity") or {}))
            routing = Routing(**body["routing"]) if body.get("routing") else None
            attachments = tuple(Attachment(**a) for a in body.get("attachments") or ())
            kind = body["kind"]
            if kind not in KINDS and kind != RECEIPT:
                raise EnvelopeError(f"unknown message kind {kind!r}")
            return cls(
                id=str(body["id"]),
                channel=str(body["channel"]),
                account_id=str(body["account_id"]),
                customer=customer,
                kind=kind,
                sent_at=int(body["sent_at"]),
                received_at=int(body["received_at"]),
                correlation_id=str(body["correlation_id"]),
                text=body.get("text"),
                attachments=attachments,
                data=dict(body.get("data") or {}),
                identity=identity,
                conversation_id=body.get("conversation_id"),
                routing=routing,
                v=version,
            )
        except EnvelopeError:
            raise
        except KeyError as exc:
            raise EnvelopeError(f"envelope is missing {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise EnvelopeError(f"envelope has an unexpected shape: {exc}") from None
