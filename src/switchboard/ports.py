"""What the core needs from the outside world, as protocols.

The stages and the edge are written against these; ``switchboard.aws`` implements them over
DynamoDB, SQS, S3 and Secrets Manager, and tests can implement them in memory. This is how the
core stays free of boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from switchboard.channels.base import FetchRequest
from switchboard.chat_records import ChatCursor, ChatSession, ChatView
from switchboard.conversations import Conversation, CrmState, CustomerRecord, Located, OutMessage, Profile, StoredMessage
from switchboard.envelope import Envelope
from switchboard.settings import Account, AuthSetting, CrmSettings, Widget, Workstream


class SettingsReader(Protocol):
    def account(self, account_id: str) -> Account | None: ...
    def workstream(self, workstream_id: str) -> Workstream | None: ...
    def widget(self, widget_id: str) -> Widget | None: ...
    def auth_setting(self, auth_setting_id: str) -> AuthSetting | None: ...
    def crm(self) -> CrmSettings: ...


class AccountDirectory(Protocol):
    """What the edge reads of the settings: an account by id, and a channel's accounts by a setting.

    The second is how one webhook URL serves several accounts (interface section 2): Meta posts the
    entries of all an app's pages to the one URL, and each entry names its account only by a setting
    (a page id), not by our id.
    """

    def account(self, account_id: str) -> Account | None: ...
    def accounts_with(self, channel: str, setting: str, value: str) -> list[Account]:
        """The accounts of ``channel`` (enabled or not) whose ``setting`` is ``value``, ordered by id."""
        ...


class SecretReader(Protocol):
    def get(self, name: str) -> Mapping[str, Any]:
        """The JSON object stored under ``name``.

        Raises :class:`SecretMissing` when there is none, :class:`StoreUnavailable` when the store
        could not answer (throttled, unreachable, access refused): that one is worth retrying.
        """
        ...


class Publisher(Protocol):
    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Enqueue all of them durably, or raise StoreUnavailable (some may have been sent: dedupe ids cover that).

        Envelopes of one message group reach the queue in the order given; different groups may be
        sent concurrently, so their relative order is not kept.
        """
        ...


class ConversationReader(Protocol):
    """Read-only access for the edge (token_validate checks a sign-in link's conversation is open)."""

    def get(self, conversation_id: str) -> Conversation | None: ...


class UsedLinks(Protocol):
    """Which sign-in links have been used: a ``state`` signs a conversation in once (interface section 2)."""

    def mark_used(self, link_id: str, *, expires_at: int) -> bool:
        """Record the first use of a link, durably, before its code is spent; False when it was already used.

        ``expires_at`` (unix seconds) is the link's own expiry: after it the record may vanish, because
        the link no longer verifies anyway. Raises StoreUnavailable when the store refuses.
        """
        ...


class ChatSessionOpener(Protocol):
    """Where the chat start records a visitor's session (token_validate; interface section 7)."""

    def open_session(self, session: ChatSession) -> None:
        """Store the new session (its token's digest, never the token). Raises StoreUnavailable when refused."""
        ...


class ChatSessions(Protocol):
    """A visitor's chat session and the transcript it reads (the chat function; interface section 7).

    The session is its own item, beside the conversation rather than in it: the route stage alone
    writes conversations, and this function only ever writes the session's ``ended_at``.
    """

    def session(self, conversation_id: str) -> ChatSession | None: ...
    def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation as the route stage stored it (None until it has)."""
        ...

    def end_session(self, conversation_id: str, *, at: int) -> bool:
        """Record the end once (a conditional write); False when the session had ended already or is absent."""
        ...

    def chat_view(self, conversation_id: str, cursor: ChatCursor) -> ChatView:
        """One read of the conversation: its record, the customer's messages stored after ``cursor.seq`` and the
        replies taken (sent, delivered or read) after ``cursor.reply``."""
        ...


class ConversationStore(Protocol):
    """Conversations, their messages and the crm stage's record of them.

    Exactly once rests on the writes themselves: a message is stored by a write conditional on its
    key (derived from the envelope id alone), so a second delivery finds it instead of adding a copy;
    the crm stage marks a message written by a write conditional on it not being marked. Nothing
    else (no idempotency table) is needed, and the answers of those writes say what was there before.
    """

    def read_customer(self, key: str, *, since: int) -> CustomerRecord:
        """One read: the customer's current-conversation pointer, profile, and the conversations left since ``since`` (ms).

        The record stays in hand until :meth:`release_customer`: ``profile`` and ``set_name`` for this key use it.
        """
        ...

    def locate(self, customer: CustomerRecord, envelope: Envelope, *, check_current: bool) -> Located:
        """One read: the current conversation, and whether a recent one (or, with ``check_current``, the current one)
        holds this envelope already."""
        ...

    def holds(self, conversation_id: str, envelope: Envelope) -> Envelope | None:
        """The copy of this envelope stored in the conversation, if any."""
        ...

    def repoint(self, key: str, conversation_id: str, *, replacing: Conversation | None, at: int) -> None:
        """Make ``conversation_id`` the customer's current conversation (closing ``replacing``, which stays
        recognisable for redeliveries), together with what the record in hand still owes (a looked-up name)."""
        ...

    def release_customer(self, key: str) -> None:
        """Write what the record in hand still owes, if :meth:`repoint` did not, and let it go."""
        ...

    def current(self, key: str) -> Conversation | None: ...
    def get(self, conversation_id: str) -> Conversation | None: ...
    def replies(self, conversation_id: str) -> list[OutMessage]: ...
    def advance_reply(self, conversation_id: str, reply_id: str, *, status: str, error: str | None = None) -> bool:
        """A receipt: sent -> delivered -> read, never back (``failed`` only before delivered); False when it moved nothing."""
        ...

    def set_waiting(self, key: str, conversation_id: str | None) -> None: ...
    def open(self, conversation: Conversation, *, replacing: Conversation | None) -> None: ...
    def save(self, conversation: Conversation) -> None: ...
    def put_message(self, conversation_id: str, envelope: Envelope, seq: int) -> StoredMessage:
        """Store the message unless this envelope id is stored in the conversation; either way say what is stored."""
        ...

    def add_message(self, conversation_id: str, envelope: Envelope, seq: int) -> bool:
        """Store the message; False when this envelope id is already stored in the conversation."""
        ...

    def messages(self, conversation_id: str) -> list[Envelope]: ...
    def crm_state(self, conversation_id: str) -> CrmState: ...
    def crm_view(self, conversation_id: str, envelope: Envelope) -> CrmView:
        """One read: the conversation, whether this message is marked written, and the crm stage's state."""
        ...

    def save_crm_state(self, conversation_id: str, state: CrmState) -> None: ...
    def write_mark(self, conversation_id: str, envelope: Envelope, *, at: int) -> WriteMark:
        """Mark the message written at ``at`` (ms) unless it is: one conditional write that also answers
        "written before" or "missing" (no such message in the conversation)."""
        ...

    def mark_written(self, conversation_id: str, envelope: Envelope, *, at: int | None = None) -> bool:
        """Record that the crm stage wrote this message; False when it already had."""
        ...

    def is_written(self, conversation_id: str, envelope: Envelope) -> bool: ...
    def recent(self, *, queue: str | None = None, channel: str | None = None, limit: int = 100) -> list[Conversation]: ...


class ReplyStore(Protocol):
    """Replies to the customer (``direction: "out"``), beside the conversation's customer messages.

    A reply's delivery moves on only by writes conditional on its current status, so a redelivered
    send records nothing twice and never turns a sent reply back.
    """

    def get(self, conversation_id: str) -> Conversation | None: ...
    def messages(self, conversation_id: str) -> list[Envelope]: ...
    def put_reply(self, message: OutMessage) -> bool:
        """Store the reply as pending; False when one with this id is stored already."""
        ...

    def reply(self, conversation_id: str, reply_id: str) -> OutMessage | None: ...
    def replies(self, conversation_id: str) -> list[OutMessage]: ...
    def mark_reply(
        self,
        conversation_id: str,
        reply_id: str,
        *,
        status: str,
        at: int,
        error: str | None = None,
        platform_id: str | None = None,
        unsent_files: tuple[dict[str, str], ...] = (),
    ) -> bool:
        """Pending to ``status`` once; False when the reply was not pending (or does not exist)."""
        ...

    def advance_reply(self, conversation_id: str, reply_id: str, *, status: str, error: str | None = None) -> bool:
        """A receipt: sent -> delivered -> read, never back (``failed`` only before delivered); False when it moved nothing."""
        ...

    def crm_state(self, conversation_id: str) -> CrmState: ...
    def hold_reply(self, conversation_id: str, reply_id: str, *, reason: str) -> bool:
        """Keep a pending reply waiting for the customer's next message, ``reason`` shown as its error."""
        ...

    def set_waiting(self, key: str, conversation_id: str | None) -> None:
        """Say on the customer (``Conversation.key``) which conversation's replies wait for its next message; None clears it."""
        ...

    def view(self, conversation_id: str) -> ConversationView | None:
        """Everything of the conversation in one read; None when there is no such conversation."""
        ...


@dataclass(frozen=True)
class ConversationView:
    """A whole conversation as the sender needs it: read in one request (the conversation's partition)."""

    conversation: Conversation
    state: CrmState  # the crm stage's record (contact and ticket), counts not derived
    messages: list[Envelope]  # the customer's, in order
    replies: list[OutMessage]  # in the order they were written


WriteMark = Literal["marked", "written before", "missing"]


@dataclass(frozen=True)
class CrmView:
    conversation: Conversation | None
    written: bool  # the message is marked written already
    state: CrmState
    # The ticket is in the by_ticket index (the CRM's events find the conversation by it). False for a ticket
    # recorded by a version before the index: the crm stage saves the state once more, which indexes it.
    indexed: bool = True


class ProfileStore(Protocol):
    """Per-customer facts that outlive a conversation, keyed by ``Envelope.conversation_key``."""

    def profile(self, key: str) -> Profile | None: ...
    def set_name(self, key: str, name: str | None, *, checked_at: int) -> None: ...
    def set_contact(self, key: str, provider: str, contact_id: str) -> None: ...


class FetchFailed(Exception):
    """An outbound GET failed. ``retryable`` says whether another attempt may help (timeouts, 5xx,
    429); the message names the URL without its query and never a header or parameter."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class FetchTooLarge(FetchFailed):
    """The body is (or says it is) larger than the caller allows; nothing of it is kept."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class Fetched:
    body: bytes
    content_type: str | None


class Fetcher(Protocol):
    def get(
        self,
        request: FetchRequest,
        *,
        max_bytes: int,
        timeout: float,
        check: Callable[[str | None, int | None], None] | None = None,
    ) -> Fetched:
        """GET ``request``, reading at most ``max_bytes`` within ``timeout`` seconds overall.

        ``check`` sees the Content-Type and declared length before the body is read and may raise to
        stop (what it raises propagates). Raises FetchFailed, or FetchTooLarge past ``max_bytes``.
        """
        ...


class BlobStore(Protocol):
    def put(self, key: str, body: bytes, *, content_type: str | None) -> None:
        """Keep ``body`` under ``key`` (overwriting: keys are derived, so a retry writes the same object).

        Raises StoreUnavailable when the store refuses; the message is then retried whole.
        """
        ...


class SharedBlobs(BlobStore, Protocol):
    def presigned_url(self, key: str, *, expires_in: int) -> str:
        """A URL anyone holding it can GET ``key`` with, for ``expires_in`` seconds (an agent's file, offered to a platform)."""
        ...


class TicketIndex(Protocol):
    def conversation_for_ticket(self, provider: str, ticket_id: str) -> str | None:
        """The conversation whose ticket or case this is, or None when Switchboard opened no such ticket."""
        ...


class FailureLog(Protocol):
    """Why a message failed, kept beside the dead-letter queue (SQS itself keeps no reason)."""

    def record(
        self, stage: str, message_id: str, *, error: str, conversation_id: str | None, envelope_id: str | None
    ) -> None: ...
    def get(self, stage: str, message_id: str) -> dict[str, Any] | None: ...
