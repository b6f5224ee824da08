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
read, delivery                              receipt      our replies' delivery (mids, watermark), never
                                                         a message: see ``RECEIPT_STATUSES``
reaction, referral, optin, handover and     event        detail under data[<item key>]
anything unknown
==========================================  ===========  ==========================================

Items from ``standby`` (another app owns the thread) are normalised the same way and marked
``data["standby"] = True`` so routing can tell them apart.
"""

from __future__ import annotations

import hashlib
import json
import secrets as _secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from switchboard.channels.base import (
    Event,
    FetchRequest,
    Reply,
    Sent,
)
from switchboard.channels.meta import (
    ALLOW_SHA1_SETTING,
    DEFAULT_GRAPH_BASE_URL,
    EVENT_RECEIVED,
    GRAPH_VERSION,
    LEGACY_SIGNATURE_HEADER,
    SEND_API_FILE_KINDS,
    SIGNATURE_HEADER,
    MetaAdapter,
    appsecret_proof,
    graph_base,
    graph_base_url_setting,
    messaging_items,
    messaging_window,
    millis,
    sign_sha1,
    sign_sha256,
)
from switchboard.envelope import RECEIPT, UNSUPPORTED_TEXT, Attachment, Customer, Envelope
from switchboard.settings import Account

__all__ = [
    "DEFAULT_GRAPH_BASE_URL",
    "EVENT_RECEIVED",
    "GRAPH_VERSION",
    "LEGACY_SIGNATURE_HEADER",
    "SIGNATURE_HEADER",
    "FacebookAdapter",
    "build_message",
    "messaging_window",
    "sign_sha1",
    "sign_sha256",
]

# Attachment types whose payload.url is media bytes worth keeping; the attachments stage can use this
# to leave shares (links to posts, templates, fallbacks) unfetched.
MEDIA_ATTACHMENT_TYPES = frozenset({"image", "video", "audio", "file", "sticker", "reel", "ig_reel"})
# Reels are videos the customer shares; the attachment keeps its own type so an agent sees which.
_KIND_OF_MEDIA = {t: t for t in ("image", "video", "audio", "file", "sticker")} | {"reel": "video", "ig_reel": "video"}
# Receipts for the page's messages: never customer messages, they move our replies' delivery on.
_RECEIPT_KEYS = {"delivery": "delivered", "read": "read"}
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
# The customer `switchboard send facebook` writes as without --user: a page-scoped id (PSID) is a
# 16-digit number; stable, so repeated sends share a conversation.
DEMO_PSID = str(int(hashlib.md5(b"switchboard-demo-customer", usedforsecurity=False).hexdigest(), 16))[:16]


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


class FacebookAdapter(MetaAdapter):
    channel = "facebook"
    label = "Facebook Messenger"
    medium = "facebook"
    platform_name = "Messenger"
    object_name = "page"
    account_key = "page_id"
    account_noun = "page"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "page_id": {
            "type": "string",
            "pattern": "\\S",
            "errorMessage": "must be a non-empty string",
            "description": "The Facebook page's id (quote it in YAML): entries for this page are this account's, "
            "since one app's webhook serves all its pages.",
        },
        "allow_sha1": ALLOW_SHA1_SETTING,
        "graph_base_url": graph_base_url_setting("user profiles are looked up and replies sent"),
    }
    # page_id is required: without it no entry is this account's, since one app may serve many pages.
    required_settings: ClassVar[tuple[str, ...]] = ("page_id",)
    required_secrets: ClassVar[tuple[str, ...]] = ("app_secret", "verify_token", "page_access_token")
    file_kinds: ClassVar[frozenset[str]] = SEND_API_FILE_KINDS

    def simulated_body(self, account: Mapping[str, Any], *, text: str, user: str | None, event_id: str | None) -> bytes:
        """One message to the account's page (its page as the entry id, so the page check passes)."""
        return build_message(str(account.get("page_id") or ""), user or DEMO_PSID, text, mid=event_id)

    def read_part(self, part: dict[str, Any], where: str, *, received_at: int) -> tuple[list[Event], list[str]]:
        return read_messaging(part, where, received_at=received_at)

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
        return FetchRequest(
            f"{graph_base(account)}/{quote(psid, safe='')}",
            params={
                "fields": "first_name,last_name",
                "access_token": token,
                "appsecret_proof": appsecret_proof(secrets["app_secret"], token),
            },
        )

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        """The Send API (:meth:`MetaAdapter.send_messenger`): the text, then each of the agent's files."""
        return self.send_messenger(reply, account, secrets, http)

    def profile_name(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        parts = [body.get(k) for k in ("first_name", "last_name")]
        return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip()) or None


def read_messaging(entry: dict[str, Any], where: str, *, received_at: int) -> tuple[list[Event], list[str]]:
    """The events of one Messenger Platform entry (its ``messaging`` and ``standby`` items), and what was left out."""
    events: list[Event] = []
    skipped: list[str] = []
    entry_time = entry.get("time")
    for item, _, standby in messaging_items(entry, where, skipped, changes="", owner="page"):
        receipt = _receipt_of(item, fallback_time=entry_time, received_at=received_at)
        if receipt is not None:
            if standby:
                receipt.data["standby"] = True
            events.append(receipt)
            continue
        events.append(_event(item, standby=standby, fallback_time=entry_time, received_at=received_at))
    return events, skipped


def _event(item: dict[str, Any], *, standby: bool, fallback_time: Any, received_at: int) -> Event:
    sender = _obj(item.get("sender"))
    customer_id, ref_type = _customer_of(sender, item)
    sent_at = millis(item.get("timestamp")) or millis(fallback_time) or received_at
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


def _receipt_of(item: Mapping[str, Any], *, fallback_time: Any, received_at: int) -> Event | None:
    """A ``delivery`` or ``read`` item as a receipt event for our replies (never a message), else None.

    Messenger acknowledges by time: every message the page sent at or before ``watermark`` was
    delivered (read); a delivery may also name the ``mids`` it covers.
    """
    if isinstance(item.get("message"), dict) or isinstance(item.get("postback"), dict):
        return None
    name = next((key for key in _RECEIPT_KEYS if key in item), None)
    if name is None:
        return None
    detail = _obj(item.get(name))
    customer_id, _ = _customer_of(_obj(item.get("sender")), item)
    watermark = millis(detail.get("watermark"))
    mids = detail.get("mids")
    platform_ids = (
        [str(m) for m in mids if isinstance(m, str | int) and not isinstance(m, bool)] if isinstance(mids, list) else []
    )
    status = _RECEIPT_KEYS[name]
    receipt: dict[str, Any] = {"status": status, "platform_ids": platform_ids}
    if watermark is not None:
        receipt["watermark"] = watermark
    sent_at = millis(item.get("timestamp")) or millis(fallback_time) or received_at
    covers = watermark if watermark is not None else ",".join(platform_ids) or sent_at
    return Event(
        key=f"{status}:{customer_id}:{covers}",
        customer=Customer(id=customer_id),
        kind=RECEIPT,
        text=None,
        sent_at=sent_at,
        data={"event": name, "receipt": receipt},
    )


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
