"""WhatsApp Cloud API webhooks and replies (interface section 8, protocols.md section 9).

WhatsApp comes through Meta's webhooks exactly as Messenger does: the GET ``hub.challenge``
handshake and ``X-Hub-Signature-256`` over the raw body with the app secret are
:mod:`switchboard.channels.meta`'s, shared with Facebook and Instagram, not repeated here. What is
WhatsApp's own is the body (``object: whatsapp_business_account``, ``entry[].changes[].value``
holding ``messages``, ``contacts`` and ``statuses`` for one business phone number, named by
``metadata.phone_number_id``), media handed out by id, and the 24-hour customer service window.

Kinds, by the message's ``type``:

=========================================  ===========  =============================================
message type                               kind         notes
=========================================  ===========  =============================================
text                                       text         ``context`` (quoted / forwarded) and
                                                        ``referral`` (click-to-WhatsApp ad) in data
image, video, audio (``voice`` too),       that medium  one attachment by media id (``content_id``),
document, sticker                          (document:   text = caption; the bytes are fetched later
                                           ``file``)    in two steps (id -> short-lived url -> bytes)
location                                   location     text = name and address, coordinates in data
interactive button_reply / list_reply,     postback     text = the reply's id (the payload), its
nfm_reply (flows); template quick-reply                 ``title`` in data, as Messenger's postbacks
``button``
reaction, system, request_welcome,         event        detail under data[<type>]; a system message's
interactive call_permission_reply                       text is its body ("User A changed ...")
contacts, order, unsupported, unknown,     unsupported  the interface's text; what arrived kept in data
anything else
``value.statuses`` (sent, delivered,       receipt      never a message: the route stage moves the
read, failed)                                           delivery of the reply whose wamid it names
=========================================  ===========  =============================================

The customer is the sender's ``from`` (the wa_id; its business-scoped user id ``from_user_id``
only when a username hides the number) and is named by ``contacts[].profile.name``: no look-up.
Meta retries a delivery for days, and a body may repeat a message: the envelope key is the
message's ``id`` (the wamid), so each is stored once. One app's webhook carries all its numbers'
changes, so each ``changes[]`` item is a part of its own (:meth:`WhatsAppAdapter.parts`), recorded
under the account whose ``phone_number_id`` its metadata names (:meth:`MetaAdapter.parse_shared`).

Replies are text (then the agent's files by link) within 24 h of the customer's last message;
later the account's ``reengage_template`` goes instead and the reply waits for the customer's
answer (:class:`~switchboard.channels.base.SendDeferred`), or it is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets as _secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from switchboard import outbound_http
from switchboard.channels.base import (
    RECEIPT_STATUSES,
    Event,
    FetchRequest,
    OutFile,
    Reply,
    SendDeferred,
    SendRefused,
    SendRetryable,
    Sent,
    send_secret,
    transport_failure,
)
from switchboard.channels.meta import (
    ALLOW_SHA1_SETTING,
    GRAPH_VERSION,
    SEND_LIMITS,
    GraphError,
    MetaAdapter,
    appsecret_proof,
    graph_base,
    graph_base_url_setting,
    graph_error,
)
from switchboard.envelope import RECEIPT, UNSUPPORTED_TEXT, Attachment, Customer
from switchboard.settings import Account

__all__ = ["GRAPH_VERSION", "OBJECT", "TEXT_LIMIT", "WINDOW_MS", "WhatsAppAdapter", "build_message"]

OBJECT = "whatsapp_business_account"
# The customer service window: free-form messages only this long after the customer's last message.
WINDOW_MS = 24 * 3600 * 1000
TEXT_LIMIT = 4096  # characters of one text message's body
_SHOWN_REASON = 300
# Graph's error codes for WhatsApp sends (Cloud API error codes reference) that Meta's shared
# classification does not know: they are codes here, where Messenger's window is a subcode.
_OUTSIDE_WINDOW = 131047  # "Re-engagement message": more than 24 h since the customer wrote
_UNDELIVERABLE = 131026  # not a WhatsApp user, an old client, or the customer blocked the business
_TEMPORARY = frozenset({1, 2})  # "API Unknown" / "API Service": Graph's own passing trouble
_TEMPLATE_ERRORS = range(132000, 133000)  # the template does not exist, is paused, or its parameters are wrong
# Media message types, and the attachment type and kind each becomes (``voice`` is the older API's voice note).
_MEDIA = {"image": "image", "video": "video", "audio": "audio", "voice": "audio", "document": "file", "sticker": "sticker"}
# An agent's file, by its generic kind, as the Cloud API's media message type.
_SEND_TYPES = {"image": "image", "video": "video", "audio": "audio", "file": "document"}
_EVENT_TYPES = frozenset({"reaction", "system", "request_welcome"})
_POSTBACK_INTERACTIVE = ("button_reply", "list_reply", "nfm_reply")
# The demo customer `switchboard send whatsapp` writes as without --user: a wa_id is the number in
# international form without "+"; stable, so repeated sends share a conversation.
DEMO_WA_ID = "1555" + str(int(hashlib.md5(b"switchboard-demo-customer", usedforsecurity=False).hexdigest(), 16))[:8]
DEMO_NAME = "Demo Customer"
_DEMO_WABA_ID = "102290129340398"  # the business account id the documentation's example uses


def build_message(
    phone_number_id: str,
    wa_id: str,
    text: str,
    *,
    wamid: str | None = None,
    name: str | None = DEMO_NAME,
    now_s: int | None = None,
) -> bytes:
    """A one-message webhook body shaped and escaped as Meta sends it, so a forged send exercises the real parser."""
    now = int(time.time()) if now_s is None else now_s
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}] if name else [],
        "messages": [
            {
                "from": wa_id,
                "id": wamid or "wamid." + _secrets.token_urlsafe(36),
                "timestamp": str(now),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    body = {"object": OBJECT, "entry": [{"id": _DEMO_WABA_ID, "changes": [{"value": value, "field": "messages"}]}]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


class WhatsAppAdapter(MetaAdapter):
    channel = "whatsapp"
    label = "WhatsApp"
    medium = "whatsapp"
    object_name = OBJECT
    # One app's webhook carries every number's changes: each change is named by its metadata.phone_number_id.
    account_key = "phone_number_id"
    account_noun = "phone number"
    platform_name = "WhatsApp"
    rate_limit_codes: ClassVar[frozenset[int]] = frozenset({4, 80007, 130429, 131056})  # incl. the pair rate limit
    blocked_codes: ClassVar[frozenset[int]] = frozenset()
    not_permitted_codes: ClassVar[frozenset[int]] = frozenset({0, 3, 10, 190, 200, 131005, 131031})
    window_subcodes: ClassVar[frozenset[int]] = frozenset()
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "phone_number_id": {
            "type": "string",
            "pattern": "\\S",
            "errorMessage": "must be a non-empty string (the phone number id, quoted)",
            "description": "The business phone number's id (WhatsApp Manager > API Setup; quote it in YAML): "
            "entries whose metadata.phone_number_id it is are this account's, and replies are sent from it.",
        },
        "allow_sha1": ALLOW_SHA1_SETTING,
        "graph_base_url": graph_base_url_setting("media is fetched and replies are sent"),
        "reengage_template": {
            "type": "object",
            "description": "An approved message template sent when a reply falls outside the 24-hour window; "
            "the reply itself waits and is sent when the customer answers. Without it such a reply fails "
            "with outside_messaging_window.",
            "properties": {
                "name": {"type": "string", "pattern": "\\S", "errorMessage": "must be a non-empty string"},
                "language": {
                    "type": "string",
                    "pattern": "^[a-z]{2,3}(_[A-Z]{2})?$",
                    "errorMessage": "must be a template language code such as en or en_US",
                },
            },
            "required": ["name", "language"],
            "additionalProperties": False,
        },
    }
    required_settings: ClassVar[tuple[str, ...]] = ("phone_number_id",)
    required_secrets: ClassVar[tuple[str, ...]] = ("app_secret", "verify_token", "access_token")
    file_kinds: ClassVar[frozenset[str]] = frozenset(_SEND_TYPES)

    def simulated_body(self, account: Mapping[str, Any], *, text: str, user: str | None, event_id: str | None) -> bytes:
        return build_message(str(account.get("phone_number_id") or ""), user or DEMO_WA_ID, text, wamid=event_id)

    # -- inbound ---------------------------------------------------------------------------------

    def parts(self, entries: list[Any]) -> Iterator[tuple[str, Any, str | None]]:
        """One part per ``entry[].changes[]`` item, named by its ``value.metadata.phone_number_id``."""
        for e_index, entry in enumerate(entries):
            changes = entry.get("changes") if isinstance(entry, dict) else None
            if not isinstance(changes, list):
                yield f"entry[{e_index}] (no 'changes' array)", None, None
                continue
            for c_index, change in enumerate(changes):
                value = change.get("value") if isinstance(change, dict) else None
                yield f"entry[{e_index}].changes[{c_index}]", change, _phone_number_id(value) if isinstance(value, dict) else None

    def read_part(self, part: dict[str, Any], where: str, *, received_at: int) -> tuple[list[Event], list[str]]:
        skipped: list[str] = []
        field = part.get("field", "messages")
        if field != "messages":  # template status, account updates, echoes of the business app: not the customer
            return [], [f"{where} is a {str(field)[:40]!r} change, not messages"]
        value = part.get("value")
        if not isinstance(value, dict):
            return [], [f"{where} has no 'value' object"]
        events: list[Event] = []
        seen: set[str] = set()
        for event in read_value(value, where, skipped, received_at=received_at):
            if event.key in seen:  # Meta may repeat a message within a change: stored once anyway, sent once here
                skipped.append(f"{where} repeats {event.key!r}")
                continue
            seen.add(event.key)
            events.append(event)
        return events, skipped

    def attachment_request(self, attachment: Attachment, account: Account, secrets: Mapping[str, str]) -> FetchRequest | None:
        """Graph's media node for the id: JSON naming a short-lived URL (:meth:`attachment_location` reads it)."""
        if not attachment.content_id:
            return None
        token = secrets["access_token"]
        return FetchRequest(
            f"{graph_base(account)}/{GRAPH_VERSION}/{quote(attachment.content_id, safe='')}",
            headers=_bearer(token),
            params=_proof(token, secrets),
            locates=True,
        )

    def attachment_location(
        self, answer: Any, attachment: Attachment, account: Account, secrets: Mapping[str, str]
    ) -> FetchRequest | None:
        """The media's ``url``, fetched with the same bearer token (it answers 401 without it)."""
        url = answer.get("url") if isinstance(answer, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return None
        return FetchRequest(url, headers=_bearer(secrets["access_token"]))

    # -- replies ---------------------------------------------------------------------------------

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        """Text, then the agent's files as media messages by link, within 24 h of the customer's last message.

        Later (or when nobody knows when the customer last wrote) only a template is delivered: the
        account's ``reengage_template`` is sent and :class:`SendDeferred` raised so the reply waits for
        the customer's answer; without one the reply is refused (``outside_messaging_window``). The
        Cloud API has no idempotency key: the caller records the attempt first, so only a retry after
        an unknown outcome can double a message. Once the first message went, a later one that fails
        is reported in :attr:`Sent.unsent_files` rather than raised, since a retry would send the
        first again.
        """
        token = send_secret(secrets, "access_token")
        number = account.option("phone_number_id")
        if not isinstance(number, str) or not number.strip():
            raise SendRefused("the account has no phone_number_id to send from", code="not_configured")
        if not reply.text.strip() and not reply.files:
            raise SendRefused("the reply has no text to send", code="empty_reply")
        poster = _Poster(self, http, f"{graph_base(account)}/{GRAPH_VERSION}/{quote(number, safe='')}/messages", token, secrets)
        to = reply.customer_id
        now = int(time.time() * 1000)
        last = reply.last_customer_message_at
        if last is None or now - last > WINDOW_MS:
            template = reengage_template(account)
            when = "is unknown" if last is None else "was more than 24 hours ago"
            if template is None:
                raise SendRefused(
                    f"the customer's last message {when}: WhatsApp delivers only templates now, "
                    "and the account has no reengage_template",
                    code="outside_messaging_window",
                )
            name, language = template
            sent = poster.post(
                to, {"type": "template", "template": {"name": name, "language": {"code": language}}}, what="the template"
            )
            raise SendDeferred(
                f"the customer's last message {when}: sent the template {name!r} and holding the reply until they answer",
                sent=sent,
            )

        messages: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"type": "text", "text": {"body": part, "preview_url": False}}) for part in _parts(reply.text)
        ]
        unsent: list[tuple[str, str]] = []
        for file in reply.files:
            payload = _media_message(file)
            if payload is None:
                unsent.append((file.name, f"WhatsApp replies do not carry {file.kind} files"))
            else:
                messages.append((file.name, payload))
        first: Sent | None = None
        for file_name, payload in messages:
            if first is None:  # the first failing raises: nothing has reached the customer yet
                first = poster.post(to, payload, what=file_name or "the reply")
                continue
            try:
                poster.post(to, payload, what=file_name or "the reply")
            except (SendRefused, SendRetryable) as exc:
                if file_name is None:  # a later part of a long text: the customer has the start of it
                    unsent.append(("(text continued)", exc.message))
                else:
                    unsent.append((file_name, exc.message))
        if first is None:  # every file was of a kind WhatsApp does not carry, and there was no text
            raise SendRefused("; ".join(reason for _, reason in unsent) or "nothing to send", code="unsupported_file")
        return Sent(platform_id=first.platform_id, unsent_files=tuple(unsent))

    def send_failure(self, error: GraphError, response: outbound_http.Response) -> Exception:
        """Meta's classification, with the Cloud API's own codes first: its window and undeliverable
        numbers are error codes (Messenger's window is a subcode), and templates have a range of their own."""
        if error.code == _OUTSIDE_WINDOW:
            return SendRefused(error.reason, code="outside_messaging_window")
        if error.code == _UNDELIVERABLE:
            return SendRefused(error.reason, code="undeliverable")
        if error.code in _TEMPORARY:
            return SendRetryable(error.reason, retry_after=outbound_http.parse_retry_after(response.headers.get("Retry-After")))
        failure = super().send_failure(error, response)
        refused = isinstance(failure, SendRefused) and failure.code == "refused"
        if refused and isinstance(error.code, int) and error.code in _TEMPLATE_ERRORS:
            return SendRefused(error.reason, code="template_refused")
        return failure


# -- reading a body -------------------------------------------------------------------------------


def _phone_number_id(value: Mapping[str, Any]) -> str | None:
    """The business number a change's value is for: the account that records it (interface section 2)."""
    metadata = value.get("metadata")
    named = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return str(named) if isinstance(named, str | int) and not isinstance(named, bool) else None


def read_value(value: Mapping[str, Any], where: str, skipped: list[str], *, received_at: int) -> list[Event]:
    """The customer events and receipts in one change's ``value``, in the order the body gives them."""
    names = _names(value.get("contacts"))
    events: list[Event] = []
    for key in ("messages", "statuses"):
        items = value.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            skipped.append(f"{where}.value.{key} is not an array")
            continue
        for index, item in enumerate(items):
            at = f"{where}.value.{key}[{index}]"
            read = _message(item, names, received_at) if key == "messages" else _status(item, received_at)
            if isinstance(read, str):
                skipped.append(f"{at} {read}")
            else:
                events.append(read)
    errors = value.get("errors")
    if isinstance(errors, list) and errors:  # an out-of-band error about the number, not about a message
        skipped.append(f"{where}.value.errors: {_error_text(errors[0])}")
    return events


def _names(contacts: Any) -> dict[str, str]:
    """wa_id (and business-scoped user id) -> the name the customer set in WhatsApp."""
    names: dict[str, str] = {}
    for contact in contacts if isinstance(contacts, list) else ():
        if not isinstance(contact, dict):
            continue
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        if not isinstance(name, str) or not name.strip():
            continue
        for key in ("wa_id", "user_id"):
            if isinstance(contact.get(key), str) and contact[key]:
                names[contact[key]] = name.strip()
    return names


def _customer_id(message: Mapping[str, Any]) -> str | None:
    for key in ("from", "from_user_id"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _millis(value: Any, fallback: int) -> int:
    """WhatsApp's timestamps are unix seconds as strings."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value * 1000
    return fallback


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _message(message: Any, names: Mapping[str, str], received_at: int) -> Event | str:
    """One customer message as an event, or why it is left out."""
    if not isinstance(message, dict):
        return "is not an object"
    customer_id = _customer_id(message)
    if customer_id is None:
        return "names no sender ('from')"
    wamid = message.get("id")
    if not isinstance(wamid, str) or not wamid:
        return "has no message id"
    kind, text, attachments, data = _content(message)
    data["type"] = message.get("type")
    for key in ("context", "referral"):
        if isinstance(message.get(key), dict):
            data[key] = message[key]
    if message.get("from_user_id") and customer_id != message.get("from_user_id"):
        data["user_id"] = message["from_user_id"]
    if customer_id == message.get("from_user_id"):
        data["customer_ref_type"] = "user_id"
    return Event(
        key=wamid,
        customer=Customer(id=customer_id, name=names.get(customer_id) or names.get(str(message.get("from_user_id")))),
        kind=kind,
        text=text,
        sent_at=_millis(message.get("timestamp"), received_at),
        attachments=attachments,
        data=data,
    )


def _content(message: dict[str, Any]) -> tuple[str, str | None, tuple[Attachment, ...], dict[str, Any]]:
    """(kind, text, attachments, data) by the message's type."""
    mtype = str(message.get("type") or "unknown")
    detail = _obj(message.get(mtype))
    data: dict[str, Any]
    if mtype == "text":
        return "text", _text(detail.get("body")), (), {}
    if mtype in _MEDIA:
        kind = _MEDIA[mtype]
        media_id = _text(detail.get("id"))
        data = {str(k): detail[k] for k in ("mime_type", "sha256", "voice", "animated") if k in detail}
        if mtype == "voice":
            data["voice"] = True
        attachment = Attachment(
            type=kind,
            content_id=media_id,
            name=_text(detail.get("filename")),
            error=None if media_id else "not fetched: the message names no media id",
        )
        return kind, _text(detail.get("caption")), (attachment,), data
    if mtype == "location":
        location = {k: detail.get(k) for k in ("latitude", "longitude", "name", "address", "url") if k in detail}
        label = ", ".join(str(location[k]) for k in ("name", "address") if _text(location.get(k)))
        if not label and "latitude" in location and "longitude" in location:
            label = f"{location['latitude']}, {location['longitude']}"
        return "location", label or None, (), {"location": location}
    if mtype == "button":  # a template's quick-reply button
        payload, title = _text(detail.get("payload")), _text(detail.get("text"))
        return "postback", payload or title, (), {"title": title, "payload": payload}
    if mtype == "interactive":
        return _interactive(detail)
    if mtype in _EVENT_TYPES:
        data = {"event": mtype, mtype: detail}
        text = _text(detail.get("body")) if mtype == "system" else None
        return "event", text, (), data
    # contacts, order, unsupported, unknown, and any type this module does not know yet
    raw = message.get(mtype)
    data = {"unsupported": {"type": mtype, mtype: raw} if raw is not None else {"type": mtype}}
    if isinstance(message.get("errors"), list) and message["errors"]:
        data["errors"] = message["errors"]
    return "unsupported", UNSUPPORTED_TEXT, (), data


def _interactive(detail: dict[str, Any]) -> tuple[str, str | None, tuple[Attachment, ...], dict[str, Any]]:
    itype = str(detail.get("type") or "")
    reply = _obj(detail.get(itype))
    if itype in ("button_reply", "list_reply"):
        payload, title = _text(reply.get("id")), _text(reply.get("title"))
        data: dict[str, Any] = {"interactive": itype, "title": title, "payload": payload}
        if _text(reply.get("description")):
            data["description"] = reply["description"]
        return "postback", payload or title, (), data
    if itype == "nfm_reply":  # a WhatsApp Flow's answer: what the customer filled in is response_json
        return "postback", _text(reply.get("name")) or "flow", (), {"interactive": itype, "flow": reply}
    if itype == "call_permission_reply":
        return "event", None, (), {"event": itype, itype: reply}
    return "unsupported", UNSUPPORTED_TEXT, (), {"unsupported": {"type": "interactive", "interactive": detail}}


def _status(status: Any, received_at: int) -> Event | str:
    """A receipt for one of the business's messages (Switchboard's replies among them): never a customer message."""
    if not isinstance(status, dict):
        return "is not an object"
    sid, value = status.get("id"), status.get("status")
    if not isinstance(sid, str) or not sid:
        return "has no message id"
    if value not in RECEIPT_STATUSES:
        return f"is a {str(value)[:20]!r} status, not one of {', '.join(RECEIPT_STATUSES)}"
    recipient = next((status[k] for k in ("recipient_id", "recipient_user_id") if _text(status.get(k))), None)
    if recipient is None:
        return "names no recipient"
    receipt: dict[str, Any] = {"status": value, "platform_ids": [sid]}
    if value == "failed":
        errors = status.get("errors")
        receipt["error"] = _error_text(errors[0]) if isinstance(errors, list) and errors else "WhatsApp reported it failed"
    return Event(
        key=f"status:{sid}:{value}",
        customer=Customer(id=str(recipient)),
        kind=RECEIPT,
        text=None,
        sent_at=_millis(status.get("timestamp"), received_at),
        data={"receipt": receipt},
    )


def _error_text(error: Any) -> str:
    """Graph's error as an agent can read it: title (or message), its details, and the code."""
    fields = _obj(error)
    title = _text(fields.get("title")) or _text(fields.get("message")) or "unknown error"
    details = _text(_obj(fields.get("error_data")).get("details"))
    text = f"{title}: {details}" if details and details != title else title
    code = fields.get("code")
    return (f"{text} ({code})" if code is not None else text)[:_SHOWN_REASON]


# -- sending --------------------------------------------------------------------------------------


def reengage_template(account: Account) -> tuple[str, str] | None:
    """The account's template (name, language) for a reply outside the window, when it has a usable one."""
    template = account.option("reengage_template")
    if not isinstance(template, Mapping):
        return None
    name, language = template.get("name"), template.get("language")
    if isinstance(name, str) and name.strip() and isinstance(language, str) and language.strip():
        return name.strip(), language.strip()
    return None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _proof(token: str, secrets: Mapping[str, Any]) -> dict[str, str]:
    """``appsecret_proof`` when the account holds its app secret: with "Require App Secret" on, Graph needs it."""
    app_secret = secrets.get("app_secret")
    if isinstance(app_secret, str) and app_secret.strip():
        return {"appsecret_proof": appsecret_proof(app_secret, token)}
    return {}


def _parts(text: str) -> list[str]:
    """The text in bodies WhatsApp takes (4,096 characters), split at the last line break or space that fits."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > TEXT_LIMIT:
        cut = max(text.rfind("\n", 0, TEXT_LIMIT), text.rfind(" ", 0, TEXT_LIMIT))
        cut = cut if cut > TEXT_LIMIT // 2 else TEXT_LIMIT
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts


def _media_message(file: OutFile) -> dict[str, Any] | None:
    """A media message by link (WhatsApp fetches the presigned URL), or None for a kind it does not carry."""
    mtype = _SEND_TYPES.get(file.kind)
    if mtype is None:
        return None
    media: dict[str, Any] = {"link": file.url}
    if mtype == "document":
        media["filename"] = file.name
    return {"type": mtype, mtype: media}


class _Poster:
    """POSTs to the number's messages endpoint with the access token (a bearer header, as the Cloud API
    documents it), each answer classified by the adapter's :meth:`WhatsAppAdapter.send_failure`."""

    def __init__(self, adapter: WhatsAppAdapter, http: Any, url: str, token: str, secrets: Mapping[str, Any]) -> None:
        self.adapter = adapter
        self.http = http
        self.url = url
        self.token = token
        self.params = _proof(token, secrets)
        app_secret = secrets.get("app_secret")
        self.redact = outbound_http.Redactor([token, *([app_secret] if isinstance(app_secret, str) and app_secret else [])])

    def post(self, to: str, message: dict[str, Any], *, what: str) -> Sent:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **message}
        try:
            response: outbound_http.Response = self.http.request(
                "POST",
                self.url,
                limits=SEND_LIMITS,
                headers={"Content-Type": "application/json", **_bearer(self.token)},
                params=self.params,
                data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            )
        except outbound_http.OutboundError as exc:
            raise transport_failure("WhatsApp", exc, self.redact) from None
        if not response.ok:
            raise self.adapter.send_failure(
                _explained(graph_error("WhatsApp", response, self.redact), response, what, self.redact), response
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        messages = answer.get("messages") if isinstance(answer, dict) else None
        first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
        wamid = first.get("id")
        return Sent(platform_id=wamid if isinstance(wamid, str) else None)


def _explained(error: GraphError, response: outbound_http.Response, what: str, redact: outbound_http.Redactor) -> GraphError:
    """Graph's error with what was refused, its code and the Cloud API's ``error_data.details``: the agent's note shows it."""
    try:
        body = response.json()
    except ValueError:
        body = None
    details = _text(_obj(_obj(_obj(body).get("error")).get("error_data")).get("details"))
    reason = f"{error.reason} (error {error.code})" if error.code is not None else error.reason
    if details and details not in reason:
        reason = f"{reason}: {details[:_SHOWN_REASON]}"
    return dataclasses.replace(error, reason=redact(f"{what}: {reason}"))
