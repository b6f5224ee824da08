"""LINE Messaging API webhooks (protocols.md section 1).

LINE signs the raw body with the channel secret (HMAC-SHA256, base64) and gives up after 2 s, so
this module does the least work that proves the request genuine and turns each event into one
envelope. Media bytes and profile names are fetched later, off the webhook's path.

Only events of a customer become envelopes: an event whose ``source`` names no user, group or room
(a module channel's ``module`` attach/detach, ``botSuspended``, ``botResumed``), the chat-control
switches ``activated``/``deactivated`` (our own API calls, not anything a customer did) and the
notification-message ``delivery`` completion (a delivery receipt) are logged as skipped. Stored,
they would open a conversation, and with a CRM a contact and ticket, for a customer who said nothing.

Replies go by push (protocols.md 8.1): the text first, then the agent's files as message objects in
the same push where they fit (at most five messages a request), each request under its own
``X-Line-Retry-Key`` derived from the reply, so a retry never doubles what LINE accepted. LINE
fetches a file from its ``originalContentUrl`` (the presigned URL into the attachments bucket). What
LINE's message objects require decides which files can go (LINE's reference, message objects; URLs
HTTPS and at most 2,000 characters):

- **image** (JPEG or PNG, at most 10 MB): sent, with the same URL as ``previewImageUrl``. LINE asks
  for a preview of at most 1 MB and says a device may show the original as the preview anyway;
  Switchboard makes no thumbnails, so a larger image goes with itself as its preview, and LINE may
  show it without one. This is the one place the message does not meet the letter of the reference.
- **video** (mp4, 200 MB): LINE requires ``previewImageUrl``, a JPEG or PNG still of the video.
  Switchboard has no such image and does not decode video to make one, and any other image would
  misrepresent the file, so a video is not sent: it is named in ``Sent.unsent_files`` with the reason.
- **audio** (mp3 or m4a, 200 MB): LINE requires ``duration`` in milliseconds. Switchboard does not
  know it (the CRM does not say, and the send holds only a URL); inventing one would show the
  customer a wrong length, so an audio file is not sent either. Reading it from the file is possible
  for m4a (the ``mvhd`` box) but not soundly for mp3 (a VBR file has to be scanned), and belongs
  where the bytes are stored rather than in the send; until then the reason names what is missing.
- anything else, or a type or size LINE does not take: not sent, with the reason.

A file goes only with or after the text: a push that holds text is refused whole when LINE refuses
it, unless LINE's answer blames only file messages (``details[].property`` ``messages[i]...``):
then those files are named unsent and the rest of the push is sent again under a retry key derived
from the reply, the push and the files left out, the same on every attempt. Once text went, a later
push of files only that LINE refuses leaves those files (and the ones after) unsent; the text counts
as sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
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
    OutFile,
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
# LINE's message objects (reference, "Image message", "Video message", "Audio message").
URL_LIMIT = 2000  # characters of originalContentUrl / previewImageUrl
IMAGE_MAX_BYTES = 10_000_000  # "10 MB": read as decimal megabytes, the stricter reading
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG", "image/png": "PNG"}
IMAGE_EXTENSIONS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG"}
_BLAMED_MESSAGE = re.compile(r"messages\[(\d+)\]")
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
    # Video and audio are listed although LINE needs what Switchboard cannot give for them (see the
    # module docstring): send() names them unsent with LINE's own reason rather than a generic one.
    file_kinds: ClassVar[frozenset[str]] = frozenset({"image", "video", "audio"})
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
        """Push the text, then the files, five messages a request, each request under its own derived retry key.

        A retry after an unknown outcome repeats every request with the same keys: LINE answers 409
        for a push it already accepted, which counts as sent, so the customer never sees a part twice.
        Which messages go in which push depends only on the reply, never on an earlier attempt.
        """
        token = send_secret(secrets, "channel_access_token")
        entries: list[tuple[str | None, dict[str, Any]]] = [(None, {"type": "text", "text": t}) for t in split_text(reply.text)]
        unsent: list[tuple[str, str]] = []
        for file in reply.files:
            message, why = file_message(file)
            if message is None:
                unsent.append((file.name, why))
            else:
                entries.append((file.name, message))
        if not entries:
            if unsent:
                shown = "; ".join(f"{name}: {why}" for name, why in unsent)
                raise SendRefused(f"the reply has no text and LINE takes none of its files ({shown})", code="unsupported_file")
            raise SendRefused("the reply has no text to send", code="empty_reply")
        pusher = _Pusher(http, str(account.option("api_base_url") or DEFAULT_API_BASE_URL).rstrip("/"), token, reply)
        accepted: str | None = None
        went = False  # some push was accepted: the customer has (part of) the reply
        batches = [entries[i : i + MESSAGES_PER_PUSH] for i in range(0, len(entries), MESSAGES_PER_PUSH)]
        for number, batch in enumerate(batches):
            files_only = all(name is not None for name, _ in batch)
            try:
                request_id, refused_files = pusher.push(number, batch)
            except SendRefused as exc:
                if not (went and files_only):
                    raise
                # The text went; a refusal not pinned on single files (recipient, limit, token) holds for the rest too.
                unsent += [(str(name), f"LINE refused it: {exc.message}") for later in batches[number:] for name, _ in later]
                break
            unsent += refused_files
            if len(refused_files) < len(batch):  # LINE accepted the rest of the push
                went = True
                accepted = accepted or request_id
        if not went:
            shown = "; ".join(f"{name}: {why}" for name, why in unsent)
            raise SendRefused(f"LINE took none of the reply's files ({shown})", code="unsupported_file")
        return Sent(platform_id=accepted, unsent_files=tuple(unsent))

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


def retry_key(reply_id: str, push: int, without: tuple[int, ...] = ()) -> str:
    """The X-Line-Retry-Key of the reply's ``push``-th request: a UUID that is the same on every try.

    ``without``: the positions (in that push) of files LINE refused, when the push is sent again
    without them; a different request, so a different key, but again the same on every attempt.
    """
    name = f"{reply_id}/{push}" + (f"/without/{','.join(map(str, without))}" if without else "")
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, name))


def file_message(file: OutFile) -> tuple[dict[str, Any] | None, str]:
    """The LINE message object for an agent's file, or None and why LINE cannot be given this file."""
    if file.kind == "video":
        return None, ("LINE needs a preview image for a video (previewImageUrl), and Switchboard has none to give")
    if file.kind == "audio":
        return None, "LINE needs the audio's duration in milliseconds, and Switchboard does not know it"
    if file.kind != "image":
        return None, f"LINE replies do not carry {file.kind} files"
    image_type = _image_type(file)
    if image_type is None:
        return None, f"LINE takes only JPEG or PNG images, and this is {file.content_type or 'of an unknown type'}"
    if file.size is not None and file.size > IMAGE_MAX_BYTES:
        return None, f"LINE takes images of at most 10 MB, and this is {file.size} bytes"
    if not file.url.startswith("https://") and not file.url.startswith("http://"):
        return None, "the file has no web address LINE could fetch it from"
    if len(file.url) > URL_LIMIT:
        return None, f"the file's address is {len(file.url)} characters, more than LINE's {URL_LIMIT}"
    return {"type": "image", "originalContentUrl": file.url, "previewImageUrl": file.url}, ""


def _image_type(file: OutFile) -> str | None:
    """JPEG or PNG from the content type, or from the name when no content type is known."""
    if file.content_type:
        return IMAGE_TYPES.get(file.content_type.split(";", 1)[0].strip().lower())
    _, dot, extension = file.name.rpartition(".")
    return IMAGE_EXTENSIONS.get(extension.lower()) if dot else None


class _Pusher:
    """POSTs the reply's pushes with the channel access token, each under its derived retry key."""

    def __init__(self, http: Any, base: str, token: str, reply: Reply) -> None:
        self.http = http
        self.url = f"{base}/v2/bot/message/push"
        self.token = token
        self.reply = reply
        self.redact = outbound_http.Redactor([token])

    def push(self, number: int, batch: list[tuple[str | None, dict[str, Any]]]) -> tuple[str | None, list[tuple[str, str]]]:
        """LINE's request id for push ``number`` (None when none of it could go) and the files LINE refused.

        A 400 that blames only file messages sends the push again without them; anything else LINE
        refuses is raised.
        """
        without: list[int] = []
        refused: list[tuple[str, str]] = []
        while True:
            kept = [(position, entry) for position, entry in enumerate(batch) if position not in without]
            if not kept:
                return None, refused
            try:
                return self._post(number, [message for _, (_, message) in kept], tuple(without)), refused
            except _Blamed as blamed:
                files = {kept[i][0] for i in blamed.indices if i < len(kept) and kept[i][1][0] is not None}
                if not files or len(files) < len(blamed.indices):
                    raise blamed.refusal from None  # LINE blames the text (or nothing it names): the reply is refused
                without = sorted({*without, *files})
                refused += [(str(batch[p][0]), f"LINE refused it: {blamed.refusal.message}") for p in sorted(files)]

    def _post(self, number: int, messages: list[dict[str, Any]], without: tuple[int, ...]) -> str | None:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "X-Line-Retry-Key": retry_key(self.reply.id, number, without),
        }
        data = json.dumps({"to": self.reply.customer_id, "messages": messages}, ensure_ascii=False).encode("utf-8")
        try:
            response = self.http.request("POST", self.url, limits=SEND_LIMITS, headers=headers, data=data)
        except outbound_http.OutboundError as exc:
            raise transport_failure("LINE", exc, self.redact) from None
        return _push_outcome(response, self.redact)


class _Blamed(Exception):
    """LINE refused a push (HTTP 400) naming which of its messages were wrong."""

    def __init__(self, refusal: SendRefused, indices: set[int]) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.indices = indices


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
    blamed = {int(m.group(1)) for p in properties if (m := _BLAMED_MESSAGE.match(p))}
    if response.status == 400 and blamed:
        raise _Blamed(SendRefused(reason, code="refused"), blamed)
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
