"""LINE Messaging API webhooks (protocols.md section 1).

LINE signs the raw body with the channel secret (HMAC-SHA256, base64) and gives up after 2 s, so
this module does the least work that proves the request genuine and turns each event into one
envelope. Media bytes and profile names are fetched later, off the webhook's path.

Only events of a customer become envelopes: an event whose ``source`` names no user, group or room
(a module channel's ``module`` attach/detach, ``botSuspended``, ``botResumed``), the chat-control
switches ``activated``/``deactivated`` (our own API calls, not anything a customer did) and the
notification-message ``delivery`` completion (a delivery receipt) are logged as skipped. Stored,
they would open a conversation, and with a CRM a contact and ticket, for a customer who said nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as _secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from switchboard import outbound_http
from switchboard.channels.base import (
    ChannelAdapter,
    Event,
    FetchRequest,
    Reply,
    SendRefused,
    SendRetryable,
    Sent,
    send_secret,
    stored_secret,
    transport_failure,
)
from switchboard.envelope import UNSUPPORTED_TEXT, Attachment, Customer, Envelope
from switchboard.errors import BadRequest
from switchboard.settings import Account

SIGNATURE_HEADER = "x-line-signature"
DEFAULT_API_BASE_URL = "https://api.line.me"
DEFAULT_DATA_BASE_URL = "https://api-data.line.me"
_MEDIA = {"image", "video", "audio"}
# Events that carry no message but matter to the conversation; anything else unknown is kept too.
_EVENT_DETAIL_KEYS = ("follow", "joined", "left", "unsend", "beacon", "link", "videoPlayComplete", "things", "postback")
# Events about the LINE account or its module channel, never a customer's, whatever their source says.
_ACCOUNT_EVENTS = frozenset({"module", "activated", "deactivated", "botSuspended", "botResumed"})
# LINE notification messages' delivery completion: a receipt, and receipts are never messages.
_RECEIPT_EVENTS = {"delivery": "delivery receipt"}
_SHOWN_CHARS = 64
# Push limits (protocols.md 8.1): a text message holds at most 5,000 characters, a push 5 messages.
TEXT_LIMIT = 5000
MESSAGES_PER_PUSH = 5
MONTHLY_LIMIT_MESSAGE = "monthly limit"
# X-Line-Retry-Key is derived from the reply in this namespace: the same key on every try of a push.
RETRY_KEY_NAMESPACE = uuid.UUID("6f1c3a52-8d2e-5b7a-9c41-2e0d7b6a1f39")
SEND_LIMITS = outbound_http.Limits(deadline=10.0, max_bytes=64 * 1024)
_SHOWN_REASON = 300
# The customer `switchboard send line` writes as without --user: stable, so repeated sends share a conversation.
DEMO_USER = "U" + hashlib.md5(b"switchboard-demo-customer", usedforsecurity=False).hexdigest()


def sign(channel_secret: str, body: bytes) -> str:
    """The X-Line-Signature value for ``body``: what LINE sends, and what ``switchboard send line`` forges."""
    digest = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def new_event_id() -> str:
    """A new webhookEventId as LINE makes them: a ULID, 26 Crockford base32 characters, time first."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def build_message(text: str, user: str, *, event_id: str | None = None, redelivery: bool = False) -> bytes:
    """A one-event text message body shaped as LINE sends it, so a forged send exercises the real parser."""
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id or new_event_id(),
        "deliveryContext": {"isRedelivery": redelivery},
        "replyToken": _secrets.token_hex(16),
        "message": {
            "id": str(_secrets.randbelow(10**18)),
            "type": "text",
            "text": text,
            "quoteToken": _secrets.token_urlsafe(16),
        },
    }
    return json.dumps({"destination": "U" + _secrets.token_hex(16), "events": [event]}, ensure_ascii=False).encode("utf-8")


class LineAdapter(ChannelAdapter):
    channel = "line"
    label = "LINE"
    medium = "chat"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "channel_id": {
            "type": "string",
            "description": "The channel's id (LINE Developers console, Basic settings), kept for the admin's reference.",
        },
        "api_base_url": {
            "$ref": "#/$defs/url",
            "description": "Where profile look-ups go (the Messaging API); a sandbox or test server may stand in.",
            "default": DEFAULT_API_BASE_URL,
        },
        "data_base_url": {
            "$ref": "#/$defs/url",
            "description": "Where media content is fetched from (LINE's data API).",
            "default": DEFAULT_DATA_BASE_URL,
        },
    }
    required_secrets: ClassVar[tuple[str, ...]] = ("channel_secret", "channel_access_token")
    signature_header = "X-Line-Signature"
    signing_key = "channel_secret"

    def signature(self, key: str, body: bytes, header: str) -> str:
        return sign(key, body)

    def read(self, body: Any, account: Account, *, received_at: int) -> tuple[list[Event], list[str]]:
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise BadRequest("body is not a LINE webhook: expected an object with an 'events' array")
        events: list[Event] = []
        skipped: list[str] = []
        for index, event in enumerate(body["events"]):
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                skipped.append(f"events[{index}] is not an event object")
                continue
            counterpart, not_a_customers = _counterpart(event)
            if counterpart is None:
                skipped.append(f"events[{index}]: {not_a_customers}")
                continue
            events.append(_event(event, counterpart, received_at=received_at))
        return events, skipped

    def attachment_request(self, attachment: Attachment, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        # contentProvider "line" (and every file): the bytes are on LINE, behind the channel access token.
        if attachment.content_id:
            base = str(account.option("data_base_url") or DEFAULT_DATA_BASE_URL).rstrip("/")
            return FetchRequest(
                f"{base}/v2/bot/message/{quote(attachment.content_id, safe='')}/content",
                headers={"Authorization": f"Bearer {secrets['channel_access_token']}"},
            )
        return super().attachment_request(attachment, account, secrets)  # contentProvider "external": its own URL

    def profile_request(self, envelope: Envelope, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        # A group or room is the conversation's counterpart there, and has no profile of its own.
        user = envelope.customer.id
        if envelope.data.get("source_type", "user") != "user" or not user.startswith("U"):
            return None
        base = str(account.option("api_base_url") or DEFAULT_API_BASE_URL).rstrip("/")
        return FetchRequest(
            f"{base}/v2/bot/profile/{quote(user, safe='')}",
            headers={"Authorization": f"Bearer {secrets['channel_access_token']}"},
        )

    def profile_name(self, body: Any) -> str | None:
        name = body.get("displayName") if isinstance(body, dict) else None
        return (name.strip() or None) if isinstance(name, str) else None

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        """Push ``reply`` in as many requests as its length needs, each under its own derived retry key.

        A retry after an unknown outcome repeats every request with the same keys: LINE answers 409
        for a push it already accepted, which counts as sent, so the customer never sees a part twice.
        """
        token = send_secret(secrets, "channel_access_token")
        texts = split_text(reply.text)
        if not texts:
            raise SendRefused("the reply has no text to send", code="empty_reply")
        base = str(account.option("api_base_url") or DEFAULT_API_BASE_URL).rstrip("/")
        redact = outbound_http.Redactor([token])
        accepted: str | None = None
        for index in range(0, len(texts), MESSAGES_PER_PUSH):
            batch = texts[index : index + MESSAGES_PER_PUSH]
            body = {"to": reply.customer_id, "messages": [{"type": "text", "text": text} for text in batch]}
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "X-Line-Retry-Key": retry_key(reply.id, index // MESSAGES_PER_PUSH),
            }
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            try:
                response = http.request("POST", f"{base}/v2/bot/message/push", limits=SEND_LIMITS, headers=headers, data=data)
            except outbound_http.OutboundError as exc:
                raise transport_failure("LINE", exc, redact) from None
            request_id = _push_outcome(response, redact)
            accepted = accepted or request_id
        return Sent(platform_id=accepted)

    def simulated_body(self, account: Mapping[str, Any], *, text: str, user: str | None, event_id: str | None) -> bytes:
        # A replay (an event id given) is marked as LINE marks its own redeliveries.
        return build_message(text, user or DEMO_USER, event_id=event_id, redelivery=event_id is not None)

    def signed_headers(self, account: Mapping[str, Any], secrets: Mapping[str, Any], body: bytes) -> dict[str, str]:
        return {"X-Line-Signature": sign(stored_secret(secrets, "channel_secret"), body)}


def _event(event: dict[str, Any], counterpart: tuple[str, str | None], *, received_at: int) -> Event:
    event_type = event["type"]
    raw_source = event.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    customer_id, speaker = counterpart
    data: dict[str, Any] = {"event": event_type, "mode": event.get("mode")}
    if speaker and speaker != customer_id:
        data["speaker"] = speaker
    if source.get("type"):
        data["source_type"] = source["type"]
    if isinstance(event.get("deliveryContext"), dict) and event["deliveryContext"].get("isRedelivery"):
        data["redelivery"] = True
    kind = "event"
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()

    if event_type == "message" and isinstance(event.get("message"), dict):
        kind, text, attachments, detail = _message(event["message"])
        data.update(detail)
    elif event_type == "postback" and isinstance(event.get("postback"), dict):
        kind = "postback"
        text = event["postback"].get("data")
        if event["postback"].get("params"):
            data["params"] = event["postback"]["params"]
    else:
        for key in _EVENT_DETAIL_KEYS:
            if key in event:
                data[key] = event[key]
        if event_type == "messageEdited" and isinstance(event.get("message"), dict):
            text = event["message"].get("text")
            data["message_id"] = event["message"].get("id")

    event_id = event.get("webhookEventId")
    if not isinstance(event_id, str) or not event_id:
        # Older or partner events may lack the id; the event's own bytes still identify a redelivery.
        event_id = "sha256-" + hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
    timestamp = event.get("timestamp")
    return Event(
        key=event_id,
        customer=Customer(id=customer_id),
        kind=kind,
        text=text,
        sent_at=timestamp if isinstance(timestamp, int) else received_at,
        attachments=attachments,
        data=data,
    )


def _counterpart(event: Mapping[str, Any]) -> tuple[tuple[str, str | None] | None, str]:
    """The event's customer and speaker (see :func:`_customer_of`), or None and why it has none."""
    event_type = str(event["type"])[:_SHOWN_CHARS]  # the reason is logged: a made-up type stays short
    if event_type in _ACCOUNT_EVENTS:
        return None, f"account event {event_type}"
    if event_type in _RECEIPT_EVENTS:
        return None, _RECEIPT_EVENTS[event_type]
    source = event.get("source")
    counterpart = _customer_of(source if isinstance(source, dict) else {})
    if counterpart is None:
        return None, f"account event {event_type} (its source names no user, group or room)"
    return counterpart, ""


def _customer_of(source: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The conversation's counterpart: the user in a 1:1 chat, the group or room in a group chat.

    None when the source names none of them: no customer, so no conversation to record under.
    """
    kind = source.get("type")
    user = source.get("userId") if isinstance(source.get("userId"), str) and source.get("userId") else None
    if kind == "group" and source.get("groupId"):
        return str(source["groupId"]), user
    if kind == "room" and source.get("roomId"):
        return str(source["roomId"]), user
    if user:
        return user, user
    return None


def _message(message: dict[str, Any]) -> tuple[str, str | None, tuple[Attachment, ...], dict[str, Any]]:
    mtype = message.get("type")
    detail: dict[str, Any] = {"message_id": message.get("id")}
    if message.get("quoteToken"):
        detail["quote_token"] = message["quoteToken"]
    if mtype == "text":
        return "text", message.get("text"), (), detail
    if mtype in _MEDIA:
        provider = message.get("contentProvider") or {}
        if provider.get("type") == "external":
            attachment = Attachment(type=str(mtype), url=provider.get("originalContentUrl"))
        else:
            attachment = Attachment(type=str(mtype), content_id=str(message.get("id")))
        for key in ("duration", "imageSet"):
            if key in message:
                detail[key] = message[key]
        return str(mtype), None, (attachment,), detail
    if mtype == "file":
        size = message.get("fileSize")
        attachment = Attachment(
            type="file",
            content_id=str(message.get("id")),
            name=message.get("fileName"),
            size=size if isinstance(size, int) else None,
        )
        return "file", None, (attachment,), detail
    if mtype == "location":
        detail["location"] = {k: message.get(k) for k in ("title", "address", "latitude", "longitude")}
        text = ", ".join(str(message[k]) for k in ("title", "address") if message.get(k)) or None
        return "location", text, (), detail
    if mtype == "sticker":
        detail["sticker"] = {k: message.get(k) for k in ("packageId", "stickerId", "stickerResourceType", "keywords", "text")}
        return "sticker", message.get("text"), (), detail
    detail["message_type"] = mtype
    return "unsupported", UNSUPPORTED_TEXT, (), detail


# -- sending --------------------------------------------------------------------------------------


def retry_key(reply_id: str, push: int) -> str:
    """The X-Line-Retry-Key of the reply's ``push``-th request: a UUID that is the same on every try."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, f"{reply_id}/{push}"))


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 units (how LINE counts), cut at a line or word break when one is near.

    Counting UTF-16 units keeps an emoji-heavy text under LINE's limit; a code point is never cut.
    """
    pieces: list[str] = []
    rest = text
    while rest:
        size, end = 0, 0
        while end < len(rest):
            width = 2 if ord(rest[end]) > 0xFFFF else 1
            if size + width > limit:
                break
            size, end = size + width, end + 1
        if end == len(rest):
            pieces.append(rest)
            break
        cut = max(rest.rfind("\n", 0, end), rest.rfind(" ", 0, end))
        if cut < end // 2:
            cut = end
        else:
            cut += 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return [piece for piece in pieces if piece.strip()]


def _push_outcome(response: outbound_http.Response, redact: outbound_http.Redactor) -> str | None:
    """LINE's request id for an accepted push (409: accepted before, under this retry key), or the failure raised."""
    if response.ok:
        return response.headers.get("x-line-request-id")
    if response.status == 409:
        return response.headers.get("x-line-accepted-request-id") or response.headers.get("x-line-request-id")
    message, properties = _line_error(response)
    reason = redact(f"LINE answered HTTP {response.status}: {message}")
    if response.status == 429 and MONTHLY_LIMIT_MESSAGE in message.lower():
        raise SendRefused(reason, code="monthly_limit")
    failure = outbound_http.classify_status(response.status, response.headers)
    if failure is not None and failure.retryable:
        raise SendRetryable(reason, retry_after=failure.retry_after)
    if response.status == 400 and ("to" in properties or "'to'" in message):
        raise SendRefused(reason, code="invalid_recipient")
    if response.status in (401, 403):
        raise SendRefused(reason, code="not_authorized")
    raise SendRefused(reason, code="refused")


def _line_error(response: outbound_http.Response) -> tuple[str, set[str]]:
    """LINE's error message (shortened) and the request properties its details blame."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return response.reason or "no message", set()
    message = str(body.get("message") or response.reason or "no message")
    raw_details = body.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    properties = {str(d.get("property")) for d in details if isinstance(d, dict) and d.get("property")}
    texts = [str(d.get("message")) for d in details if isinstance(d, dict) and d.get("message")]
    if texts:
        message = f"{message} ({'; '.join(texts)})"
    return message[:_SHOWN_REASON], properties
