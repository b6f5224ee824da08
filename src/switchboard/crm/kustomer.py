"""Kustomer: customers, conversations, messages (protocols.md section 5.4).

Kustomer has no idempotency header and does not document uniqueness of ``externalId``, so a create
that might repeat an earlier one is preceded by a look-up on the external id: always for the
customer (the channel identity: another conversation may have created it), and for the
conversation only when the stage says an earlier attempt may have reached Kustomer (``retry``), so
a new conversation costs two calls, not three. Messages are *recorded* (``direction: in``), not
sent to anyone.

The look-up paths ``customers/externalId=...`` (documented) and ``conversations/externalId=...``
(the same pattern; not confirmed by the public reference) answer 404 when nothing matches.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Self
from urllib.parse import quote

from switchboard.crm.base import (
    AgentFile,
    AgentReply,
    ContactFields,
    ConversationRef,
    CrmAdapter,
    CrmAuthError,
    CrmConfigError,
    CrmRejected,
    CrmThread,
    CrmUser,
    OwnWrites,
    event_body,
    events_secret,
    has_note_ref,
    hmac_sha256,
    iso_ms,
    note_with_ref,
    presented,
    same_origin,
    truncate,
    url_setting,
)
from switchboard.crm.http import CrmHttp, channel_info, describe_message, subject_for
from switchboard.envelope import Envelope
from switchboard.errors import BadRequest, Unauthorized
from switchboard.outbound_http import Response, Session
from switchboard.settings import CrmSettings
from switchboard.web import WebhookRequest

APP_NAME = "switchboard"
# Kustomer's message channels are a closed list. A channel's declared medium (its generic kind:
# chat, facebook, whatsapp, ...) is recorded as the Kustomer channel of the same name; a medium
# Kustomer has no channel for is recorded as chat, the closest kind of conversation.
KUSTOMER_CHANNELS = frozenset({"email", "sms", "chat", "facebook", "instagram", "whatsapp", "twitter-dm", "voice"})
FALLBACK_CHANNEL = "chat"
NAME_LIMIT = 200
PREVIEW_LIMIT = 4000
NOTE_LIMIT = 10240  # a note's body is 1 to 10,240 characters
SIGNATURE_HEADER = "X-Kustomer-Webhook-Signature"
# The events that name a conversation: a new message (an agent's reply), and a conversation update (its
# customer changed: the agent linked it to another customer). The others name none.
MESSAGE_EVENT = "kustomer.message.create"
CONVERSATION_EVENT = "kustomer.conversation.update"
PAGE_SIZE = "100"
MAX_PAGES = 20
_OBJECT_ID = frozenset("0123456789abcdefABCDEF")


def _is_object_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 24 and set(value) <= _OBJECT_ID


def _related_id(resource: Mapping[str, Any], name: str) -> str | None:
    """``relationships.<name>.data.id`` of a JSON:API resource."""
    relationships = resource.get("relationships")
    related = relationships.get(name) if isinstance(relationships, dict) else None
    data = related.get("data") if isinstance(related, dict) else None
    found = data.get("id") if isinstance(data, dict) else None
    return str(found) if isinstance(found, str) and found else None


def _data(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def _token_user_id(body: dict[str, Any]) -> str | None:
    """The key's user from ``/v1/auth/tokens/current``, wherever this JSON:API document puts it."""
    data = _data(body)
    relationships = data.get("relationships")
    if isinstance(relationships, dict):
        for name in ("user", "owner"):
            related = relationships.get(name)
            if isinstance(related, dict) and isinstance(related.get("data"), dict) and related["data"].get("id"):
                return str(related["data"]["id"])
    attributes = data.get("attributes")
    if isinstance(attributes, dict):
        for name in ("user", "userId"):
            value = attributes.get(name)
            if isinstance(value, str) and value:
                return value
    return None


def kustomer_channel(channel: str, channel_map: Mapping[str, str]) -> str:
    """The Kustomer channel a message from ``channel`` is recorded under: the admin's map first, then the medium."""
    mapped = channel_map.get(channel)
    if mapped:
        return mapped
    info = channel_info(channel)
    return info.medium if info is not None and info.medium in KUSTOMER_CHANNELS else FALLBACK_CHANNEL


class KustomerAdapter(CrmAdapter):
    provider: ClassVar[str] = "kustomer"
    label: ClassVar[str] = "Kustomer"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "base_url": url_setting(
            "The organisation's API address, e.g. https://acme.api.kustomerapp.com (a trailing /v1 is ignored)."
        ),
        "channel_map": {
            "type": "object",
            "propertyNames": {"$ref": "#/$defs/id"},
            "additionalProperties": {"type": "string", "minLength": 1},
            "default": {},
            "description": (
                "Switchboard channel name -> the Kustomer channel its messages are recorded under "
                f"({', '.join(sorted(KUSTOMER_CHANNELS))}, ...). Channels not listed use their medium "
                "when Kustomer has a channel of that name, otherwise chat."
            ),
        },
    }
    required_settings: ClassVar[tuple[str, ...]] = ("base_url",)
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)
    # The key of its events (interface section 6); for Zendesk `apply` fetches it unless the file gives it.
    optional_secrets: ClassVar[tuple[str, ...]] = ("events_secret",)
    contact_name_limit: ClassVar[int | None] = NAME_LIMIT

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        channel_map: Mapping[str, str] | None = None,
        session: Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.channel_map = dict(channel_map or {})
        self._api_key = api_key
        self._me: CrmUser | None = None
        self.http = CrmHttp(self.provider, session=session, secrets=[api_key], default_retry_after=60.0)

    @classmethod
    def from_settings(cls, settings: CrmSettings, secrets: Mapping[str, Any], *, session: Session | None = None) -> Self:
        values = cls.resolve_settings(settings, secrets)
        channel_map = values["channel_map"] or {}
        if not isinstance(channel_map, Mapping):
            raise CrmConfigError("crm.channel_map must be a mapping of channel to Kustomer channel")
        return cls(
            base_url=values["base_url"],
            api_key=str(secrets["api_key"]),
            channel_map={str(k): str(v) for k, v in channel_map.items()},
            session=session,
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> Response:
        return self.http.request(method, f"{self.base_url}/v1/{path}", auth=self._headers, **kwargs)

    def whoami(self) -> CrmUser:
        if self._me is None:
            response = self._call("GET", "auth/tokens/current", kind="whoami")
            body = self.http.json_object(response)
            user_id = _token_user_id(body)
            if user_id is None:
                raise self.http.error(CrmAuthError, "the API key's token has no user", status=response.status_code)
            attributes = _data(body).get("attributes")
            name = attributes.get("name") if isinstance(attributes, dict) else None
            self._me = CrmUser(id=user_id, name=name if isinstance(name, str) else None)
        return self._me

    def _created_id(self, response: Response, what: str) -> str:
        record_id = _data(self.http.json_object(response)).get("id")
        if not record_id:
            raise self.http.error(CrmRejected, f"{what} returned no id", status=response.status_code)
        return str(record_id)

    def _existing_contact(self, customer_id: str) -> str | None:
        """The authenticated contact id, when it names a Kustomer customer (ids are 24 hex digits)."""
        if not (len(customer_id) == 24 and all(c in "0123456789abcdefABCDEF" for c in customer_id)):
            return None
        response = self._call("GET", f"customers/{customer_id}", passthrough=(404,))
        if response.status_code == 404:
            return None
        return self._created_id(response, "customer look-up")

    def _write_contact(self, contact: ContactFields, *, owner_id: str | None) -> str:
        lookup = self._call("GET", f"customers/externalId={quote(contact.identity, safe='')}", passthrough=(404,))
        if lookup.status_code != 404:
            return self._created_id(lookup, "customer look-up")
        body: dict[str, Any] = {"name": contact.name, "externalId": contact.identity}
        if contact.email:
            body["emails"] = [{"type": "home", "email": contact.email}]
        return self._created_id(self._call("POST", "customers", json_body=body), "customer create")

    def _find_ticket(self, conversation: ConversationRef, *, contact_id: str, first_message: Envelope) -> str | None:
        """The conversation an earlier attempt created, with the first message recorded if it got no further."""
        lookup = self._call("GET", f"conversations/externalId={quote(conversation.conversation_id, safe='')}", passthrough=(404,))
        if lookup.status_code == 404:
            return None
        conversation_id = self._created_id(lookup, "conversation look-up")
        attributes = _data(self.http.json_object(lookup)).get("attributes")
        count = attributes.get("messageCount") if isinstance(attributes, dict) else None
        if not (isinstance(count, int) and count > 0):  # the earlier attempt stopped before the first message
            self._record(conversation, contact_id=contact_id, conversation_id=conversation_id, message=first_message)
        return conversation_id

    def _create_ticket(
        self, conversation: ConversationRef, *, contact_id: str, first_message: Envelope, owner_id: str | None
    ) -> str:
        body: dict[str, Any] = {
            "externalId": conversation.conversation_id,
            "name": subject_for(conversation.channel, first_message, NAME_LIMIT),
            "direction": "in",
        }
        if owner_id:
            body["assignedUsers"] = [owner_id]
        created = self._call("POST", f"customers/{quote(contact_id, safe='')}/conversations", json_body=body)
        conversation_id = self._created_id(created, "conversation create")
        self._record(conversation, contact_id=contact_id, conversation_id=conversation_id, message=first_message)
        return conversation_id

    def append_message(
        self, conversation: ConversationRef, *, ticket_id: str, contact_id: str, message: Envelope, owner_id: str | None
    ) -> None:
        self._record(conversation, contact_id=contact_id, conversation_id=ticket_id, message=message)

    def _record(self, conversation: ConversationRef, *, contact_id: str, conversation_id: str, message: Envelope) -> None:
        body: dict[str, Any] = {
            "conversation": conversation_id,
            "channel": kustomer_channel(conversation.channel, self.channel_map),
            "app": APP_NAME,
            "direction": "in",
            "preview": truncate(describe_message(message), PREVIEW_LIMIT),
            "externalId": message.id,
        }
        self._call("POST", f"customers/{quote(contact_id, safe='')}/messages", json_body=body)

    # -- the way back (interface section 6) ------------------------------------------------------------

    @classmethod
    def verify_event(cls, request: WebhookRequest, secret: str, *, now: float) -> None:
        """Lowercase hex HMAC-SHA256 of the raw body with the webhook's secret, compared in constant time.

        Hex is compared case-folded (the same digest either way). No timestamp: a replay only makes
        Switchboard read the conversation again, which sends nothing twice.
        """
        refusal = Unauthorized(f"{SIGNATURE_HEADER} does not match the body", code="invalid_signature")
        key = events_secret(secret, refusal)
        received = presented(request, SIGNATURE_HEADER, refusal).lower()
        if not hmac.compare_digest(received, hmac_sha256(key, request.body).hex().encode("ascii")):
            raise refusal

    @classmethod
    def event_ticket(cls, request: WebhookRequest) -> str | None:
        """The conversation of a ``kustomer.message.create`` event (``data.relationships.conversation.data.id``;
        the payload's ``data`` is the message as ``GET /v1/messages/{id}`` returns it), or of a
        ``kustomer.conversation.update`` (``data.id``). Other events name none."""
        body = event_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not isinstance(body.get("data"), dict):
            raise BadRequest("the event body is not a Kustomer event")
        data = body["data"]
        if body["name"] == MESSAGE_EVENT and data.get("type") == "message":
            found = _related_id(data, "conversation")
        elif body["name"] == CONVERSATION_EVENT and data.get("type") == "conversation":
            found = data.get("id")
        else:
            return None
        return found if isinstance(found, str) and _is_object_id(found) else None

    def _listing(self, path: str) -> Iterator[dict[str, Any]]:
        """Each resource of a JSON:API listing, ``links.next`` followed on Kustomer's own host only."""
        url: str | None = f"{self.base_url}/v1/{path}"
        params: dict[str, str] | None = {"pageSize": PAGE_SIZE}
        for _ in range(MAX_PAGES):
            if url is None:
                return
            body = self.http.json_object(self.http.request("GET", url, auth=self._headers, params=params))
            rows = body.get("data")
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict):
                    yield row
            links = body.get("links")
            following = links.get("next") if isinstance(links, dict) else None
            if isinstance(following, str) and following.startswith("/"):
                following = f"{self.base_url}{following}"
            url = following if isinstance(following, str) and same_origin(following, self.base_url) else None
            params = None

    def read_thread(self, ticket_id: str, *, own: OwnWrites) -> CrmThread:
        """Messages with ``direction: out`` not recorded by Switchboard (its app, its external ids); the customer."""
        if not _is_object_id(ticket_id):
            raise self.http.error(CrmRejected, "the conversation id is not a Kustomer id")
        found = self._call("GET", f"conversations/{ticket_id}", passthrough=(404,))
        if found.status_code == 404:
            return CrmThread(ticket_id=ticket_id, contact_id=None)
        customer = _related_id(_data(self.http.json_object(found)), "customer")
        replies: list[AgentReply] = []
        for message in self._listing(f"conversations/{ticket_id}/messages"):
            attributes = message.get("attributes")
            if not isinstance(attributes, dict) or not message.get("id") or attributes.get("direction") != "out":
                continue
            if attributes.get("app") == APP_NAME or attributes.get("externalId") in own.message_ids:
                continue  # recorded by Switchboard: never sent back
            message_id = str(message["id"])
            files = self._files(message_id, attributes.get("attachments"))
            text = attributes.get("preview")
            if not (isinstance(text, str) and text.strip()) and not files:
                continue
            created = iso_ms(attributes.get("createdAt"))
            replies.append(
                AgentReply(
                    crm_id=message_id,
                    text=text if isinstance(text, str) else "",
                    created_at=created if created is not None else 0,
                    # A message names its sender by user id only; a name would cost a user look-up per reply.
                    author=None,
                    files=files,
                )
            )
        replies.sort(key=lambda r: (r.created_at, r.crm_id))
        return CrmThread(ticket_id=ticket_id, contact_id=customer, replies=tuple(replies))

    def _files(self, message_id: str, attachments: object) -> tuple[AgentFile, ...]:
        """A message's ``attachments`` (``_id``, ``name``, ``contentType``, ``contentLength``), each read through
        ``GET /v1/messages/{message_id}/attachments/{id}`` with the API key."""
        files: list[AgentFile] = []
        for item in attachments if isinstance(attachments, list) else []:
            if not isinstance(item, dict):
                continue
            attachment_id = item.get("_id") or item.get("id")
            if not isinstance(attachment_id, str) or not attachment_id.isalnum():
                continue
            size = item.get("contentLength")
            content_type = item.get("contentType")
            files.append(
                AgentFile(
                    name=str(item.get("name") or "file"),
                    url=f"{self.base_url}/v1/messages/{quote(message_id, safe='')}/attachments/{attachment_id}",
                    content_type=content_type if isinstance(content_type, str) else None,
                    size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                    headers=self._headers(),
                )
            )
        return tuple(files)

    def add_private_note(self, ticket_id: str, text: str, *, key: str) -> None:
        """A note on the conversation (``POST /v1/notes``), once per ``key``: the conversation's notes are read first."""
        for note in self._listing(f"conversations/{ticket_id}/notes"):
            attributes = note.get("attributes")
            if isinstance(attributes, dict) and has_note_ref(attributes.get("body"), key):
                return
        body = {"conversation": ticket_id, "body": note_with_ref(truncate(text, NOTE_LIMIT - 100), key)}
        self._call("POST", "notes", json_body=body)
