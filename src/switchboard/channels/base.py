"""The small interface every channel adapter implements.

An adapter knows one platform's webhook: how the platform proves it sent a request, what the body
means, and what the platform expects back. It knows nothing of AWS: the edge core
(:mod:`switchboard.edge`) loads the account and its secrets, calls the adapter, and enqueues.
Adding a channel is one module here (plus its line in the registry, its tests and recorded payloads):
the module also declares the account's settings as JSON Schema, which the configuration file's
schema (:mod:`switchboard.config_schema`) is assembled from, and how ``switchboard send`` forges a
delivery (:meth:`ChannelAdapter.simulate`), so no other code needs to know the platform.
"""

from __future__ import annotations

import hmac
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from switchboard import safe_json
from switchboard.envelope import Attachment, Customer, Envelope
from switchboard.errors import BadRequest, HttpError, Permanent, Retryable, SecretMissing, SwitchboardError, Unauthorized
from switchboard.settings import Account
from switchboard.web import WebhookRequest, WebhookResponse

if TYPE_CHECKING:
    from switchboard.outbound_http import OutboundError, Redactor


def stored_secret(secrets: Mapping[str, Any], name: str) -> str:
    """The secret ``name`` for code that signs rather than verifies (``simulate``): missing is an error."""
    value = secrets.get(name)
    if not isinstance(value, str) or not value:
        raise SecretMissing(f"no stored {name}")
    return value


def require_secret(secrets: Mapping[str, object], name: str, refusal: HttpError) -> str:
    """The account's secret ``name``, or ``refusal`` raised when it is missing, empty or blank.

    An HMAC keyed with the empty string is a signature anyone can compute, and an empty stored token
    equals an empty presented one, so a hollow secret would make the account forgeable. The caller
    passes the very refusal it gives a wrong signature or token: the platform (and an attacker) sees
    nothing that tells a misconfigured account from a forged request, and no ``KeyError`` escapes.
    The value is returned as stored, surrounding whitespace included.
    """
    value = secrets.get(name)
    if not isinstance(value, str) or not value.strip():
        raise refusal
    return value


@dataclass(frozen=True)
class FetchRequest:
    """A GET the route stage makes for an attachment's bytes or a customer's profile.

    ``headers`` and ``params`` (the query) may carry credentials, so whatever logs or reports a
    fetch names only :attr:`target`: the URL without its query.
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    # The answer is not the bytes but JSON saying where they are (WhatsApp hands media out by id: the
    # id's node names a short-lived URL): :meth:`ChannelAdapter.attachment_location` reads it.
    locates: bool = False

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


@dataclass(frozen=True)
class OutFile:
    """An agent's file offered to the platform with a reply: a short-lived presigned URL into the
    attachments bucket (the platform fetches it), never the CRM's own URL or its credentials.

    ``kind`` is the generic medium (image, video, audio, file) the sender worked out from the
    content type; a channel carries the kinds it lists in :attr:`ChannelAdapter.file_kinds`.
    """

    name: str
    url: str
    kind: str  # image | video | audio | file
    content_type: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Reply:
    """One agent's reply (or `switchboard reply`) to send to the conversation's customer.

    ``id`` is stable across every attempt, so a platform idempotency key derived from it (LINE's
    X-Line-Retry-Key, GBM's messageId) makes a retry after an unknown outcome harmless.
    ``last_customer_message_at`` is the platform's own timestamp (ms) of the customer's latest
    message: Messenger's messaging windows are counted from it.
    """

    id: str
    conversation_id: str
    customer_id: str
    text: str
    last_customer_message_at: int | None = None
    author: str | None = None
    files: tuple[OutFile, ...] = ()  # agents' files: only kinds in the channel's file_kinds, within the account's limits


@dataclass(frozen=True)
class Sent:
    """What the platform said when it took a reply: its own id for it, when it gives one."""

    platform_id: str | None = None
    # Files of the reply the platform did not take although the text went: (file name, reason).
    unsent_files: tuple[tuple[str, str], ...] = ()


# What a receipt event carries (``Event(kind="receipt", data={"receipt": {...}})``): the route stage
# moves the delivery of the conversation's replies it covers forward (sent -> delivered -> read; a
# platform's ``failed`` marks it failed). Keys: ``status`` (one of RECEIPT_STATUSES), ``platform_ids``
# (the platform's ids of the replies it covers, as ``Sent.platform_id`` recorded them), ``watermark``
# (ms: every reply sent at or before it, for platforms that acknowledge by time, like Messenger), and
# ``error`` (the platform's reason, for ``failed``). Receipts are never customer messages.
RECEIPT_STATUSES = ("sent", "delivered", "read", "failed")


class SendRetryable(Retryable):
    """The platform may take it later (5xx, 429 with ``retry_after``, a timeout): retried, then dead-lettered."""


class SendRefused(Permanent):
    """The platform will not take it, however often asked (blocked, window closed, invalid recipient,
    a monthly limit): final at once. ``code`` is a short machine reason (``outside_messaging_window``)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class SendDeferred(SwitchboardError):
    """Not sent, on purpose: the platform takes the reply only after the customer writes again.

    WhatsApp delivers free-form messages only within 24 h of the customer's last message; later only
    an approved template goes. A channel whose account names one sends it and raises this, so the
    reply is neither sent nor failed: it waits in the conversation and is sent when the customer
    answers (interface section 8). Neither retryable (asking again sends another template) nor
    permanent (the reply is still to be delivered). ``sent`` is the platform's answer for what went
    instead (the template's id, whose receipts then name it); ``code`` is a short machine reason.
    Every call outside the window sends the template again, so the caller holds the conversation's
    later replies behind the waiting one instead of offering each to :meth:`ChannelAdapter.send`.
    """

    def __init__(self, message: str, *, sent: Sent, code: str = "awaiting_customer") -> None:
        super().__init__(message)
        self.sent = sent
        self.code = code


@dataclass(frozen=True)
class Simulated:
    """A delivery as the platform would post it: what ``switchboard send`` sends to the gateway."""

    path: str  # below the API's URL: /webhooks/<channel>/<account id>
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Event:
    """One customer event as a channel reads it: :meth:`ChannelAdapter.parse` makes it this account's envelope."""

    key: str  # the platform's own id for the event: how a redelivery is recognised
    customer: Customer
    kind: str
    text: str | None
    sent_at: int  # milliseconds since the epoch
    attachments: tuple[Attachment, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParseResult:
    envelopes: list[Envelope]
    skipped: list[str] = field(default_factory=list)  # why items were left out (echo, other page), for the log


class ChannelAdapter(ABC):
    """One platform's webhook. Implementations are stateless and cheap to construct."""

    channel: ClassVar[str]  # the registry's name, the webhook path's segment and the envelopes' channel
    label: ClassVar[str]  # how people and CRMs name it ("LINE", "Facebook Messenger")
    medium: ClassVar[str]  # the generic medium a CRM maps from: "chat", "facebook", "whatsapp", ...
    # The account's channel-specific settings: name -> JSON Schema (draft 2020-12) with a
    # "description" and, where there is one, the "default" the adapter applies. URLs are
    # {"$ref": "#/$defs/url"}; the configuration schema owns that and the other shared $defs.
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    required_settings: ClassVar[tuple[str, ...]] = ()
    # Names under the account's ``secrets`` that this channel requires at apply time.
    required_secrets: ClassVar[tuple[str, ...]] = ()
    # Secrets the account may also give (for example GBM's partner key when it signs with it).
    optional_secrets: ClassVar[tuple[str, ...]] = ()
    # Extra JSON Schema applied to the whole account object, for rules that tie settings together.
    schema_rules: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    # The kinds of agents' files (image, video, audio, file) this channel's send can carry (interface section 6).
    file_kinds: ClassVar[frozenset[str]] = frozenset()

    def secrets_for(self, options: Mapping[str, object]) -> tuple[str, ...]:
        """Secrets this account needs given its settings (a channel may need more in some set-ups)."""
        return self.required_secrets

    def handshake(self, request: WebhookRequest, account: Account, secrets: Mapping[str, str]) -> WebhookResponse | None:
        """Answer a platform's set-up handshake (Facebook GET, GBM clientToken body); None for ordinary requests."""
        return None

    # For platforms that sign the raw body into one header (the default :meth:`verify`): the header
    # as the platform names it ("X-Line-Signature") and the secret that keys the signature.
    signature_header: ClassVar[str] = ""
    signing_key: ClassVar[str] = ""

    def verify(self, request: WebhookRequest, account: Account, secrets: Mapping[str, str]) -> None:
        """Raise :class:`Unauthorized` unless the platform signed ``request.body``. Constant time.

        The key comes through :func:`require_secret`: a missing, empty or blank secret refuses exactly
        as a wrong signature does (the same holds for the secret a :meth:`handshake` compares). The
        default is the policy of a platform that signs the raw body into :attr:`signature_header`,
        built from the primitives :meth:`signature` and :meth:`signing_key_name`; a platform that
        proves itself otherwise overrides this.
        """
        received = request.header(self.signature_header)
        if not received:
            raise Unauthorized(f"missing {self.signature_header} header", code="missing_signature")
        self.check_signature(received, self.signature_header, self.signing_key_name(account), request.body, secrets)

    def check_signature(self, received: str, header: str, key_name: str, body: bytes, secrets: Mapping[str, str]) -> None:
        """Refuse unless ``received`` (the value of ``header``) is :meth:`signature` of ``body`` under the secret ``key_name``.

        The bytes compared are the raw body's digest, never a re-serialised JSON, in constant time.
        An account without a usable key answers exactly as a wrong signature does: the empty key's
        HMAC is one anybody can compute.
        """
        refusal = Unauthorized(f"{header} does not match the body")
        expected = self.signature(require_secret(secrets, key_name, refusal), body, header)
        if not hmac.compare_digest(self.presented(received).encode("utf-8"), expected.encode("ascii")):
            raise refusal

    def signature(self, key: str, body: bytes, header: str) -> str:
        """The value the platform sends in ``header`` for ``body`` signed with ``key``."""
        raise NotImplementedError(f"{self.channel} does not sign its deliveries into a header")

    def signing_key_name(self, account: Account) -> str:
        """Which of the account's secrets keys its signatures (GBM lets the account choose)."""
        return self.signing_key

    def presented(self, received: str) -> str:
        """The received signature as compared: stripped; a platform whose encoding is case-free also folds case."""
        return received.strip()

    def parse(self, request: WebhookRequest, account: Account, *, received_at: int, correlation_id: str) -> ParseResult:
        """Turn a verified body into envelopes, one per event. Raise :class:`BadRequest` for a body that is not the platform's.

        The policy every channel shares is here: the body is decoded through :mod:`safe_json` (so
        malformed or absurdly nested JSON is a ``BadRequest``, never a crash), and each event the
        channel's :meth:`read` finds becomes an envelope of this channel and account, its id scoped by
        :meth:`envelope_id`, stamped with when the edge received it and the request's correlation id.
        """
        try:
            body = safe_json.loads(request.body)
        except safe_json.JsonError as exc:
            raise BadRequest(f"body is not usable JSON: {exc}") from None
        events, skipped = self.read(body, account, received_at=received_at)
        envelopes = [self.envelope(event, account, received_at=received_at, correlation_id=correlation_id) for event in events]
        return ParseResult(envelopes, skipped)

    def envelope(self, event: Event, account: Account, *, received_at: int, correlation_id: str) -> Envelope:
        """``event`` as ``account``'s envelope (a body whose entries belong to several accounts makes each its own's)."""
        return Envelope(
            id=self.envelope_id(account, event.key),
            channel=self.channel,
            account_id=account.id,
            customer=event.customer,
            kind=event.kind,
            text=event.text,
            attachments=event.attachments,
            sent_at=event.sent_at,
            received_at=received_at,
            correlation_id=correlation_id,
            data=event.data,
        )

    def read(self, body: Any, account: Account, *, received_at: int) -> tuple[list[Event], list[str]]:
        """The customer events in a decoded body, and why any items were left out (for the log).

        Raise :class:`BadRequest` for a body that is not the platform's. ``received_at`` stands in
        for a send time the body does not give. Every registered channel provides this primitive.
        """
        raise NotImplementedError(f"{self.channel} provides no reader for its deliveries")

    def envelope_id(self, account: Account, event_key: str) -> str:
        """The platform's own event key scoped by channel and account: how a redelivery is recognised anywhere."""
        return f"{self.channel}:{account.id}:{event_key}"

    def accepted(self, result: ParseResult) -> WebhookResponse:
        """What the platform expects once everything is enqueued."""
        return WebhookResponse.json(200, {})

    # -- off the webhook's path: the route stage keeps media and looks names up through these --------

    def attachment_request(self, attachment: Attachment, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        """Where this attachment's bytes are, or None when it has none worth keeping (a shared link).

        The default fetches the payload's own URL (Facebook CDN, GBM signed storage URL), which
        needs no credential; ``secrets`` reads Secrets Manager only when an adapter indexes it.
        """
        return FetchRequest(attachment.url) if attachment.url else None

    def attachment_location(
        self, answer: Any, attachment: Attachment, account: Account, secrets: Mapping[str, str]
    ) -> FetchRequest | None:
        """Where the bytes are, read from the JSON ``answer`` to a request :meth:`attachment_request` marked
        ``locates`` (a platform that hands media out by id); None when the answer names no place.

        A second request rather than a redirect: the place is on another origin (where the fetcher would
        drop credentials) and still needs the platform's token. Only such platforms override this.
        """
        return None

    def profile_request(self, envelope: Envelope, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        """The platform's profile look-up for the envelope's customer; None where there is none to make
        (the payload already names the customer, as GBM's does, or the id is not a person's)."""
        return None

    def profile_name(self, body: Any) -> str | None:
        """The customer's display name in the JSON :meth:`profile_request` answered."""
        return None

    # -- the way back: a reply to the customer (interface section 6) -------------------------------

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        """Deliver ``reply`` through the platform's send API with ``http`` (an ``outbound_http.Client``).

        Raise :class:`SendRetryable` when asking again later may work and :class:`SendRefused` when it
        never will (that is about the text: a file the platform refuses is named in
        :attr:`Sent.unsent_files`); an unknown outcome (a timeout after sending) is retryable, and the platform's
        idempotency key derived from ``reply.id`` keeps the retry from doubling the message.
        """
        raise NotImplementedError(f"replies cannot be sent on {self.channel} yet")

    # -- for the command: `switchboard send <channel>` -----------------------------------------------

    def simulate(
        self, account: Mapping[str, Any], secrets: Mapping[str, Any], *, text: str, user: str | None, event_id: str | None
    ) -> Simulated:
        """A realistic delivery of ``text`` to ``account`` (its stored settings), signed with its ``secrets``.

        It is built and signed exactly as the platform does it, so it exercises the real verify and
        parse. ``user`` is the platform's customer id (a stable demo customer when None); ``event_id``
        replays a delivery with the platform's own event id. A secret the account does not hold raises
        :class:`~switchboard.errors.SecretMissing` naming it, never a value. A channel provides the two
        primitives below; every registered channel does (tests/unit/channels/test_simulate.py).
        """
        body = self.simulated_body(account, text=text, user=user, event_id=event_id)
        return Simulated(self.webhook_path(str(account["id"])), body, self.signed_headers(account, secrets, body))

    def simulated_body(self, account: Mapping[str, Any], *, text: str, user: str | None, event_id: str | None) -> bytes:
        """The body the platform would send for one customer message of ``text`` to ``account``."""
        raise NotImplementedError(f"{self.channel} deliveries cannot be simulated")

    def signed_headers(self, account: Mapping[str, Any], secrets: Mapping[str, Any], body: bytes) -> dict[str, str]:
        """The headers with which the platform proves it sent ``body`` to ``account`` (for the command and tests)."""
        raise NotImplementedError(f"{self.channel} deliveries cannot be signed")

    def webhook_path(self, account_id: str) -> str:
        """The account's webhook below the API's URL (interface section 2)."""
        return f"/webhooks/{self.channel}/{account_id}"


def send_secret(secrets: Mapping[str, Any], name: str) -> str:
    """The secret ``name`` for a send, or a refusal naming it (never a value): a set-up error no retry fixes."""
    value = secrets.get(name)
    if not isinstance(value, str) or not value.strip():
        raise SendRefused(f"the account has no usable {name} secret", code="not_configured")
    return value


def transport_failure(platform: str, exc: OutboundError, redact: Redactor) -> Exception:
    """A call that got no answer: retryable when another try may get one (timeout, connection), else refused."""
    reason = redact(str(exc))
    if exc.retryable:
        return SendRetryable(f"{platform} send failed: {reason}", retry_after=exc.retry_after)
    return SendRefused(f"{platform} send failed: {reason}", code="request_failed")
