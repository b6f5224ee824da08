"""The edge core: verify, normalise, enqueue durably, and only then answer.

Order matters: size first (cheap, before anything is read), then the id in the path (a shape no
configuration allows is 404 before any look-up, so made-up ids cannot fill caches or logs, nor
reach DynamoDB past its key size), then the account (404), then its secrets, then the platform's
handshake or signature (401/403), then the body (400), then each event's size (413). Nothing is
enqueued unless every check passed, and 200 is answered only after SQS accepted every envelope; if
it refused, 503 makes the platform deliver again (dedupe ids keep the retry from doubling anything).

One URL may serve several accounts (interface section 2): for a channel that says so
(:class:`SharedWebhook`, Meta's), each entry of a verified body is recorded under the account it
names among those that verify with the same secret (:func:`sibling_accounts`); the settings and
secrets of another account are read only when a body holds an entry for one.

Only what another delivery could fix is 503. An account whose secret is missing or blank is a
set-up error: its requests are refused as unsigned ones are (nothing can be verified without the
secret, and a 503 would have the platform redeliver forever). A refusal writes one WARNING line that
quotes at most :data:`LOGGED_ID_CHARS` characters of the id, and never the body or the headers.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from switchboard.channels.base import ChannelAdapter, ParseResult
from switchboard.envelope import Envelope
from switchboard.errors import (
    BadRequest,
    Forbidden,
    HttpError,
    NotFound,
    PayloadTooLarge,
    SecretMissing,
    StoreUnavailable,
    Unauthorized,
)
from switchboard.observability import logger, metrics
from switchboard.ports import AccountDirectory, Publisher, SecretReader
from switchboard.secret_names import secret_name
from switchboard.settings import Account, is_valid_id
from switchboard.web import WebhookRequest, WebhookResponse

MAX_BODY_BYTES = 1 << 20  # 1 MiB (interface section 2)
# One event's envelope as SQS carries it (UTF-8 JSON). route stores it as one DynamoDB item (400 KB
# at most) with the conversation id and routing added, and keeps the text a second time when it
# marks a message unsupported; the crm queue carries it again (SQS: 256 KiB a message). 64 KiB stays
# well inside both; a platform's real event is a few KiB (LINE text: 5,000 characters at most).
MAX_ENVELOPE_BYTES = 64 * 1024
LOGGED_ID_CHARS = 64
MAX_CUSTOMER_ID_BYTES = 256


def shown_id(value: str) -> str:
    """``value`` as a log line or an error message may quote it: ASCII, and at most
    :data:`LOGGED_ID_CHARS` characters plus an ellipsis (a path may hold thousands)."""
    text = ascii(value[: LOGGED_ID_CHARS + 1])[1:-1]
    return text if len(text) <= LOGGED_ID_CHARS else text[:LOGGED_ID_CHARS] + "..."


@dataclass
class EdgeDeps:
    settings: AccountDirectory
    secrets: SecretReader
    publisher: Publisher
    secrets_prefix: str
    clock: Callable[[], float] = field(default=time.time)


def receive(adapter: ChannelAdapter, request: WebhookRequest, deps: EdgeDeps) -> WebhookResponse:
    account_id = request.path_params.get("account_id", "")
    correlation_id = request.request_id or uuid.uuid4().hex
    logger.set_correlation_id(correlation_id)
    try:
        return _receive(adapter, request, deps, account_id, correlation_id)
    except HttpError as refused:
        return _refuse(adapter, account_id, refused)
    except StoreUnavailable as exc:
        logger.error(
            "webhook not enqueued", extra={"channel": adapter.channel, "account_id": shown_id(account_id), "reason": str(exc)}
        )
        return WebhookResponse.json(503, {"error": "unavailable", "message": "not accepted, please deliver again"})
    # Anything else is a bug, answered and logged once for every function by switchboard.lambda_entry.


def _receive(
    adapter: ChannelAdapter, request: WebhookRequest, deps: EdgeDeps, account_id: str, correlation_id: str
) -> WebhookResponse:
    if len(request.body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    if not is_valid_id(account_id):
        raise NotFound(f"no enabled {adapter.channel} account {shown_id(account_id)!r}")
    account = deps.settings.account(account_id)
    if account is None or account.channel != adapter.channel or not account.enabled:
        raise NotFound(f"no enabled {adapter.channel} account {account_id!r}")
    name = secret_name(deps.secrets_prefix, "account", account.id, account.channel)
    try:
        secrets = deps.secrets.get(name)
    except SecretMissing:
        return _refuse(adapter, account.id, _unverifiable(request), missing_secret=name)
    missing = missing_secret(adapter, account, secrets)
    if missing is not None:
        return _refuse(adapter, account.id, _unverifiable(request), missing_secret=missing)
    handshake = adapter.handshake(request, account, secrets)
    if handshake is not None:
        logger.info("webhook handshake answered", extra={"channel": adapter.channel, "account_id": account.id})
        metrics.add_metric(name="HandshakesAnswered", unit="Count", value=1)
        return handshake
    adapter.verify(request, account, secrets)
    received_at = int(deps.clock() * 1000)
    if isinstance(adapter, SharedWebhook):
        lookup = sibling_accounts(adapter, account, secrets, deps)
        result = adapter.parse_shared(request, account, accounts=lookup, received_at=received_at, correlation_id=correlation_id)
    else:
        result = adapter.parse(request, account, received_at=received_at, correlation_id=correlation_id)
    check_sizes(result.envelopes)
    for reason in result.skipped:
        logger.info("webhook item skipped", extra={"channel": adapter.channel, "account_id": account.id, "reason": reason})
    if result.envelopes:
        deps.publisher.publish(result.envelopes)
    metrics.add_metric(name="EventsAccepted", unit="Count", value=len(result.envelopes))
    logger.info("webhook accepted", extra={"channel": adapter.channel, "account_id": account.id, "events": len(result.envelopes)})
    return adapter.accepted(result)


@runtime_checkable
class SharedWebhook(Protocol):
    """A channel whose one webhook URL serves several of its accounts (interface section 2).

    Meta posts every page's (number's, Instagram account's) events of one app to the app's one
    callback URL, so a verified body may hold entries for the app's other accounts. Such an adapter
    names the account setting each entry is keyed by (``account_key``) and parses with a look-up
    from that key to the account (:func:`sibling_accounts`), recording each entry under its own.
    """

    account_key: ClassVar[str]

    def signing_key_name(self, account: Account) -> str: ...

    def parse_shared(
        self,
        request: WebhookRequest,
        account: Account,
        *,
        accounts: Callable[[str], Account | None],
        received_at: int,
        correlation_id: str,
    ) -> ParseResult: ...


def sibling_accounts(
    adapter: SharedWebhook, account: Account, secrets: Mapping[str, Any], deps: EdgeDeps
) -> Callable[[str], Account | None]:
    """The look-up from an entry's key to the account it is recorded under, for one verified body.

    Only an enabled account of the same channel whose signing secret (the app secret) equals the
    receiving account's: the body proved it came from that app, and from nothing else. The secrets
    are compared in constant time. Each key is looked up once per body; the receiving account's own
    entries never reach here. A sibling whose secret cannot be read is passed over (logged), as the
    entry then has no account; a store that does not answer is a 503, as for the account itself.
    """
    key_name = adapter.signing_key_name(account)
    ours = str(secrets.get(key_name) or "").encode("utf-8")
    channel = account.channel
    found: dict[str, Account | None] = {}

    def lookup(value: str) -> Account | None:
        if value not in found:
            found[value] = _sibling(channel, adapter.account_key, value, key_name, ours, account.id, deps)
        return found[value]

    return lookup


def _sibling(
    channel: str, setting: str, value: str, key_name: str, ours: bytes, receiving: str, deps: EdgeDeps
) -> Account | None:
    for candidate in deps.settings.accounts_with(channel, setting, value):
        if candidate.id == receiving or candidate.channel != channel or not candidate.enabled:
            continue
        name = secret_name(deps.secrets_prefix, "account", candidate.id, candidate.channel)
        try:
            theirs = deps.secrets.get(name).get(key_name)
        except SecretMissing:
            logger.warning("sibling account has no secret", extra={"channel": channel, "account_id": candidate.id})
            continue
        # A blank secret matches nothing: the receiving account's is never blank (checked before verify).
        if isinstance(theirs, str) and theirs.strip() and hmac.compare_digest(theirs.encode("utf-8"), ours):
            return candidate
    return None


def missing_secret(adapter: ChannelAdapter, account: Account, secrets: Mapping[str, Any]) -> str | None:
    """The name of the first secret this account needs that is absent or blank, else None.

    Checked here, once for every channel, because an adapter handed an empty key would compute an
    HMAC anyone can reproduce: a blank secret must refuse, never verify.
    """
    for key in adapter.secrets_for(account.options):
        value = secrets.get(key)
        if not isinstance(value, str) or not value.strip():
            return key
    return None


def check_sizes(envelopes: Sequence[Envelope]) -> None:
    """Refuse the whole request when one event would not fit where route stores it (nothing is enqueued).

    The customer id becomes part of DynamoDB keys (1,024 bytes at most for a sort key); no platform's
    id comes near :data:`MAX_CUSTOMER_ID_BYTES`, so a longer one is not the platform's body.
    """
    for index, envelope in enumerate(envelopes):
        if len(envelope.customer.id.encode("utf-8", "surrogatepass")) > MAX_CUSTOMER_ID_BYTES:
            raise BadRequest(f"event {index} names a customer id over {MAX_CUSTOMER_ID_BYTES} bytes")
        size = len(envelope.to_json().encode("utf-8"))
        if size > MAX_ENVELOPE_BYTES:
            raise PayloadTooLarge(f"event {index} is over {MAX_ENVELOPE_BYTES} bytes once normalised")


def _unverifiable(request: WebhookRequest) -> HttpError:
    """What a request answers when the account's secret is not set: what a wrong secret answers."""
    if request.method.upper() == "GET":  # Facebook's subscription handshake: as a wrong verify token
        return Forbidden("hub.verify_token does not match this account's verify token")
    return Unauthorized("the request's signature does not match this account")


def _refuse(adapter: ChannelAdapter, account_id: str, refused: HttpError, **detail: str) -> WebhookResponse:
    """The one log line (WARNING, ids shortened, no body or header) and the answer for a refused request."""
    logger.warning(
        "webhook refused",
        extra={
            "channel": adapter.channel,
            "account_id": shown_id(account_id),
            "status": refused.status,
            "error": refused.code,
            **detail,
        },
    )
    metrics.add_metric(name="WebhookRefused", unit="Count", value=1)
    return refused.response()
