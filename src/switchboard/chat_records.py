"""The records of a web chat session, shared by the chat start, the chat function and their stores.

Kept apart from :mod:`switchboard.chat_session` so that :mod:`switchboard.ports` can name them
without importing the HTTP handling (and so the chat start, which only opens sessions, does not
load the transcript code).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from switchboard.conversations import Conversation, OutMessage
from switchboard.envelope import Customer, Envelope

CURSOR_VERSION: Final = 1
MAX_CURSOR_CHARS: Final = 512


class BadCursor(ValueError):
    """A cursor this server did not hand out (or one of another version)."""


@dataclass(frozen=True)
class ChatSession:
    """A visitor's session on one conversation: what proves it (a digest) and what later messages carry.

    ``token_digest`` is the hex SHA-256 of the token: the token itself is answered once, to the
    visitor, and stored nowhere, so whoever reads the table cannot act as the visitor.
    """

    conversation_id: str
    widget_id: str
    customer: Customer  # the visitor as the chat start named them: later messages travel the same FIFO group
    token_digest: str
    created_at: int  # unix seconds
    expires_at: int  # unix seconds
    authenticated: bool = False  # what the chat start proved, shown until route has stored the conversation
    ended_at: int | None = None  # unix milliseconds; set once by POST .../end

    def to_doc(self) -> dict[str, Any]:
        c = self.customer
        return {
            "conversation_id": self.conversation_id,
            "widget_id": self.widget_id,
            "customer": {"id": c.id, "name": c.name, "locale": c.locale, "email": c.email},
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "authenticated": self.authenticated,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], *, token_digest: str, ended_at: int | None) -> ChatSession:
        return cls(
            conversation_id=str(doc["conversation_id"]),
            widget_id=str(doc["widget_id"]),
            customer=Customer(**doc["customer"]),
            token_digest=token_digest,
            created_at=int(doc["created_at"]),
            expires_at=int(doc["expires_at"]),
            authenticated=bool(doc.get("authenticated", False)),
            ended_at=ended_at,
        )


@dataclass(frozen=True)
class ChatCursor:
    """How far a visitor has read: the customer messages by their stored sequence number, the replies by
    (sent at ms, reply id). Both grow in the order things are stored, so a message stored late (the route
    stage stores a visitor's message after the 202) is still after the cursor when it lands."""

    seq: int = 0
    reply: tuple[int, str] = (0, "")

    def encode(self) -> str:
        raw = json.dumps({"v": CURSOR_VERSION, "i": self.seq, "o": list(self.reply)}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> ChatCursor:
        if not text or len(text) > MAX_CURSOR_CHARS:
            raise BadCursor("the cursor is empty or too long")
        try:
            doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise BadCursor("the cursor is not one this server handed out") from None
        if not isinstance(doc, dict) or doc.get("v") != CURSOR_VERSION:
            raise BadCursor("the cursor is not one this server handed out")
        seq, reply = doc.get("i"), doc.get("o")
        if (
            not isinstance(seq, int)
            or isinstance(seq, bool)
            or seq < 0
            or not isinstance(reply, list)
            or len(reply) != 2
            or not isinstance(reply[0], int)
            or isinstance(reply[0], bool)
            or not isinstance(reply[1], str)
        ):
            raise BadCursor("the cursor is not one this server handed out")
        return cls(seq=seq, reply=(reply[0], reply[1]))


@dataclass(frozen=True)
class ChatView:
    """What one read of the conversation found after a cursor (see :meth:`switchboard.ports.ChatSessions.chat_view`)."""

    conversation: Conversation | None  # None until the route stage has stored the conversation
    received: list[tuple[int, Envelope]] = field(default_factory=list)  # (seq, message), in seq order
    replies: list[OutMessage] = field(default_factory=list)  # taken replies, in (sent_at, id) order


# -- the session token -----------------------------------------------------------------------------------

TOKEN_PREFIX: Final = "sbs_"  # noqa: S105 - a prefix, not a secret: recognisable in a leaked log or a secret scanner's rules; says nothing else
TOKEN_BYTES: Final = 32  # 256 random bits


def new_token() -> tuple[str, str]:
    """A fresh session token and the digest to store for it. The token is random: it carries no claim,
    no conversation id and nothing of the portal's JWT, so holding it reveals nothing."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
