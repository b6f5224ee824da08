"""The ``chat`` function's core: a web chat visitor's session after the chat start (interface section 7).

Routes (``{w}`` = widget id, ``{c}`` = conversation id; every JSON error is
``{"error": code, "message": text}``):

- ``GET /chat/{w}/config`` -> 200, for the widget script::

      {"widget_id": str, "auth": "jwt" | "anonymous", "client_function": str | null,
       "allow_anonymous": bool, "ask_contact": bool, "session_minutes": int}

  ``auth`` is ``"jwt"`` when the widget's auth setting is a JWT one: the widget then calls the page
  function ``client_function`` (a dotted path on ``window``) for the token and sends it as
  ``Authorization: Bearer`` to the chat start. Otherwise ``"anonymous"`` and ``client_function`` is
  null (an OAuth 2.0 widget starts anonymously, where ``allow_anonymous``; its visitor signs in later by
  a link). ``allow_anonymous``: a jwt widget may still start without a token when the page has none.
  ``ask_contact``: ask an anonymous visitor for an optional name and e-mail (sent to the chat start as
  ``{"customer": {"name", "email"}}``). Cached for a minute.
- ``GET /chat/{w}/widget.js`` -> the widget script (``application/javascript``), cached five minutes.
- ``POST /chat/{w}/conversations/{c}/messages`` ``{"client_message_id": str (1..128), "text": str}`` ->
  202 ``{"id", "client_message_id"}``; the same ``client_message_id`` again -> 202 again, stored once.
  400 ``bad_request``, 409 ``conversation_closed``, 413 ``payload_too_large`` (over 64 KiB).
- ``GET /chat/{w}/conversations/{c}/messages?after=<cursor>&wait=<0..20>`` -> 200
  ``{"messages": [{"id", "direction": "in"|"out", "text", "kind", "author", "sent_at",
  "client_message_id", "event"}], "cursor", "status": "open"|"closed", "authenticated"}``. ``sent_at`` is ISO 8601
  UTC; ``client_message_id`` is the visitor's own id on their messages (null otherwise), ``event`` the
  event a row is or opens (``chat_started`` on the start, with its first text if any; ``chat_ended``; null
  for an ordinary message). Without ``after``: from the
  start. Pass the answer's ``cursor`` as the next ``after``. With ``wait`` the answer waits until
  there is something after the cursor, the status changes, or ``wait`` seconds pass (then
  ``messages`` is empty and ``cursor`` unchanged).
- ``POST /chat/{w}/conversations/{c}/end`` -> 200 ``{"status": "closed"}`` (again on a repeat).
- ``OPTIONS`` on each of them -> 204 (CORS preflight, :mod:`switchboard.chat_cors`).

The session routes need ``Authorization: Bearer <session_token>`` (from the chat start's 201): 401
``invalid_session`` for a missing, wrong, forged or other conversation's token, 401
``session_expired`` after ``session_expires_at``. A visitor's message is stored by the route stage
after the 202, so it appears in the transcript once stored (usually well under a second).

Order of checks: the widget (404), the page's origin (403 ``origin_not_allowed``), the size (413),
the session (401), the body or query (400), the conversation's state (409); any refusal enqueues
nothing. Errors past the origin check carry the CORS headers, so the widget can read their code.

**Ending** (``POST .../end``) is two steps, and why: the session item records ``ended_at`` by a
conditional write on the session's own item (the one write this function makes), which refuses
every later message at once and needs no write to the conversation the route stage owns; then a
``chat_ended`` event (``data.ends_conversation``) goes through the inbound queue like any message, in
the visitor's FIFO group, so the route stage closes the conversation after every message sent
before it, stores the event in the transcript and the crm stage writes it to the ticket. A
conditional update of the conversation from here would race the route stage's own writes of
messages still in the queue (its write would reopen it). A repeated end publishes the same event id
again, which SQS and the route stage each store once, so an end whose publish failed is completed
by the widget's retry.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from switchboard import channels, chat_cors
from switchboard.chat_records import BadCursor, ChatCursor, ChatSession, ChatView, token_digest
from switchboard.conversations import OutMessage
from switchboard.envelope import Envelope, Identity
from switchboard.errors import BadRequest, HttpError, NotFound, PayloadTooLarge, StoreUnavailable, Unauthorized
from switchboard.observability import logger, metrics
from switchboard.ports import ChatSessions, Publisher, SettingsReader
from switchboard.safe_json import JsonError
from switchboard.safe_json import loads as safe_loads
from switchboard.settings import DEFAULT_CLIENT_FUNCTION, Widget, is_valid_id
from switchboard.web import WebhookRequest, WebhookResponse

CHANNEL: Final = channels.WEB_CHAT
MAX_BODY_BYTES: Final = 64 * 1024
MAX_TEXT_CHARS: Final = 10_000  # as the chat start's first message
MAX_CLIENT_ID_CHARS: Final = 128
MAX_WAIT_SECONDS: Final = 20  # a long poll answers inside API Gateway's 29 s
POLL_INTERVAL_SECONDS: Final = 0.25
CHAT_ENDED: Final = "chat_ended"
SESSION_METHODS: Final = "GET, POST, OPTIONS"
_CONVERSATION_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CLIENT_ID: Final = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: a uuid, a counter, a nanoid
_WAIT: Final = re.compile(r"^[0-9]{1,2}$")  # ASCII digits only: str.isdigit takes fullwidth and other digits
_NO_DIGEST: Final = "0" * 64  # compared against when there is no session, so both paths do the same work
SCRIPT_CACHE: Final = "public, max-age=300"
CONFIG_CACHE: Final = "public, max-age=60"


class ConversationClosed(HttpError):
    status = 409
    code = "conversation_closed"


class InvalidSession(Unauthorized):
    code = "invalid_session"


class SessionExpired(Unauthorized):
    code = "session_expired"


@dataclass
class SessionDeps:
    settings: SettingsReader
    sessions: ChatSessions
    publisher: Publisher  # the inbound FIFO queue, grouped by conversation key like every edge
    widget_script: Callable[[], str | None]  # the widget's JavaScript; None when the package lacks it
    clock: Callable[[], float] = field(default=time.time)
    sleep: Callable[[float], None] = field(default=time.sleep)
    poll_interval: float = POLL_INTERVAL_SECONDS


# -- the entry point -------------------------------------------------------------------------------------


def handle(request: WebhookRequest, deps: SessionDeps) -> WebhookResponse:
    logger.set_correlation_id(request.request_id or uuid.uuid4().hex)
    widget_id = request.path_params.get("widget_id", "")
    cors: Mapping[str, str] = {}
    try:
        widget = deps.settings.widget(widget_id) if is_valid_id(widget_id) else None
        if widget is None or not widget.enabled:
            raise NotFound(f"no chat widget {widget_id!r}" if is_valid_id(widget_id) else "no such chat widget")
        cors = chat_cors.allowed(widget, request)
        return _route(request, deps, widget).with_headers(cors)
    except HttpError as refused:
        logger.warning(
            "chat request refused", extra={"widget_id": widget_id[:64], "status": refused.status, "error": refused.code}
        )
        metrics.add_metric(name="ChatSessionRefused", unit="Count", value=1)
        return refused.response().with_headers(cors)
    except StoreUnavailable as exc:
        logger.error("chat request not served", extra={"widget_id": widget_id[:64], "reason": str(exc)})
        metrics.add_metric(name="ChatSessionFailed", unit="Count", value=1)
        return WebhookResponse.json(503, {"error": "unavailable", "message": "not accepted, please try again"}).with_headers(cors)


def _route(request: WebhookRequest, deps: SessionDeps, widget: Widget) -> WebhookResponse:
    tail = request.path.rstrip("/").rsplit("/", 1)[-1]
    method = request.method.upper()
    conversation_id = request.path_params.get("conversation_id")
    if conversation_id is None:
        if tail == "widget.js" and method == "GET":
            return _script(deps)
        if tail == "config" and method == "GET":
            return _config(widget, deps)
        if method == "OPTIONS":  # the chat start's preflight, and the config's
            return chat_cors.preflight(widget, request, "GET, POST, OPTIONS")
        raise NotFound("no such chat route")
    if method == "OPTIONS":
        return chat_cors.preflight(widget, request, SESSION_METHODS)
    if tail == "messages" and method == "POST":
        return _send(request, deps, widget, conversation_id)
    if tail == "messages" and method == "GET":
        return _read(request, deps, widget, conversation_id)
    if tail == "end" and method == "POST":
        return _end(request, deps, widget, conversation_id)
    raise NotFound("no such chat route")


# -- the session -------------------------------------------------------------------------------------------


def _bearer(request: WebhookRequest) -> str | None:
    value = (request.header("authorization") or "").strip()
    scheme, _, token = value.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authorise(request: WebhookRequest, deps: SessionDeps, widget: Widget, conversation_id: str) -> ChatSession:
    """The visitor's session on this conversation, or 401.

    The token is compared as its SHA-256 digest, in constant time (``hmac.compare_digest``), against
    the digest stored for *this* conversation: a token of another conversation, of another widget
    or made up never matches, and an empty one is refused before anything is read. Expiry is told
    only to the holder of the right token; anyone else learns nothing but ``invalid_session``.
    """
    token = _bearer(request)
    if token is None or not _CONVERSATION_ID.fullmatch(conversation_id):
        raise InvalidSession("send this chat's session token as Authorization: Bearer <session_token>")
    session = deps.sessions.session(conversation_id)
    stored = session.token_digest if session is not None else _NO_DIGEST
    matches = hmac.compare_digest(token_digest(token).encode("ascii"), stored.encode("ascii", "replace"))
    if session is None or not matches or session.widget_id != widget.id:
        raise InvalidSession("the session token is not valid for this conversation")
    if deps.clock() >= session.expires_at:
        raise SessionExpired("the chat session has expired; start a new chat")
    return session


# -- POST .../messages -----------------------------------------------------------------------------------------


def _send(request: WebhookRequest, deps: SessionDeps, widget: Widget, conversation_id: str) -> WebhookResponse:
    if len(request.body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    session = authorise(request, deps, widget, conversation_id)
    client_message_id, text = _message_body(request.body)
    now = deps.clock()
    _check_open(session, deps, now)
    now_ms = int(now * 1000)
    # The id derives from the visitor's own id alone: a retried send is the same envelope, which the inbound
    # queue drops within five minutes and the route stage's conditional message write stores once after that.
    envelope = Envelope(
        id=f"{CHANNEL}:{widget.id}:{conversation_id}:m:{token_digest(client_message_id)[:32]}",
        channel=CHANNEL,
        account_id=widget.id,
        customer=session.customer,
        kind="text",
        text=text,
        sent_at=now_ms,
        received_at=now_ms,
        correlation_id=request.request_id or uuid.uuid4().hex,
        data={"client_message_id": client_message_id},
        identity=Identity(),  # the conversation keeps what the chat start proved; nothing new is claimed
        conversation_id=conversation_id,
    )
    deps.publisher.publish([envelope])
    metrics.add_metric(name="ChatMessageAccepted", unit="Count", value=1)
    return WebhookResponse.json(202, {"id": envelope.id, "client_message_id": client_message_id})


def _message_body(raw: bytes) -> tuple[str, str]:
    try:
        doc = safe_loads(raw)
    except JsonError as exc:
        raise BadRequest(f"the body is not usable JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest('the body must be a JSON object {"client_message_id": ..., "text": ...}')
    client_message_id, text = doc.get("client_message_id"), doc.get("text")
    if not isinstance(client_message_id, str) or not _CLIENT_ID.fullmatch(client_message_id):
        raise BadRequest(f"client_message_id must be 1 to {MAX_CLIENT_ID_CHARS} printable ASCII characters without spaces")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("text must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise BadRequest(f"text is longer than {MAX_TEXT_CHARS} characters")
    return client_message_id, text


def _check_open(session: ChatSession, deps: SessionDeps, now: float) -> None:
    if session.ended_at is not None:
        raise ConversationClosed("this chat has ended; start a new chat")
    conversation = deps.sessions.conversation(session.conversation_id)
    if conversation is not None and conversation.status(int(now * 1000)) == "closed":
        raise ConversationClosed("this chat was closed; start a new chat")


# -- GET .../messages ----------------------------------------------------------------------------------------


def _read(request: WebhookRequest, deps: SessionDeps, widget: Widget, conversation_id: str) -> WebhookResponse:
    session = authorise(request, deps, widget, conversation_id)
    after = request.query.get("after")
    try:
        cursor = ChatCursor.decode(after) if after else ChatCursor()
    except BadCursor as exc:
        raise BadRequest(str(exc)) from None
    wait = _wait_seconds(request.query.get("wait"))
    start = deps.clock()
    view = deps.sessions.chat_view(conversation_id, cursor)
    status = _status(session, view, start)
    while not (view.received or view.replies) and deps.clock() - start + deps.poll_interval <= wait:
        deps.sleep(deps.poll_interval)
        view = deps.sessions.chat_view(conversation_id, cursor)
        if _status(session, view, deps.clock()) != status:
            break
    now = deps.clock()
    rows, cursor = _rows(view, cursor)
    return WebhookResponse.json(
        200,
        {
            "messages": rows,
            "cursor": cursor.encode(),
            "status": _status(session, view, now),
            "authenticated": _authenticated(session, view, now),
        },
    )


def _wait_seconds(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not _WAIT.fullmatch(raw) or int(raw) > MAX_WAIT_SECONDS:
        raise BadRequest(f"wait must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}")
    return int(raw)


def _status(session: ChatSession, view: ChatView, now: float) -> str:
    if session.ended_at is not None:
        return "closed"
    if view.conversation is None:
        return "open"  # the route stage has not stored it yet
    return view.conversation.status(int(now * 1000))


def _authenticated(session: ChatSession, view: ChatView, now: float) -> bool:
    if view.conversation is None:
        return session.authenticated
    return view.conversation.authenticated(int(now * 1000))


def _rows(view: ChatView, cursor: ChatCursor) -> tuple[list[dict[str, Any]], ChatCursor]:
    """Both directions in the order they were written (as :func:`switchboard.conversations.transcript` orders
    them), and the cursor past all of it."""
    rows: list[dict[str, Any]] = []
    replies = sorted(view.replies, key=lambda r: (r.created_at, r.id))
    i = 0
    for _, envelope in view.received:
        while i < len(replies) and replies[i].created_at < envelope.received_at:
            rows.append(_reply_row(replies[i]))
            i += 1
        rows.append(_message_row(envelope))
    rows.extend(_reply_row(r) for r in replies[i:])
    seq = max([cursor.seq, *(s for s, _ in view.received)])
    last = max([cursor.reply, *((r.sent_at or 0, r.id) for r in view.replies)])
    return rows, ChatCursor(seq=seq, reply=last)


def _message_row(envelope: Envelope) -> dict[str, Any]:
    client_id = envelope.data.get("client_message_id")
    event = envelope.data.get("event")  # also on a text: the chat start's first message is the chat_started event
    return {
        "id": envelope.id,
        "direction": "in",
        "text": envelope.text,
        "kind": envelope.kind,
        "author": envelope.customer.name,
        "sent_at": _iso(envelope.sent_at),
        "client_message_id": client_id if isinstance(client_id, str) else None,
        "event": event if isinstance(event, str) else None,
    }


def _reply_row(reply: OutMessage) -> dict[str, Any]:
    return {
        "id": reply.id,
        "direction": "out",
        "text": reply.text,
        "kind": "text",
        "author": reply.author,
        "sent_at": _iso(reply.sent_at if reply.sent_at is not None else reply.created_at),
        "client_message_id": None,
        "event": None,
    }


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


# -- POST .../end ----------------------------------------------------------------------------------------------


def _end(request: WebhookRequest, deps: SessionDeps, widget: Widget, conversation_id: str) -> WebhookResponse:
    session = authorise(request, deps, widget, conversation_id)
    now_ms = int(deps.clock() * 1000)
    if session.ended_at is None and deps.sessions.end_session(conversation_id, at=now_ms):
        logger.info("chat ended", extra={"widget_id": widget.id, "conversation_id": conversation_id})
        metrics.add_metric(name="ChatEnded", unit="Count", value=1)
    ended_at = session.ended_at or now_ms
    deps.publisher.publish(
        [
            Envelope(
                id=f"{CHANNEL}:{widget.id}:{conversation_id}:end",
                channel=CHANNEL,
                account_id=widget.id,
                customer=session.customer,
                kind="event",
                sent_at=ended_at,
                received_at=ended_at,
                correlation_id=request.request_id or uuid.uuid4().hex,
                data={"event": CHAT_ENDED, "ends_conversation": True},
                conversation_id=conversation_id,
            )
        ]
    )
    return WebhookResponse.json(200, {"status": "closed"})


# -- the widget's script and configuration -------------------------------------------------------------------


def _script(deps: SessionDeps) -> WebhookResponse:
    script = deps.widget_script()
    if script is None:
        logger.error("widget script missing from the package")
        return WebhookResponse.json(500, {"error": "configuration_error", "message": "the widget script is not installed"})
    return WebhookResponse(200, script, "application/javascript; charset=utf-8").with_headers(
        {"Cache-Control": SCRIPT_CACHE, "X-Content-Type-Options": "nosniff"}
    )


def _config(widget: Widget, deps: SessionDeps) -> WebhookResponse:
    setting = deps.settings.auth_setting(widget.auth_setting) if widget.auth_setting else None
    jwt = setting is not None and setting.type == "jwt"
    client_function = setting.option("client_function", DEFAULT_CLIENT_FUNCTION) if setting is not None and jwt else None
    body = {
        "widget_id": widget.id,
        "auth": "jwt" if jwt else "anonymous",
        "client_function": client_function,
        "allow_anonymous": widget.allow_anonymous or widget.auth_setting is None,
        "ask_contact": widget.ask_contact,
        "session_minutes": widget.session_minutes,
    }
    return WebhookResponse.json(200, body).with_headers({"Cache-Control": CONFIG_CACHE})
