"""The ``token_validate`` core: start a web chat, and sign in the customer of any conversation.

``POST /chat/{widget_id}/conversations`` (interface section 2, "Chat start"): the widget's auth
setting decides what proves the visitor's identity (an RS256 JWT from the portal, or an OAuth 2.0
authorization code); a widget without one, or with ``allow_anonymous``, lets a visitor with no
credential in unauthenticated. The conversation id is chosen here and answered at once, and one
envelope carrying it goes through the same pipeline as every channel (route opens the conversation
under that id, crm_writer writes it).

``GET /auth/{auth_setting_id}/callback?code&state``: the end of an authentication link
(``switchboard auth-link``). ``state`` is an HMAC over the conversation id (see
:mod:`switchboard.chat_auth.state`), so it cannot be forged or moved to another conversation; the
conversation must still be open. A link signs in once: its use is recorded (a conditional put, see
:class:`switchboard.ports.UsedLinks`) after the state and the conversation are checked and before
the code is spent, so a replayed link, or a link raced from two tabs, cannot re-bind the
conversation to whoever signs in last. If the exchange then fails the link stays spent (the page
says to ask for a new one): re-opening it is the one thing a replay would need. A sign-in envelope
for that conversation then travels the customer's own FIFO group, route takes the new identity in
and re-routes on it. The page names the conversation (channel, start, id), so a customer lured to
someone else's link can see it is not theirs.

A sign-in is stored as a message of kind ``event`` (``data.event == "signed_in"``), like LINE's
follow events: it is something the customer did, the conversation's history should show when the
identity changed, and the crm stage writes it like any other event. No token, code or secret ever
goes into an envelope, a log line or a response.

Order, as at the other edges: size, widget or setting (404: an id outside the configuration's id
pattern is refused before any look-up), body (400), credentials (401), and only then one publish;
any refusal enqueues nothing. Bodies and tokens are parsed by :mod:`switchboard.safe_json`, so no
nesting can turn a refusal into a crash, and ids from the path reach logs and errors cut to
:data:`MAX_SHOWN_ID_CHARS`.
"""

from __future__ import annotations

import hashlib
import html
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from switchboard import channels, chat_cors
from switchboard.chat_auth import (
    AuthSettingError,
    ChatAuthError,
    KeyFetchError,
    KeyStore,
    bearer_token,
    exchange_code,
    validate_jwt,
)
from switchboard.chat_auth.errors import CODE_EXCHANGE_FAILED, INVALID_TOKEN, MISSING_TOKEN
from switchboard.chat_auth.oauth import MAX_CODE_CHARS
from switchboard.chat_auth.state import check as check_state
from switchboard.chat_records import ChatSession, new_token
from switchboard.conversations import Conversation, new_conversation_id
from switchboard.envelope import Customer, Envelope, Identity
from switchboard.errors import BadRequest, HttpError, NotFound, PayloadTooLarge, SecretMissing, StoreUnavailable
from switchboard.observability import logger, metrics
from switchboard.ports import ChatSessionOpener, ConversationReader, Publisher, SecretReader, SettingsReader, UsedLinks
from switchboard.safe_json import JsonError
from switchboard.safe_json import loads as safe_loads
from switchboard.secret_names import secret_name
from switchboard.settings import AuthSetting, Widget, is_valid_id
from switchboard.web import WebhookRequest, WebhookResponse

MAX_CHAT_BODY_BYTES: Final = 64 * 1024  # a first message and a pre-chat survey, not an upload
MAX_TEXT_CHARS: Final = 10_000
MAX_CUSTOMER_FIELD_CHARS: Final = 320  # the longest e-mail address RFC 5321 allows
MAX_SHOWN_ID_CHARS: Final = 64  # a path id in a log line or an error: the longest valid id, never a 10 KB one
# Registered token claims say how the provider issued the answer, not who the customer is.
_NOT_CONTEXT: Final = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
_LINK_USED: Final = "This sign-in link was already used; ask for a new one."
_LINK_SPENT: Final = "This sign-in link cannot be used again; ask for a new one."


@dataclass
class ChatDeps:
    settings: SettingsReader
    secrets: SecretReader
    publisher: Publisher  # the inbound FIFO queue, grouped by conversation key like every edge
    conversations: ConversationReader  # read only: route alone writes conversations
    links: UsedLinks  # the sign-in links already used (the one write this function makes)
    keys: KeyStore  # one per container, so warm invocations reuse fetched keys
    secrets_prefix: str
    allow_http: bool = False  # the local stack's key servers and IdPs listen on http://127.0.0.1
    clock: Callable[[], float] = field(default=time.time)
    # Where a new chat's session is recorded (interface section 7); a chat start without it cannot answer a session.
    sessions: ChatSessionOpener | None = None


class ConfigurationFault(Exception):
    """The stack or the setting is incomplete (a missing secret, a half-written setting): not the caller's fault."""


class _SpentLinkUnavailable(StoreUnavailable):
    """The queue refused after the link's use was recorded: a retry of the same link would be refused."""


# -- the entry point ---------------------------------------------------------------------------------


def handle(request: WebhookRequest, deps: ChatDeps) -> WebhookResponse:
    """Both routes of the function; API Gateway's path parameters say which one was called."""
    correlation_id = request.request_id or uuid.uuid4().hex
    logger.set_correlation_id(correlation_id)
    if "auth_setting_id" in request.path_params:
        return callback(request, deps, correlation_id)
    return start(request, deps, correlation_id)


# -- POST /chat/{widget_id}/conversations ----------------------------------------------------------------


@dataclass(frozen=True)
class _ChatBody:
    code: str | None = None
    text: str | None = None
    name: str | None = None
    email: str | None = None


def start(request: WebhookRequest, deps: ChatDeps, correlation_id: str = "") -> WebhookResponse:
    widget_id = request.path_params.get("widget_id", "")
    shown = _shown(widget_id)
    cors: dict[str, str] = {}  # filled once the page's origin is allowed: every answer after that carries it
    try:
        return _start(request, deps, widget_id, correlation_id or uuid.uuid4().hex, cors).with_headers(cors)
    except ChatAuthError as refused:
        _log_refusal("chat start refused", refused, widget_id=shown)
        return WebhookResponse.json(refused.http_status, refused.to_body()).with_headers(cors)
    except HttpError as refused:
        logger.warning("chat start refused", extra={"widget_id": shown, "status": refused.status, "error": refused.code})
        metrics.add_metric(name="ChatRefused", unit="Count", value=1)
        return refused.response().with_headers(cors)
    except (AuthSettingError, ConfigurationFault) as exc:
        logger.error("chat start misconfigured", extra={"widget_id": shown, "reason": str(exc)})
        metrics.add_metric(name="ChatFailed", unit="Count", value=1)
        answer = WebhookResponse.json(500, {"error": "configuration_error", "message": "this chat is not fully configured"})
        return answer.with_headers(cors)
    except StoreUnavailable as exc:
        logger.error("chat start not enqueued", extra={"widget_id": shown, "reason": str(exc)})
        metrics.add_metric(name="ChatFailed", unit="Count", value=1)
        return WebhookResponse.json(503, {"error": "unavailable", "message": "not accepted, please try again"}).with_headers(cors)


def _start(request: WebhookRequest, deps: ChatDeps, widget_id: str, correlation_id: str, cors: dict[str, str]) -> WebhookResponse:
    if len(request.body) > MAX_CHAT_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_CHAT_BODY_BYTES} bytes")
    # An id no configuration can hold is unknown without asking: no look-up, no cache entry, no key error.
    widget = deps.settings.widget(widget_id) if is_valid_id(widget_id) else None
    if widget is None or not widget.enabled:
        raise NotFound(f"no chat widget {_shown(widget_id)!r}")
    cors.update(chat_cors.allowed(widget, request))  # a page not allowed is refused before anything is checked
    setting = _auth_setting(widget, deps)
    body = _parse_chat_body(request.body)
    now = deps.clock()
    identity, customer_name, customer_email = _authenticate(widget, setting, request, body, deps, now)

    now_ms = int(now * 1000)
    conversation_id = new_conversation_id(now_ms)
    customer = Customer(id=_visitor_id(), name=customer_name, email=customer_email)
    envelope = Envelope(
        id=f"chat:{widget.id}:{conversation_id}:start",
        channel=channels.WEB_CHAT,
        account_id=widget.id,
        customer=customer,
        kind="text" if body.text else "event",
        text=body.text,
        sent_at=now_ms,
        received_at=now_ms,
        correlation_id=correlation_id,
        data={"event": "chat_started", "auth": setting.type if identity.authenticated and setting else "anonymous"},
        identity=identity,
        conversation_id=conversation_id,
    )
    session_token, session_expires_at = _open_session(deps, widget, conversation_id, customer, identity, now)
    deps.publisher.publish([envelope])
    metrics.add_metric(name="ChatStarted", unit="Count", value=1)
    logger.info(
        "chat started",
        extra={"widget_id": widget.id, "conversation_id": conversation_id, "authenticated": identity.authenticated},
    )
    return WebhookResponse.json(
        201,
        {
            "conversation_id": conversation_id,
            "authenticated": identity.authenticated,
            "contact_id": identity.contact_id,
            "context": identity.context,
            "expires_at": identity.expires_at,
            "session_token": session_token,
            "session_expires_at": session_expires_at,
        },
    )


def _open_session(
    deps: ChatDeps, widget: Widget, conversation_id: str, customer: Customer, identity: Identity, now: float
) -> tuple[str, int]:
    """Record the visitor's session before the chat is enqueued: the visitor's next call must find it.

    Only the token's digest is stored; the token is answered once, here. A publish that fails after
    this leaves a session for a conversation that never opens, which expires unused.
    """
    if deps.sessions is None:
        raise ConfigurationFault("the chat start has no session store")
    token, digest = new_token()
    expires_at = int(now) + widget.session_minutes * 60
    deps.sessions.open_session(
        ChatSession(
            conversation_id=conversation_id,
            widget_id=widget.id,
            customer=customer,
            token_digest=digest,
            created_at=int(now),
            expires_at=expires_at,
            authenticated=identity.authenticated,
        )
    )
    return token, expires_at


def _auth_setting(widget: Widget, deps: ChatDeps) -> AuthSetting | None:
    if not widget.auth_setting:
        return None
    setting = deps.settings.auth_setting(widget.auth_setting)
    if setting is None:
        raise ConfigurationFault(f"widget {widget.id!r} names auth setting {widget.auth_setting!r}, which is not stored")
    return setting


def _authenticate(
    widget: Widget, setting: AuthSetting | None, request: WebhookRequest, body: _ChatBody, deps: ChatDeps, now: float
) -> tuple[Identity, str | None, str | None]:
    """The visitor's identity, and the name and e-mail to show for them.

    A credential that is sent is always checked, even where anonymous visitors are welcome: a bad
    token must be told, not quietly turned into an anonymous chat.
    """
    token = bearer_token(request.header("authorization"))
    if setting is None:
        if token is not None or body.code is not None:
            raise BadRequest(f"widget {widget.id!r} has no auth setting, so it cannot accept a sign-in; send no credential")
        return Identity(), body.name, body.email

    if setting.type not in ("jwt", "oauth2"):
        raise AuthSettingError(f"auth setting {setting.id!r} has unknown type {setting.type!r}")
    credential = token if setting.type == "jwt" else body.code
    if credential is None:
        if widget.allow_anonymous:
            return Identity(), body.name, body.email
        what = "a Bearer token (the portal's JWT)" if setting.type == "jwt" else "an authorization code in the body's code"
        raise ChatAuthError(MISSING_TOKEN, f"This chat needs a signed-in customer: send {what}.")

    # For a signed-in visitor the identity comes only from the provider; a pre-chat survey is ignored.
    if setting.type == "jwt":
        validated = validate_jwt(credential, setting, deps.keys, now=now)
        return (
            Identity(authenticated=True, contact_id=validated.sub, context=validated.context, expires_at=validated.exp),
            None,
            None,
        )
    identity, claims = _oauth_identity(credential, setting, deps, now)
    return identity, _claim_text(claims, "name"), _claim_text(claims, "email")


def _oauth_identity(
    code: str, setting: AuthSetting, deps: ChatDeps, now: float, *, client_secret: str | None = None
) -> tuple[Identity, Mapping[str, Any]]:
    client_secret = client_secret if client_secret is not None else _client_secret(setting, deps)
    signed_in = exchange_code(code, setting, client_secret, now=now, allow_http=deps.allow_http)
    context = {k: v for k, v in signed_in.claims.items() if k not in _NOT_CONTEXT}
    identity = Identity(authenticated=True, contact_id=signed_in.user_id, context=context, expires_at=signed_in.expires_at)
    return identity, signed_in.claims


def _client_secret(setting: AuthSetting, deps: ChatDeps) -> str:
    name = secret_name(deps.secrets_prefix, "auth_setting", setting.id)
    try:
        value = deps.secrets.get(name).get("client_secret")
    except SecretMissing as exc:
        raise ConfigurationFault(exc.message) from None
    if not isinstance(value, str) or not value:
        raise ConfigurationFault(f"secret {name} has no client_secret: apply the auth setting with secrets.client_secret")
    return value


def _claim_text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value[:MAX_CUSTOMER_FIELD_CHARS] if isinstance(value, str) and value.strip() else None


def _visitor_id() -> str:
    """The chat's customer id: per conversation, because an anonymous visitor has no other."""
    return "visitor-" + secrets.token_hex(12)


def _parse_chat_body(raw: bytes) -> _ChatBody:
    if not raw.strip():
        return _ChatBody()
    try:
        doc = safe_loads(raw)
    except JsonError as exc:  # malformed, or nested past what a chat start could ever need
        raise BadRequest(f"the body is not usable JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    code = _optional_text(doc, "code", 4096)
    text = _optional_text(doc, "text", MAX_TEXT_CHARS)
    customer = doc.get("customer")
    name = email = None
    if customer is not None:
        if not isinstance(customer, dict):
            raise BadRequest("customer must be an object with name and email")
        name = _optional_text(customer, "name", MAX_CUSTOMER_FIELD_CHARS, where="customer.")
        email = _optional_text(customer, "email", MAX_CUSTOMER_FIELD_CHARS, where="customer.")
    return _ChatBody(code=code, text=text, name=name, email=email)


def _optional_text(doc: Mapping[str, Any], key: str, limit: int, *, where: str = "") -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{where}{key} must be a string")
    if len(value) > limit:
        raise BadRequest(f"{where}{key} is longer than {limit} characters")
    return value.strip() or None


# -- GET /auth/{auth_setting_id}/callback ----------------------------------------------------------------


def callback(request: WebhookRequest, deps: ChatDeps, correlation_id: str = "") -> WebhookResponse:
    setting_id = request.path_params.get("auth_setting_id", "")
    shown = _shown(setting_id)
    as_json = _wants_json(request)
    try:
        conversation = _callback(request, deps, setting_id, correlation_id or uuid.uuid4().hex)
    except ChatAuthError as refused:
        _log_refusal("sign-in refused", refused, auth_setting_id=shown)
        return _page(refused.http_status, "Sign-in failed", _callback_advice(refused), refused.code, as_json)
    except HttpError as refused:
        logger.warning("sign-in refused", extra={"auth_setting_id": shown, "status": refused.status, "error": refused.code})
        metrics.add_metric(name="SignInRefused", unit="Count", value=1)
        return _page(refused.status, "Sign-in failed", refused.message, refused.code, as_json)
    except (AuthSettingError, ConfigurationFault) as exc:
        logger.error("sign-in misconfigured", extra={"auth_setting_id": shown, "reason": str(exc)})
        metrics.add_metric(name="SignInFailed", unit="Count", value=1)
        return _page(500, "Sign-in is not available", "Sign-in is not fully set up here yet.", "configuration_error", as_json)
    except StoreUnavailable as exc:
        logger.error("sign-in not enqueued", extra={"auth_setting_id": shown, "reason": str(exc)})
        metrics.add_metric(name="SignInFailed", unit="Count", value=1)
        advice = f"Sign-in could not be completed. {_LINK_SPENT}" if isinstance(exc, _SpentLinkUnavailable) else None
        return _page(503, "Sign-in is not available", advice or "Please try again in a moment.", "unavailable", as_json)
    return _page(200, "You are signed in", _signed_in_text(conversation), None, as_json, conversation)


def _callback(request: WebhookRequest, deps: ChatDeps, setting_id: str, correlation_id: str) -> Conversation:
    setting = deps.settings.auth_setting(setting_id) if is_valid_id(setting_id) else None
    if setting is None or setting.type != "oauth2":
        raise NotFound(f"no OAuth 2.0 auth setting {_shown(setting_id)!r}")
    code, state, provider_error = request.query.get("code"), request.query.get("state"), request.query.get("error")
    if provider_error and not code:  # RFC 6749 4.1.2.1: the customer declined, or the provider refused
        shown = provider_error if provider_error.isascii() and provider_error.replace("_", "").isalnum() else "error"
        raise ChatAuthError(CODE_EXCHANGE_FAILED, f"The identity provider did not sign you in ({shown[:40]}).")
    if not code or not code.strip() or not state:
        raise BadRequest("the sign-in link needs both code and state")

    now = deps.clock()
    link = check_state(state, setting.id, _state_key(deps), now=now)
    conversation = deps.conversations.get(link.conversation_id)
    if conversation is None or conversation.status(int(now * 1000)) != "open":
        # Checked before the code is spent: a dead conversation must not cost the customer a sign-in.
        raise ChatAuthError(INVALID_TOKEN, "The conversation this sign-in link belongs to has ended; ask for a new link.")
    if len(code) > MAX_CODE_CHARS:  # what the exchange would refuse unsent: refused before the link is spent
        raise ChatAuthError(CODE_EXCHANGE_FAILED, "The authorization code is implausibly long.")
    client_secret = _client_secret(setting, deps)  # a configuration fault must not cost the customer the link

    # The point of no return: from here the link is spent, whatever happens to the exchange.
    if not deps.links.mark_used(link.link_id, expires_at=link.expires_at):
        raise ChatAuthError(INVALID_TOKEN, _LINK_USED)
    try:
        identity, _ = _oauth_identity(code, setting, deps, now, client_secret=client_secret)
    except ChatAuthError as refused:
        raise ChatAuthError(refused.code, f"{refused.message} {_LINK_SPENT}") from None
    try:
        deps.publisher.publish([_sign_in_envelope(conversation, setting, identity, code, now, correlation_id)])
    except StoreUnavailable as exc:
        raise _SpentLinkUnavailable(str(exc)) from exc
    metrics.add_metric(name="SignedIn", unit="Count", value=1)
    logger.info(
        "customer signed in",
        extra={"auth_setting_id": setting.id, "conversation_id": conversation.conversation_id, "channel": conversation.channel},
    )
    return conversation


def _sign_in_envelope(
    conversation: Conversation, setting: AuthSetting, identity: Identity, code: str, now: float, correlation_id: str
) -> Envelope:
    # One id per code: a double-submitted callback (a reload within SQS's dedupe window) is stored
    # once. The digest is over the code, which never leaves this function itself.
    digest = hashlib.sha256(f"{setting.id}\x00{code}".encode()).hexdigest()[:32]
    now_ms = int(now * 1000)
    return Envelope(
        id=f"{conversation.channel}:{conversation.account_id}:signin:{digest}",
        channel=conversation.channel,
        account_id=conversation.account_id,
        customer=conversation.customer,
        kind="event",
        sent_at=now_ms,
        received_at=now_ms,
        correlation_id=correlation_id,
        data={"event": "signed_in", "auth_setting": setting.id},
        identity=identity,
        conversation_id=conversation.conversation_id,
    )


def _state_key(deps: ChatDeps) -> bytes:
    from switchboard.chat_auth.state import SECRET_ID, decode_key

    name = secret_name(deps.secrets_prefix, "stack", SECRET_ID)
    try:
        return decode_key(deps.secrets.get(name))
    except SecretMissing as exc:
        raise ConfigurationFault(f"{exc.message}: run `switchboard apply` to create it") from None
    except ValueError as exc:
        raise ConfigurationFault(f"secret {name}: {exc}") from None


def _callback_advice(refused: ChatAuthError) -> str:
    if refused.code == "token_expired":
        return "This sign-in link has expired. Ask for a new one in your conversation."
    return refused.message


def _signed_in_text(conversation: Conversation) -> str:
    """Which conversation the customer just signed in to: a link someone else sent names theirs, not yours."""
    channel = _channel_label(conversation.channel)
    return (
        f"You are signed in to your {channel} conversation that started {_started(conversation)} "
        f"(reference {conversation.conversation_id}). You can close this page and go back to it."
    )


def _channel_label(channel: str) -> str:
    """How the customer knows the channel ("LINE", "Facebook Messenger"), as the channel declares it."""
    try:
        return channels.info(channel).label
    except KeyError:  # channels.UnknownChannel: a conversation of a channel since removed
        return channel


def _started(conversation: Conversation) -> str:
    return datetime.fromtimestamp(conversation.created_at / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- shared ------------------------------------------------------------------------------------------------


def _shown(value: str) -> str:
    """A path id as logs and errors may show it: whole when it could be valid, else cut short."""
    return value if len(value) <= MAX_SHOWN_ID_CHARS else value[:MAX_SHOWN_ID_CHARS] + "..."


def _log_refusal(what: str, refused: ChatAuthError, **where: str) -> None:
    """A refused credential is the caller's problem (warning); an unreadable key endpoint is the portal's (error)."""
    extra = {**where, "status": refused.http_status, "error": refused.code, "reason": refused.message}
    if isinstance(refused, KeyFetchError):
        logger.error(f"{what}: public key endpoint unusable", extra=extra)
    else:
        logger.warning(what, extra=extra)
    metrics.add_metric(name="ChatAuthRefused", unit="Count", value=1)


def _wants_json(request: WebhookRequest) -> bool:
    """A browser gets a page; a script that asks for JSON gets the interface's JSON error body."""
    accept = (request.header("accept") or "").lower()
    return "application/json" in accept and "text/html" not in accept


_PAGE: Final = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">'
    "<title>{title}</title></head>\n<body><h1>{title}</h1>\n<p>{message}</p>{detail}</body></html>\n"
)


def _page(
    status: int, title: str, message: str, error: str | None, as_json: bool, conversation: Conversation | None = None
) -> WebhookResponse:
    """The answer to a browser (every text escaped) or to a script that asked for JSON."""
    if as_json:
        if error is None and conversation is not None:
            return WebhookResponse.json(
                status,
                {
                    "signed_in": True,
                    "conversation_id": conversation.conversation_id,
                    "channel": conversation.channel,
                    "started_at": conversation.created_at // 1000,
                },
            )
        return WebhookResponse.json(status, {"error": error or "error", "message": message})
    detail = f'\n<p><small>Error code: <code id="error">{html.escape(error)}</code></small></p>' if error else ""
    body = _PAGE.format(title=html.escape(title), message=html.escape(message), detail=detail)
    return WebhookResponse(status, body, "text/html; charset=utf-8")
