"""Facebook Messenger page webhooks (protocols.md section 2).

Meta proves a delivery by signing the raw body with the app secret (``X-Hub-Signature-256``, and the
legacy SHA-1 ``X-Hub-Signature`` that only accounts opting in with ``allow_sha1`` accept) and proves
nothing about the set-up GET except that the caller knows the verify token we chose. One app may be
subscribed to many pages and Meta batches up to 1000 updates per POST, so every entry is checked
against the account's page and every item becomes its own envelope. Media bytes and profile names
are fetched later, off the webhook's path: the CDN URLs expire, but not within the 20 s Meta waits.

Kinds, by what the item holds:

==========================================  ===========  ==========================================
item                                        kind         notes
==========================================  ===========  ==========================================
message with text only                      text         ``quick_reply`` payload, ``reply_to`` in data
message with image/video/audio/file         that media   every attachment kept, url = ``payload.url``
message with sticker (or image+sticker_id)  sticker      the transition's duplicate image is dropped
message with reel / ig_reel                 video        attachment type stays ``reel``/``ig_reel``
message with only post/ig_post/template/    text if it   a typed link arrives as text + ``fallback``;
fallback shares                             has text,    without text the customer shared something
                                            else         no agent can open here
                                            unsupported
message with only appointment_booking       event        a booking status change, detail in data
message with legacy location coordinates    location     text = title, coordinates in data
message.is_echo                             (skipped)    the page's own message, never the customer's
postback                                    postback     text = payload, ``title`` in data
read, delivery                              (skipped)    receipts: never something the customer said
reaction, referral, optin, handover and     event        detail under data[<item key>]
anything unknown
==========================================  ===========  ==========================================

Items from ``standby`` (another app owns the thread) are normalised the same way and marked
``data["standby"] = True`` so routing can tell them apart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from switchboard import outbound_http
from switchboard.channels.base import (
    ChannelAdapter,
    Event,
    FetchRequest,
    ParseResult,
    Reply,
    SendRefused,
    SendRetryable,
    Sent,
    require_secret,
    send_secret,
    stored_secret,
    transport_failure,
)
from switchboard.envelope import UNSUPPORTED_TEXT, Attachment, Customer, Envelope
from switchboard.errors import BadRequest, Forbidden, Unauthorized
from switchboard.settings import Account
from switchboard.web import WebhookRequest, WebhookResponse

SIGNATURE_HEADER = "x-hub-signature-256"
LEGACY_SIGNATURE_HEADER = "x-hub-signature"
EVENT_RECEIVED = "EVENT_RECEIVED"
DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com"
# The Graph API version replies are sent with (the Send API's URL carries one; the profile look-up does not).
GRAPH_VERSION = "v19.0"
SEND_LIMITS = outbound_http.Limits(deadline=10.0, max_bytes=64 * 1024)
# Messenger's windows, counted from the customer's last message (protocols.md 8.2).
RESPONSE_WINDOW_MS = 24 * 3600 * 1000
HUMAN_AGENT_WINDOW_MS = 7 * 24 * 3600 * 1000
# Graph error codes: the page or user will not take it / the page's rate limits.
_BLOCKED_CODES = frozenset({551, 10, 200, 190})
_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
_WINDOW_SUBCODES = frozenset({2018278, 2018108})
_SHOWN_REASON = 300

# Attachment types whose payload.url is media bytes worth keeping; the attachments stage can use this
# to leave shares (links to posts, templates, fallbacks) unfetched.
MEDIA_ATTACHMENT_TYPES = frozenset({"image", "video", "audio", "file", "sticker", "reel", "ig_reel"})
# Reels are videos the customer shares; the attachment keeps its own type so an agent sees which.
_KIND_OF_MEDIA = {t: t for t in ("image", "video", "audio", "file", "sticker")} | {"reel": "video", "ig_reel": "video"}
# Receipts are never messages (a later reply-status feature will read them); each is skipped and logged.
_RECEIPT_KEYS = {"read": "read receipt", "delivery": "delivery receipt"}
# Items that are not messages, in the order they are looked for; anything else unknown is kept as an event.
_EVENT_KEYS = (
    "reaction",
    "referral",
    "optin",
    "account_linking",
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "app_roles",
    "policy_enforcement",
    "message_edit",
)
_ITEM_FRAME_KEYS = {"sender", "recipient", "timestamp"}
# Below this a timestamp is in seconds (the dashboard's "Test" samples send seconds as strings).
_MS_THRESHOLD = 100_000_000_000
# The customer `switchboard send facebook` writes as without --user: a page-scoped id (PSID) is a
# 16-digit number; stable, so repeated sends share a conversation.
DEMO_PSID = str(int(hashlib.md5(b"switchboard-demo-customer", usedforsecurity=False).hexdigest(), 16))[:16]


def sign_sha256(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value for ``body``: what Meta sends, and what ``switchboard send facebook`` forges."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sign_sha1(app_secret: str, body: bytes) -> str:
    """The legacy X-Hub-Signature value, for accounts (and tests) that still rely on it."""
    return "sha1=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


def build_message(page_id: str, psid: str, text: str, mid: str | None = None, now_ms: int | None = None) -> bytes:
    """A one-message webhook body shaped and escaped as Meta sends it, so a forged send exercises the real parser.

    Meta escapes non-ASCII as ``\\uXXXX`` and ``/`` as ``\\/``; signatures must hold over those bytes.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    body = {
        "object": "page",
        "entry": [
            {
                "id": page_id,
                "time": now,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": page_id},
                        "timestamp": now,
                        "message": {"mid": mid or "m_" + _secrets.token_urlsafe(32), "text": text},
                    }
                ],
            }
        ],
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


class FacebookAdapter(ChannelAdapter):
    channel = "facebook"
    label = "Facebook Messenger"
    medium = "facebook"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "page_id": {
            "type": "string",
            "pattern": "\\S",
            "errorMessage": "must be a non-empty string",
            "description": "The Facebook page's id (quote it in YAML): only entries for this page are recorded, "
            "since one app's webhook serves all its pages.",
        },
        "allow_sha1": {
            "type": "boolean",
            "default": False,
            "description": "Also accept the legacy SHA-1 X-Hub-Signature when X-Hub-Signature-256 is absent.",
        },
        "graph_base_url": {
            "$ref": "#/$defs/url",
            "description": "Where user profiles are looked up (the Graph API).",
            "default": DEFAULT_GRAPH_BASE_URL,
        },
    }
    # page_id is required: without it every entry is skipped, since one app may serve many pages.
    required_settings: ClassVar[tuple[str, ...]] = ("page_id",)
    required_secrets: ClassVar[tuple[str, ...]] = ("app_secret", "verify_token", "page_access_token")
    signature_header = "X-Hub-Signature-256"
    signing_key = "app_secret"

    def simulated_body(self, account: Mapping[str, Any], *, text: str, user: str | None, event_id: str | None) -> bytes:
        return build_message(str(account.get("page_id") or ""), user or DEMO_PSID, text, mid=event_id)

    def signed_headers(self, account: Mapping[str, Any], secrets: Mapping[str, Any], body: bytes) -> dict[str, str]:
        """Both signatures, as Meta still sends them; the account's page as the entry id, so the page check passes."""
        app_secret = stored_secret(secrets, "app_secret")
        return {"X-Hub-Signature-256": sign_sha256(app_secret, body), "X-Hub-Signature": sign_sha1(app_secret, body)}

    def handshake(self, request: WebhookRequest, account: Account, secrets: Mapping[str, str]) -> WebhookResponse | None:
        if request.method.upper() != "GET":
            return None
        if request.query.get("hub.mode") != "subscribe":
            raise Forbidden("hub.mode must be 'subscribe'")
        received = request.query.get("hub.verify_token") or ""
        # An empty stored token would match an empty hub.verify_token: refuse as for a wrong one.
        verify_token = require_secret(secrets, "verify_token", _wrong_verify_token())
        # The token is a secret the admin chose: compare in constant time and never repeat it back.
        if not hmac.compare_digest(received.encode("utf-8"), verify_token.encode("utf-8")):
            raise _wrong_verify_token()
        challenge = request.query.get("hub.challenge")
        if not challenge:
            raise Forbidden("hub.challenge is missing")
        return WebhookResponse.text(200, challenge)

    def verify(self, request: WebhookRequest, account: Account, secrets: Mapping[str, str]) -> None:
        """The base's policy, with Meta's legacy SHA-1 header as a fallback for accounts that allow it."""
        if request.header(SIGNATURE_HEADER):
            # A present but wrong SHA-256 signature is refused even if a SHA-1 one would pass.
            super().verify(request, account, secrets)
            return
        legacy = request.header(LEGACY_SIGNATURE_HEADER)
        if not legacy:
            raise Unauthorized("missing X-Hub-Signature-256 header", code="missing_signature")
        if account.option("allow_sha1") is not True:
            raise Unauthorized("X-Hub-Signature-256 is required: this account does not accept SHA-1 signatures")
        self.check_signature(legacy, "X-Hub-Signature", self.signing_key, request.body, secrets)

    def signature(self, key: str, body: bytes, header: str) -> str:
        return sign_sha1(key, body) if header == "X-Hub-Signature" else sign_sha256(key, body)

    def presented(self, received: str) -> str:
        return received.strip().lower()  # Meta sends lower-case hex: normalise case only

    def read(self, body: Any, account: Account, *, received_at: int) -> tuple[list[Event], list[str]]:
        if not isinstance(body, dict) or body.get("object") != "page":
            raise BadRequest("body is not a Messenger page webhook: expected 'object' to be 'page'")
        entries = body.get("entry")
        if not isinstance(entries, list):
            raise BadRequest("body is not a Messenger page webhook: expected an 'entry' array")
        page_id = account.option("page_id")
        events: list[Event] = []
        skipped: list[str] = []
        for e_index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                skipped.append(f"entry[{e_index}] is not an object")
                continue
            # One app serves many pages: an entry for another page (or an account with no page) is not ours.
            if page_id is None or str(entry.get("id")) != str(page_id):
                skipped.append(f"entry[{e_index}] is for page {entry.get('id')!r}, not this account's page {page_id!r}")
                continue
            if "changes" in entry:
                skipped.append(f"entry[{e_index}] holds 'changes', not Messenger 'messaging' items")
            entry_time = entry.get("time")
            for stream in ("messaging", "standby"):
                items = entry.get(stream)
                if items is None:
                    continue
                if not isinstance(items, list):
                    skipped.append(f"entry[{e_index}].{stream} is not an array")
                    continue
                for i_index, item in enumerate(items):
                    where = f"entry[{e_index}].{stream}[{i_index}]"
                    if not isinstance(item, dict):
                        skipped.append(f"{where} is not an object")
                        continue
                    message = item.get("message")
                    if isinstance(message, dict) and message.get("is_echo"):
                        skipped.append(f"{where} is an echo of the page's own message {message.get('mid')!r}")
                        continue
                    receipt = _receipt_of(item)
                    if receipt is not None:
                        skipped.append(f"{where} is a {receipt}")
                        continue
                    events.append(_event(item, standby=stream == "standby", fallback_time=entry_time, received_at=received_at))
        return events, skipped

    def accepted(self, result: ParseResult) -> WebhookResponse:
        return WebhookResponse.text(200, EVENT_RECEIVED)

    def attachment_request(self, attachment: Attachment, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        # Shares (posts, templates, fallbacks) carry links to pages, not media: nothing to keep.
        if attachment.type not in MEDIA_ATTACHMENT_TYPES:
            return None
        return super().attachment_request(attachment, account, secrets)

    def profile_request(self, envelope: Envelope, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        """The User Profile API: ``GET {graph}/{PSID}?fields=first_name,last_name`` with the page access token.

        ``appsecret_proof`` (HMAC-SHA256 of the token, keyed with the app secret) lets the app turn on
        Meta's "Require App Secret", so a leaked page token alone cannot read profiles.
        """
        psid = envelope.customer.id
        if envelope.data.get("customer_ref_type") or psid == "unknown":
            return None  # a chat-plugin user_ref is not a PSID
        token = secrets["page_access_token"]
        proof = hmac.new(secrets["app_secret"].encode("utf-8"), token.encode("utf-8"), hashlib.sha256).hexdigest()
        base = str(account.option("graph_base_url") or DEFAULT_GRAPH_BASE_URL).rstrip("/")
        return FetchRequest(
            f"{base}/{quote(psid, safe='')}",
            params={"fields": "first_name,last_name", "access_token": token, "appsecret_proof": proof},
        )

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        """The Send API, as a ``RESPONSE`` within 24 h of the customer's last message, tagged ``HUMAN_AGENT`` up to 7 days.

        Later (or when nobody knows when the customer last wrote) nothing is sent: Graph would refuse,
        and asking it costs the page's rate limit. Messenger has no idempotency key; the caller records
        the attempt before calling, so only a retry after an unknown outcome can double a message.
        """
        token = send_secret(secrets, "page_access_token")
        if not reply.text.strip():
            raise SendRefused("the reply has no text to send", code="empty_reply")
        body: dict[str, Any] = {"recipient": {"id": reply.customer_id}, "message": {"text": reply.text}}
        body.update(messaging_window(reply.last_customer_message_at, int(time.time() * 1000)))
        params = {"access_token": token}
        app_secret = secrets.get("app_secret")
        if isinstance(app_secret, str) and app_secret:
            params["appsecret_proof"] = hmac.new(app_secret.encode("utf-8"), token.encode("utf-8"), hashlib.sha256).hexdigest()
        base = str(account.option("graph_base_url") or DEFAULT_GRAPH_BASE_URL).rstrip("/")
        redact = outbound_http.Redactor([token, *([app_secret] if isinstance(app_secret, str) else [])])
        try:
            response = http.request(
                "POST",
                f"{base}/{GRAPH_VERSION}/me/messages",
                limits=SEND_LIMITS,
                headers={"Content-Type": "application/json"},
                params=params,
                data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            )
        except outbound_http.OutboundError as exc:
            raise transport_failure("Messenger", exc, redact) from None
        return _send_outcome(response, redact)

    def profile_name(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        parts = [body.get(k) for k in ("first_name", "last_name")]
        return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip()) or None


def _event(item: dict[str, Any], *, standby: bool, fallback_time: Any, received_at: int) -> Event:
    sender = _obj(item.get("sender"))
    customer_id, ref_type = _customer_of(sender, item)
    sent_at = _millis(item.get("timestamp")) or _millis(fallback_time) or received_at
    data: dict[str, Any] = {}
    if standby:
        data["standby"] = True
    if ref_type:
        data["customer_ref_type"] = ref_type
    kind = "event"
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()

    message = item.get("message")
    postback = item.get("postback")
    if isinstance(message, dict):
        data["event"] = "message"
        kind, text, attachments, detail = _message(message)
        data.update(detail)
        event_key = str(message.get("mid") or f"message:{customer_id}:{sent_at}")
    elif isinstance(postback, dict):
        data["event"] = "postback"
        kind = "postback"
        text = postback.get("payload") if isinstance(postback.get("payload"), str) else None
        for key in ("title", "referral", "mid"):
            if postback.get(key) is not None:
                data[key] = postback[key]
        event_key = str(postback["mid"]) if postback.get("mid") else f"postback:{customer_id}:{sent_at}"
    else:
        name = next((k for k in _EVENT_KEYS if k in item), None)
        if name is None:
            name = next((k for k in item if k not in _ITEM_FRAME_KEYS), "unknown")
        data["event"] = name
        event_detail = item.get(name)
        data[name] = event_detail
        event_key = _event_key(name, event_detail, customer_id, sent_at)

    return Event(
        key=event_key,
        customer=Customer(id=customer_id),
        kind=kind,
        text=text,
        sent_at=sent_at,
        attachments=attachments,
        data=data,
    )


def _wrong_verify_token() -> Forbidden:
    return Forbidden("hub.verify_token does not match this account's verify token")


def _customer_of(sender: Mapping[str, Any], item: Mapping[str, Any]) -> tuple[str, str | None]:
    """The PSID; chat-plugin and checkbox events carry only a ``user_ref``, which is all there is to key on."""
    if sender.get("id"):
        return str(sender["id"]), None
    if sender.get("user_ref"):
        return str(sender["user_ref"]), "user_ref"
    optin = item.get("optin")
    if isinstance(optin, dict) and optin.get("user_ref"):
        return str(optin["user_ref"]), "user_ref"
    return "unknown", None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _millis(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and value > 0:
        number = int(value)
        return number * 1000 if number < _MS_THRESHOLD else number
    return None


def _receipt_of(item: Mapping[str, Any]) -> str | None:
    """What kind of receipt ``item`` is ("read receipt", "delivery receipt"), or None for anything else."""
    if isinstance(item.get("message"), dict) or isinstance(item.get("postback"), dict):
        return None
    return next((what for key, what in _RECEIPT_KEYS.items() if key in item), None)


def _event_key(name: str, detail: Any, customer_id: str, sent_at: int) -> str:
    """A key stable across Meta's redeliveries: the target and action for reactions, else sender and time."""
    fields = _obj(detail)
    if name == "reaction" and fields.get("mid"):
        return f"reaction:{fields['mid']}:{fields.get('action', 'react')}:{fields.get('reaction', fields.get('emoji', ''))}"
    return f"{name}:{customer_id}:{sent_at}"


def _message(message: dict[str, Any]) -> tuple[str, str | None, tuple[Attachment, ...], dict[str, Any]]:
    detail: dict[str, Any] = {"mid": message.get("mid")}
    text = message.get("text") if isinstance(message.get("text"), str) and message.get("text") else None
    quick_reply = message.get("quick_reply")
    if isinstance(quick_reply, dict) and quick_reply.get("payload") is not None:
        detail["quick_reply_payload"] = quick_reply["payload"]
    if isinstance(message.get("reply_to"), dict):
        detail["reply_to"] = message["reply_to"]
    raw = [a for a in message.get("attachments") or () if isinstance(a, dict)]
    if not raw:
        return "text", text, (), detail

    has_sticker_type = any(a.get("type") == "sticker" for a in raw)
    attachments: list[Attachment] = []
    shares: list[str] = []
    location: dict[str, Any] | None = None
    for attachment in raw:
        atype = str(attachment.get("type") or "fallback")
        payload = _obj(attachment.get("payload"))
        if atype == "location" or isinstance(payload.get("coordinates"), dict):
            coordinates = _obj(payload.get("coordinates"))
            location = {
                "title": attachment.get("title"),
                "latitude": coordinates.get("lat"),
                "longitude": coordinates.get("long"),
                "url": attachment.get("url"),
            }
            continue
        if payload.get("sticker_id") is not None:
            detail["sticker_id"] = payload["sticker_id"]
            if atype == "image":
                if has_sticker_type:
                    continue  # the 2026 transition sends the same sticker twice, once as an image
                atype = "sticker"  # before the transition a sticker was an image with a sticker_id
        if atype not in MEDIA_ATTACHMENT_TYPES:
            shares.append(atype)
        if atype == "appointment_booking" or (atype == "template" and payload):
            detail.setdefault(atype, []).append(payload)
        url = payload.get("url") or attachment.get("url")
        title = attachment.get("title") or payload.get("title")
        attachments.append(Attachment(type=atype, url=str(url) if url else None, name=str(title) if title else None))

    media = next((a for a in attachments if a.type in MEDIA_ATTACHMENT_TYPES), None)
    if media is not None:
        kind = _KIND_OF_MEDIA[media.type]
    elif location is not None:
        detail["location"] = location
        return "location", text or location.get("title"), tuple(attachments), detail
    elif text:
        kind = "text"
    elif shares and all(s == "appointment_booking" for s in shares):
        kind = "event"
    else:
        detail["shared"] = shares
        return "unsupported", UNSUPPORTED_TEXT, tuple(attachments), detail
    if location is not None:
        detail["location"] = location
    return kind, text, tuple(attachments), detail


# -- sending --------------------------------------------------------------------------------------


def messaging_window(last_customer_message_at: int | None, now_ms: int) -> dict[str, str]:
    """The Send API fields for a reply now: ``RESPONSE`` within 24 h, ``HUMAN_AGENT`` up to 7 days, else refused."""
    if last_customer_message_at is None:
        raise SendRefused(
            "the customer's last message time is unknown, so no messaging window is open", code="outside_messaging_window"
        )
    age = now_ms - last_customer_message_at
    if age <= RESPONSE_WINDOW_MS:
        return {"messaging_type": "RESPONSE"}
    if age <= HUMAN_AGENT_WINDOW_MS:
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    raise SendRefused(
        "the customer last wrote more than 7 days ago: Messenger's window is closed", code="outside_messaging_window"
    )


def _send_outcome(response: outbound_http.Response, redact: outbound_http.Redactor) -> Sent:
    """Graph's message id, or the failure by Graph's error code (its HTTP status says little: most are 400)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.ok:
        mid = body.get("message_id") if isinstance(body, dict) else None
        return Sent(platform_id=mid if isinstance(mid, str) else None)
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    message = str(error.get("message") or response.reason or "no message")[:_SHOWN_REASON]
    reason = redact(f"Messenger answered HTTP {response.status}: {message}")
    if subcode in _WINDOW_SUBCODES:
        raise SendRefused(reason, code="outside_messaging_window")
    if code in _RATE_LIMIT_CODES:
        raise SendRetryable(reason, retry_after=outbound_http.parse_retry_after(response.headers.get("Retry-After")))
    failure = outbound_http.classify_status(response.status, response.headers)
    if failure is not None and failure.retryable:
        raise SendRetryable(reason, retry_after=failure.retry_after)
    if code == 551:
        raise SendRefused(reason, code="blocked")
    if code in _BLOCKED_CODES:
        raise SendRefused(reason, code="not_permitted")
    raise SendRefused(reason, code="refused")
