"""The small interface every CRM adapter implements.

The crm stage (:mod:`switchboard.crm_stage`) decides *what* to write and records every CRM id on the
conversation; an adapter only knows *how* one CRM spells it. Four operations: who am I, upsert the
contact, open the ticket/case, append a message. Errors are classified here so the stage can
retry, pace, or dead-letter without knowing any vendor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from switchboard.envelope import Customer, Envelope
from switchboard.errors import Permanent, Retryable, SwitchboardError


class CrmError(SwitchboardError):
    """A CRM call that failed. ``message`` carries the CRM's own status and text, never a credential."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CrmRetryable(CrmError, Retryable):
    """5xx, timeouts, connection errors: try again later."""


class CrmRateLimited(CrmRetryable):
    """429 (or the CRM's equivalent): wait ``retry_after`` seconds before the next call."""

    def __init__(self, message: str, *, retry_after: float, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class CrmAuthError(CrmError, Retryable):
    """Credentials refused even after one refresh.

    Retried with backoff rather than dead-lettered at once: the fix is a `switchboard apply`, and
    a message that waits a few minutes goes through with the new credentials by itself (the
    crm_writer re-reads its secret within a minute). After the last attempt it is dead-lettered
    with this reason like any other.
    """


class CrmRejected(CrmError, Permanent):
    """A validation error (other 4xx): retrying cannot help; dead-letter with the CRM's message."""


@dataclass(frozen=True)
class CrmNotice:
    """Something the admin should hear about although the call succeeded (a revoked credential).

    Adapters collect these; the caller drains them (:meth:`CrmAdapter.drain_notices`) and reports
    or persists them. Never carries a secret value.
    """

    kind: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CrmUser:
    id: str
    name: str | None = None


@dataclass(frozen=True)
class ConversationRef:
    """What an adapter needs to know about a conversation."""

    conversation_id: str
    channel: str
    account_id: str
    customer: Customer
    contact_id: str | None  # the authenticated contact (JWT sub / userinfo id), if any
    queue: str | None
    priority: int | None


class CrmAdapter(ABC):
    provider: ClassVar[str]

    @abstractmethod
    def whoami(self) -> CrmUser:
        """Check the credentials; the returned user is the default user (the admin)."""

    @abstractmethod
    def upsert_contact(self, conversation: ConversationRef, *, owner_id: str | None) -> str:
        """Return the customer's contact id: the authenticated ``contact_id`` when the CRM has that record,
        otherwise the contact keyed on the channel identity, created or refreshed."""

    @abstractmethod
    def open_ticket(
        self,
        conversation: ConversationRef,
        *,
        contact_id: str,
        first_message: Envelope,
        owner_id: str | None,
        retry: bool = False,
    ) -> str:
        """Open the ticket/case for the conversation with its first message; return its id.

        Never opens a second one for the same conversation. ``retry`` says an earlier attempt may
        have reached the CRM without its answer being recorded; adapters whose create is not
        idempotent by itself look for that earlier ticket first (and only then, to keep the
        common path to one call).
        """

    @abstractmethod
    def append_message(
        self, conversation: ConversationRef, *, ticket_id: str, contact_id: str, message: Envelope, owner_id: str | None
    ) -> None:
        """Add a later customer message to the ticket/case; ``owner_id`` is set only when the default user
        owns every record (``default_user.always``)."""

    def ticket_owner(self, owner_id: str | None) -> str | None:
        """Who will own a ticket opened with ``owner_id``: the same, unless the CRM cannot leave it unassigned."""
        return owner_id

    def drain_notices(self) -> list[CrmNotice]:
        """Hand over (and forget) what the admin should hear about since the last drain."""
        return []
