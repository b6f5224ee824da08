"""The small interface every CRM adapter implements.

The crm stage (:mod:`switchboard.crm_stage`) decides *what* to write and records every CRM id on the
conversation; an adapter only knows *how* one CRM spells it. Four operations: who am I, upsert the
contact, open the ticket/case, append a message. Errors are classified here so the stage can
retry, pace, or dead-letter without knowing any vendor.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from switchboard import safe_json
from switchboard.envelope import Customer, Envelope
from switchboard.errors import BadRequest, ConfigurationError, Permanent, Retryable, SwitchboardError, Unauthorized
from switchboard.web import WebhookRequest

if TYPE_CHECKING:
    from typing import Self

    from switchboard.outbound_http import Session
    from switchboard.settings import CrmSettings


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


class CrmConfigError(ConfigurationError, ValueError):
    """Settings or secrets that cannot make an adapter; names the missing keys, never their values.

    Retried like any missing setting: `switchboard apply` writes the secret before the settings.
    """


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


@dataclass(frozen=True)
class ContactFields:
    """What every CRM stores about a customer, worked out once by :meth:`CrmAdapter.upsert_contact`."""

    identity: str  # the channel identity: the key the contact is upserted on
    name: str  # the display name, or "<channel> customer <id>" without one; cut to the CRM's limit
    email: str | None


def channel_identity(channel: str, account_id: str, customer_id: str) -> str:
    """The key a customer is known by in every CRM: the same person on another account is another contact,
    because platform user ids (LINE, Messenger page-scoped ids) are only unique per account."""
    return f"{channel}:{account_id}:{customer_id}"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def url_setting(description: str, *, default: str | None = None) -> dict[str, Any]:
    """A URL setting: the schema's shared ``url`` definition (https, or http on the local stack)."""
    setting: dict[str, Any] = {"$ref": "#/$defs/url"}
    if default is not None:
        setting["default"] = default
    setting["description"] = description
    return setting


def text_setting(description: str, *, pattern: str | None = None, default: str | None = None) -> dict[str, Any]:
    """A string setting, held to ``pattern`` where the value ends up in a URL or a header."""
    setting: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        setting["pattern"] = pattern
    if default is not None:
        setting["default"] = default
    setting["description"] = description
    return setting


# JSON Schema types a stored setting may have, as Python sees them once decoded (bool is not an integer here).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (Mapping,),
    "array": (list, tuple),
    "null": (type(None),),
}


def _has_type(value: Any, schema: Mapping[str, Any]) -> bool:
    declared = schema.get("type", "string" if "$ref" in schema else None)
    if declared is None:
        return True
    names = [declared] if isinstance(declared, str) else list(declared)
    for name in names:
        if isinstance(value, _JSON_TYPES[name]) and not (name in ("integer", "number") and isinstance(value, bool)):
            return True
    return False


@dataclass(frozen=True)
class AgentFile:
    """A file an agent attached to a reply, where the CRM keeps it.

    ``url`` is fetched by the sender with ``headers`` (which may carry the CRM's credential, so only
    the URL without its query is ever logged); the bytes go to the attachments bucket and reach the
    platform through a short-lived presigned URL.
    """

    name: str
    url: str
    content_type: str | None = None
    size: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentReply:
    """One public reply an agent wrote on the ticket or case (interface section 6: what counts per CRM)."""

    crm_id: str  # the comment, CaseComment, note or message it is: what makes it one reply however often it is read
    text: str
    created_at: int  # ms, the CRM's own time: replies are sent in this order
    author: str | None = None  # the agent's name, when the CRM gives it
    files: tuple[AgentFile, ...] = ()


@dataclass(frozen=True)
class CrmThread:
    """What an event makes Switchboard read of a ticket or case: who it is about now, and the agents' replies."""

    ticket_id: str
    contact_id: str | None  # the ticket's contact now (Zendesk requester, ContactId, customerid, Kustomer customer)
    replies: tuple[AgentReply, ...] = ()


@dataclass(frozen=True)
class OwnWrites:
    """What Switchboard itself wrote on the ticket, so no echo is ever read back as an agent's reply.

    Whoever the CRM says wrote a record (the default user can be the agent who replies), a record
    that is one of these is never a reply: ``contact_ids`` are every contact Switchboard wrote the
    customer's messages as, ``message_ids`` the envelope ids of those messages (adapters derive
    their record ids or external ids from them).
    """

    contact_ids: frozenset[str] = frozenset()
    message_ids: frozenset[str] = frozenset()
    # The bodies as written (``describe_message`` of each message), for a CRM whose records carry no id
    # Switchboard chose (a Salesforce CaseComment an agent later made public): a record with one of these
    # bodies, as the CRM stores it, is never a reply. Optional: without it the other rules still hold.
    texts: frozenset[str] = frozenset()


# -- the CRM's events: checks every CRM module shares (interface section 6) ---------------------------

# The header Salesforce's flow and Dataverse's service endpoint send the shared key in.
SHARED_KEY_HEADER = "X-Switchboard-Key"


def events_secret(secret: object, refusal: Unauthorized) -> bytes:
    """The events secret as bytes, or ``refusal`` raised when it is missing, empty or blank.

    An HMAC keyed with the empty string is one anybody can compute, and an empty stored key equals
    an empty presented one: a stack without its secret must refuse exactly as it refuses a forgery.
    """
    if not isinstance(secret, str) or not secret.strip():
        raise refusal
    return secret.encode("utf-8")


def presented(request: WebhookRequest, header: str, refusal: Unauthorized) -> bytes:
    """The stripped value of ``header`` as bytes; ``refusal`` when it is absent or blank."""
    value = request.header(header)
    if value is None or not value.strip():
        raise refusal
    return value.strip().encode("utf-8")


def check_shared_key(request: WebhookRequest, secret: str) -> None:
    """Refuse unless the request's :data:`SHARED_KEY_HEADER` equals ``secret`` (constant time, bytes)."""
    refusal = Unauthorized(f"{SHARED_KEY_HEADER} does not match this stack's events secret", code="invalid_key")
    key = events_secret(secret, refusal)
    if not hmac.compare_digest(presented(request, SHARED_KEY_HEADER, refusal), key.strip()):
        raise refusal


def hmac_sha256(secret: bytes, data: bytes) -> bytes:
    return hmac.new(secret, data, hashlib.sha256).digest()


def event_body(request: WebhookRequest) -> Any:
    """A verified event's JSON, through :mod:`switchboard.safe_json`; anything else is a BadRequest."""
    try:
        return safe_json.loads(request.body)
    except safe_json.JsonError as exc:
        raise BadRequest(f"the event body is not usable JSON: {exc}") from None


def iso_ms(value: object) -> int | None:
    """ISO 8601 (``Z``, ``+00:00`` or Salesforce's ``+0000``) as epoch ms; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a time without its zone could be hours off: not one the CRMs send
    return int(parsed.timestamp() * 1000)


def same_text(a: str, b: str) -> bool:
    """Two bodies compared as a CRM may store them: surrounding whitespace and line endings aside."""
    return a.replace("\r\n", "\n").strip() == b.replace("\r\n", "\n").strip()


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` is on the CRM's own scheme, host and port: the only place its credentials may go.

    A CRM names where an agent's file or the next page is; a URL on another host (a CDN, or a value an
    agent could influence) is fetched without the credential, never with it.
    """
    a, b = urlsplit(url), urlsplit(base)
    return bool(a.scheme) and (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def note_with_ref(text: str, key: str) -> str:
    """A private note's text ending in its key, so a retry that finds the note on the ticket adds no second one
    (for a CRM whose notes take no client-chosen id)."""
    return f"{text.rstrip()}\n\n{NOTE_REF_PREFIX}{key}"


def has_note_ref(body: object, key: str) -> bool:
    return isinstance(body, str) and body.rstrip().endswith(f"{NOTE_REF_PREFIX}{key}")


NOTE_REF_PREFIX = "Switchboard ref: "


class CrmAdapter(ABC):
    """One CRM, declared for the configuration schema and built from the stored settings.

    The class attributes are the CRM's whole description: the registry
    (:mod:`switchboard.crm.registry`) lists the class, and the configuration schema, ``apply``'s
    credential check, the benchmark and the tests read these, so adding a CRM is its module plus one
    registry line. Settings follow the plug-in format: name -> JSON Schema with a ``description``
    and, where there is one, a ``default``; URLs are ``{"$ref": "#/$defs/url"}``.
    """

    provider: ClassVar[str]
    label: ClassVar[str]
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    required_settings: ClassVar[tuple[str, ...]] = ()
    required_secrets: ClassVar[tuple[str, ...]] = ()
    optional_secrets: ClassVar[tuple[str, ...]] = ()
    # Secrets whose value is a non-empty list of secrets (several linked users' tokens).
    list_secrets: ClassVar[tuple[str, ...]] = ()
    # Extra JSON Schema applied to the whole CRM section (rules that tie one setting to another).
    schema_rules: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    # The longest contact name the CRM keeps (its name field's length); None: no limit to respect.
    contact_name_limit: ClassVar[int | None] = None

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: CrmSettings, secrets: Mapping[str, Any], *, session: Session | None = None) -> Self:
        """Build the adapter from stored settings; :class:`CrmConfigError` names what is missing."""

    @classmethod
    def stored_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The section's settings as the settings table keeps them, from the file's validated ones.

        The same by default; a CRM whose settings have several spellings of one value (Salesforce's
        15- and 18-character org ids) stores the one its adapter compares with, so `apply` needs no
        knowledge of any CRM.
        """
        return dict(settings)

    @classmethod
    def resolve_settings(cls, settings: CrmSettings, secrets: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared setting's value, defaults from :attr:`settings_schema` filled in.

        ``apply`` validated the file against the same schema, but settings are also read back from
        the table, perhaps written by an older version: what is missing or of the wrong type is
        refused here by name (never by value) rather than failing somewhere inside a call.
        """
        missing = [f"secrets.{k}" for k in cls.required_secrets if not secrets.get(k)]
        missing += [k for k in cls.required_settings if not settings.option(k)]
        if missing:
            raise CrmConfigError(f"crm ({cls.provider}) is missing: {', '.join(missing)}")
        values: dict[str, Any] = {}
        for name, schema in cls.settings_schema.items():
            value = settings.options.get(name)
            if name not in settings.options or (value is None and not _has_type(None, schema)):
                value = schema.get("default")  # absent, or an empty entry an older version stored
            elif not _has_type(value, schema):
                raise CrmConfigError(f"crm ({cls.provider}) setting {name} must be of type {schema.get('type', 'string')}")
            values[name] = value
        return values

    @staticmethod
    def secret_list(secrets: Mapping[str, Any], name: str) -> list[str]:
        """A :attr:`list_secrets` value as a list (a lone string, as older files stored it, is a list of one)."""
        value = secrets.get(name)
        if isinstance(value, str):
            return [value]
        if isinstance(value, Sequence):
            return [str(v) for v in value if v]
        raise CrmConfigError(f"secrets.{name} must be a list of strings")

    @abstractmethod
    def whoami(self) -> CrmUser:
        """Check the credentials; the returned user is the default user (the admin)."""

    def upsert_contact(self, conversation: ConversationRef, *, owner_id: str | None) -> str:
        """Return the customer's contact id: the authenticated ``contact_id`` when the CRM has that record,
        otherwise the contact keyed on the channel identity, created or refreshed.

        A signed-in customer's own record wins over the one a channel identity would make, so an agent
        sees one person, not one per channel; every CRM names a channel customer the same way.
        """
        if conversation.contact_id:
            found = self._existing_contact(conversation.contact_id)
            if found is not None:
                return found
        customer = conversation.customer
        name = customer.name or f"{conversation.channel} customer {customer.id}"
        fields = ContactFields(
            identity=channel_identity(conversation.channel, conversation.account_id, customer.id),
            name=name if self.contact_name_limit is None else truncate(name, self.contact_name_limit),
            email=customer.email or None,
        )
        return self._write_contact(fields, owner_id=owner_id)

    @abstractmethod
    def _existing_contact(self, contact_id: str) -> str | None:
        """The CRM's id of the authenticated contact ``contact_id``, or None when it has no such record.

        An id that cannot be one of the CRM's (wrong form) is None without a call.
        """

    @abstractmethod
    def _write_contact(self, contact: ContactFields, *, owner_id: str | None) -> str:
        """Create or refresh the contact keyed on ``contact.identity``; return its id (never a twin on retry)."""

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
        have reached the CRM without its answer being recorded; only then is that earlier ticket
        looked for (:meth:`_find_ticket`), to keep the common path to one call.
        """
        if retry:
            found = self._find_ticket(conversation, contact_id=contact_id, first_message=first_message)
            if found is not None:
                return found
        return self._create_ticket(conversation, contact_id=contact_id, first_message=first_message, owner_id=owner_id)

    def _find_ticket(self, conversation: ConversationRef, *, contact_id: str, first_message: Envelope) -> str | None:
        """The ticket an earlier attempt opened for the conversation, finished if it was cut short; None if none.

        None without a call by default: a CRM whose create is idempotent by itself (an upsert, a
        client-chosen key) needs no look-up.
        """
        return None

    @abstractmethod
    def _create_ticket(
        self, conversation: ConversationRef, *, contact_id: str, first_message: Envelope, owner_id: str | None
    ) -> str:
        """Open the ticket/case with its first message; return its id."""

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

    # -- the way back: the CRM's events and its agents' replies (interface section 6) ------------------

    # The secret under the CRM's ``secrets`` that proves its events (the shared key, or the HMAC key);
    # for Zendesk, `apply` fetches it from the webhook it creates unless the file gives it.
    events_secret_name: ClassVar[str] = "events_secret"  # noqa: S105 - a name, not a value

    @classmethod
    def verify_event(cls, request: WebhookRequest, secret: str, *, now: float) -> None:
        """Raise :class:`~switchboard.errors.Unauthorized` unless the CRM sent ``request`` (``now``: unix seconds).

        Constant time over the raw body; a missing, empty or blank ``secret`` refuses exactly as a
        wrong signature does, so a stack without the secret verifies nothing.
        """
        raise NotImplementedError(f"{cls.provider} events cannot be verified yet")

    @classmethod
    def event_ticket(cls, request: WebhookRequest) -> str | None:
        """The ticket or case id a verified event names; None when it names none (answered 200, nothing done).

        Raise :class:`~switchboard.errors.BadRequest` for a body that is not the CRM's event. No call
        is made: the replies are read from the API afterwards (:meth:`read_thread`).
        """
        raise NotImplementedError(f"{cls.provider} events cannot be read yet")

    def read_thread(self, ticket_id: str, *, own: OwnWrites) -> CrmThread:
        """The ticket's current contact and every agent's public reply on it, oldest first.

        Read from the API on every event, so a lost, repeated or reordered event changes nothing.
        Never an echo: nothing in ``own``, no private note, nothing the customer's side wrote.
        """
        raise NotImplementedError(f"replies cannot be read from {self.provider} yet")

    def add_private_note(self, ticket_id: str, text: str, *, key: str) -> None:
        """Tell the agents on the ticket (never the customer) that a reply did not reach the customer and why.

        ``key`` is stable for one failure: a CRM with a client-chosen id or external id uses it so a retry
        adds no second note.
        """
        raise NotImplementedError(f"notes cannot be written to {self.provider} yet")

    def ensure_events_hook(self, endpoint: str) -> str | None:
        """Zero-click set-up: make the CRM call ``endpoint`` on a new public reply; return the events secret.

        Creates or updates exactly one of each thing it needs, so a second `apply` changes nothing.
        None (the default) where the CRM's API does not allow it: docs/replies.md walks the admin through it.
        """
        return None
