"""Instagram direct messages through the Messenger Platform (interface section 8, protocols.md section 9).

Instagram comes through Meta's webhooks exactly as Messenger does: the GET ``hub.challenge``
handshake, ``X-Hub-Signature-256`` over the raw body with the app secret, one callback URL for all
the app's accounts and the Send API for replies are :mod:`switchboard.channels.meta`'s. What is
Instagram's own is the body (``object: instagram``, ``entry[].id`` the Instagram professional
account, ``entry[].messaging[]`` items from the customer's Instagram-scoped id, the IGSID), stories,
and the profile fields.

Kinds, by what the item holds:

==========================================  ===========  ==========================================
item                                        kind         notes
==========================================  ===========  ==========================================
message with text only                      text         ``quick_reply`` payload, ``reply_to`` in data
message replying to a story                 text         the story's URL kept as a ``story``
                                                         attachment, ``story_reply`` in data
message with image/video/audio/file         that media   every attachment kept, url = ``payload.url``
message with ig_reel / reel                 video        attachment type stays ``ig_reel``/``reel``
message with only a share (post, ig_post)   text if it   the share's URL kept as an attachment
                                            has text,
                                            else
                                            unsupported
message with a story_mention                event        the story's URL kept as an attachment
message.is_unsupported                      unsupported  the interface's text
message.is_deleted (the customer unsent)    event        ``data["unsend"]`` names the mid
message.is_echo                             (skipped)    the account's own message
read (messaging_seen)                       receipt      the ``mid`` read: see ``RECEIPT_STATUSES``
postback                                    postback     text = payload, ``title`` in data
reaction, referral, optin and anything      event        detail under data[<item key>]
unknown
==========================================  ===========  ==========================================

Names come from ``GET {graph_base_url}/<version>/<IGSID>?fields=name,username`` with the page
access token, off the webhook's path (the route stage caches them as it does Messenger's).
"""

from __future__ import annotations

import hashlib
import json
import secrets as _secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from switchboard.channels.base import Event, FetchRequest, Reply, Sent
from switchboard.channels.meta import (
    ALLOW_SHA1_SETTING,
    GRAPH_VERSION,
    SEND_API_FILE_KINDS,
    MetaAdapter,
    appsecret_proof,
    graph_base,
    graph_base_url_setting,
    messaging_items,
    millis,
)
from switchboard.envelope import RECEIPT, UNSUPPORTED_TEXT, Attachment, Customer, Envelope
from switchboard.settings import Account

OBJECT = "instagram"
# Attachment types whose URL is media (or a story) worth keeping; shares link to posts an agent opens there.
MEDIA_ATTACHMENT_TYPES = frozenset({"image", "video", "audio", "file", "ig_reel", "reel", "story_mention", "story"})
_KIND_OF_MEDIA = {t: t for t in ("image", "video", "audio", "file")} | {"ig_reel": "video", "reel": "video"}
# Items that are not messages, in the order they are looked for; anything else unknown is kept as an event.
_EVENT_KEYS = ("reaction", "referral", "optin", "pass_thread_control", "take_thread_control", "message_edit")
_ITEM_FRAME_KEYS = {"sender", "recipient", "timestamp"}
# The customer `switchboard send instagram` writes as without --user: an IGSID (digits), stable so
# repeated sends share a conversation.
DEMO_IGSID = str(int(hashlib.md5(b"switchboard-demo-instagram-customer", usedforsecurity=False).hexdigest(), 16))[:17]


# Instagram message ids are base64 of "ig_item:1:IGMessage:..."; a forged one looks the same.
_MID_PREFIX = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOj"


def build_message(instagram_id: str, igsid: str, text: str, mid: str | None = None, now_ms: int | None = None) -> bytes:
    """A one-message webhook body shaped and escaped as Meta sends it, so a forged send exercises the real parser."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    body = {
        "object": OBJECT,
        "entry": [
            {
                "id": instagram_id,
                "time": now,
                "messaging": [
                    {
                        "sender": {"id": igsid},
                        "recipient": {"id": instagram_id},
                        "timestamp": now,
                        "message": {
                            "mid": mid or "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOj" + _secrets.token_urlsafe(24),
                            "text": text,
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


class InstagramAdapter(MetaAdapter):
    channel = "instagram"
    label = "Instagram"
    medium = "instagram"
    platform_name = "Instagram"
    object_name = OBJECT
    account_key = "instagram_id"
    account_noun = "Instagram account"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "instagram_id": {
            "type": "string",
            "pattern": "\\S",
            "errorMessage": "must be a non-empty string",
            "description": "The Instagram professional account's id (quote it in YAML): entries whose id it is are "
            "this account's, since one app's webhook serves all its accounts.",
        },
        "allow_sha1": ALLOW_SHA1_SETTING,
        "graph_base_url": graph_base_url_setting("names are looked up and replies sent"),
    }
    required_settings: ClassVar[tuple[str, ...]] = ("instagram_id",)
    required_secrets: ClassVar[tuple[str, ...]] = ("app_secret", "verify_token", "page_access_token")
    file_kinds: ClassVar[frozenset[str]] = SEND_API_FILE_KINDS
    # Instagram's own subcode for a message outside the allowed window, beside Messenger's.
    window_subcodes: ClassVar[frozenset[int]] = MetaAdapter.window_subcodes | {2534022}

    def simulated_body(self, account: Mapping[str, Any], *, text: str, user: str | None, event_id: str | None) -> bytes:
        """One message to the account (its id as the entry's, so the entry is the account's)."""
        return build_message(str(account.get("instagram_id") or ""), user or DEMO_IGSID, text, mid=event_id)

    def read_part(self, part: dict[str, Any], where: str, *, received_at: int) -> tuple[list[Event], list[str]]:
        events: list[Event] = []
        skipped: list[str] = []
        entry_time = part.get("time")
        for item, _, standby in messaging_items(part, where, skipped, changes=" (comments, mentions in posts)", owner="account"):
            event = _event(item, fallback_time=entry_time, received_at=received_at)
            if standby:
                event.data["standby"] = True
            events.append(event)
        return events, skipped

    def attachment_request(self, attachment: Attachment, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        # Shares link to posts an agent opens on Instagram: nothing to keep.
        if attachment.type not in MEDIA_ATTACHMENT_TYPES:
            return None
        return super().attachment_request(attachment, account, secrets)

    def profile_request(self, envelope: Envelope, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        """``GET {graph}/<version>/{IGSID}?fields=name,username`` with the page access token and its ``appsecret_proof``."""
        igsid = envelope.customer.id
        if igsid == "unknown" or envelope.kind == RECEIPT:
            return None
        token = secrets["page_access_token"]
        return FetchRequest(
            f"{graph_base(account)}/{GRAPH_VERSION}/{quote(igsid, safe='')}",
            params={
                "fields": "name,username",
                "access_token": token,
                "appsecret_proof": appsecret_proof(secrets["app_secret"], token),
            },
        )

    def profile_name(self, body: Any) -> str | None:
        """The profile's name, else its username (many Instagram users set no name)."""
        if not isinstance(body, dict):
            return None
        for key in ("name", "username"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        """The Send API like Messenger's (:meth:`MetaAdapter.send_messenger`): ``HUMAN_AGENT`` up to 7 days."""
        return self.send_messenger(reply, account, secrets, http)


def _event(item: dict[str, Any], *, fallback_time: Any, received_at: int) -> Event:
    sender = _obj(item.get("sender"))
    customer_id = str(sender["id"]) if sender.get("id") else "unknown"
    customer = Customer(id=customer_id)
    sent_at = millis(item.get("timestamp")) or millis(fallback_time) or received_at
    message = item.get("message")
    postback = item.get("postback")
    read = item.get("read")
    if isinstance(message, dict):
        return _message_event(message, customer, sent_at)
    if isinstance(postback, dict):
        data: dict[str, Any] = {"event": "postback"}
        for key in ("title", "referral", "mid"):
            if postback.get(key) is not None:
                data[key] = postback[key]
        payload = postback.get("payload")
        key = f"postback:{postback['mid']}" if postback.get("mid") else f"postback:{customer_id}:{sent_at}"
        return Event(
            key=key,
            customer=customer,
            kind="postback",
            text=payload if isinstance(payload, str) else None,
            sent_at=sent_at,
            data=data,
        )
    if isinstance(read, dict):
        mid = read.get("mid")
        ids = [str(mid)] if isinstance(mid, str) and mid else []
        watermark = millis(read.get("watermark"))
        receipt: dict[str, Any] = {"status": "read", "platform_ids": ids}
        if watermark is not None:
            receipt["watermark"] = watermark
        covers = ids[0] if ids else watermark or sent_at
        return Event(
            key=f"read:{customer_id}:{covers}",
            customer=customer,
            kind=RECEIPT,
            text=None,
            sent_at=sent_at,
            data={"event": "read", "receipt": receipt},
        )
    name = next((k for k in _EVENT_KEYS if k in item), None)
    if name is None:
        name = next((k for k in item if k not in _ITEM_FRAME_KEYS), "unknown")
    detail = item.get(name)
    fields = _obj(detail)
    if name == "reaction" and fields.get("mid"):
        key = f"reaction:{fields['mid']}:{fields.get('action', 'react')}:{fields.get('reaction', fields.get('emoji', ''))}"
    else:
        key = f"{name}:{customer_id}:{sent_at}"
    return Event(key=key, customer=customer, kind="event", text=None, sent_at=sent_at, data={"event": name, name: detail})


def _message_event(message: dict[str, Any], customer: Customer, sent_at: int) -> Event:
    mid = message.get("mid")
    key = str(mid) if mid else f"message:{customer.id}:{sent_at}"
    data: dict[str, Any] = {"event": "message", "mid": mid}
    if message.get("is_deleted"):
        # The customer unsent the message: an event naming it (its own key, as the message keeps its mid).
        data.update(event="unsend", unsend={"mid": mid})
        return Event(key=f"unsend:{key}", customer=customer, kind="event", text=None, sent_at=sent_at, data=data)
    if message.get("is_unsupported"):
        return Event(key=key, customer=customer, kind="unsupported", text=UNSUPPORTED_TEXT, sent_at=sent_at, data=data)
    text = message.get("text") if isinstance(message.get("text"), str) and message.get("text") else None
    quick_reply = message.get("quick_reply")
    if isinstance(quick_reply, dict) and quick_reply.get("payload") is not None:
        data["quick_reply_payload"] = quick_reply["payload"]
    attachments: list[Attachment] = []
    reply_to = message.get("reply_to")
    if isinstance(reply_to, dict):
        story = reply_to.get("story")
        if isinstance(story, dict):
            data["story_reply"] = {"id": story.get("id"), "url": story.get("url")}
            attachments.append(Attachment(type="story", url=str(story["url"]) if story.get("url") else None))
        else:
            data["reply_to"] = reply_to
    kinds: list[str] = []
    shares: list[str] = []
    for raw in message.get("attachments") or ():
        if not isinstance(raw, dict):
            continue
        atype = str(raw.get("type") or "fallback")
        payload = _obj(raw.get("payload"))
        url = payload.get("url") or raw.get("url")
        title = raw.get("title") or payload.get("title")
        attachments.append(Attachment(type=atype, url=str(url) if url else None, name=str(title) if title else None))
        if atype == "story_mention":
            data["story_mention"] = {"id": payload.get("id"), "url": url}
            kinds.append("event")
        elif atype in _KIND_OF_MEDIA:
            kinds.append(_KIND_OF_MEDIA[atype])
        else:
            shares.append(atype)
    media = next((k for k in kinds if k != "event"), None)
    if media is not None:
        kind = media
    elif "story_mention" in data:
        kind = "event"
        data["event"] = "story_mention"
    elif text or "story_reply" in data:  # a story reply (its story kept as an attachment) is a text message
        kind = "text"
    else:
        data["shared"] = shares
        return Event(
            key=key,
            customer=customer,
            kind="unsupported",
            text=UNSUPPORTED_TEXT,
            sent_at=sent_at,
            attachments=tuple(attachments),
            data=data,
        )
    found = tuple(attachments)
    return Event(key=key, customer=customer, kind=kind, text=text, sent_at=sent_at, attachments=found, data=data)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
