"""Zendesk Support: end users, tickets, comments (protocols.md section 5.1).

Contacts are end users keyed by ``external_id`` (the channel identity), so ``create_or_update`` is
one idempotent call. Tickets carry an ``Idempotency-Key`` derived from the conversation id: a retry
within Zendesk's two-hour window returns the original ticket instead of opening a second one. Keys
expire, so a retry the stage marks as such (an earlier attempt may have reached Zendesk) first looks
for the ticket by its ``external_id``, the conversation id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Self

from switchboard.crm.base import (
    AgentFile,
    AgentReply,
    ContactFields,
    ConversationRef,
    CrmAdapter,
    CrmAuthError,
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
    same_text,
    text_setting,
    url_setting,
)
from switchboard.crm.http import CrmHttp, basic_auth_value, describe_message, subject_for
from switchboard.envelope import Envelope
from switchboard.errors import BadRequest, Unauthorized
from switchboard.outbound_http import Response, Session
from switchboard.settings import CrmSettings
from switchboard.web import WebhookRequest

SUBJECT_LIMIT = 150
IDEMPOTENCY_KEY_LIMIT = 255
SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
EVENT_WINDOW_SECONDS = 300  # Zendesk's own advice: refuse a signature whose timestamp is further off than this
WEBHOOK_NAME = "Switchboard replies"
TRIGGER_TITLE = "Switchboard: send public replies"
# Liquid in the trigger's action: Zendesk fills in the ticket id when it notifies the webhook.
EVENT_BODY = '{"ticket_id": "{{ticket.id}}"}'
MAX_PAGES = 50  # 100 comments (or hooks) a page: a ticket with more than 5,000 comments is not one we page through


def idempotency_key(conversation_id: str) -> str:
    """Stable per conversation, so a retried create replays instead of duplicating; hashed when too long."""
    key = f"switchboard-ticket-{conversation_id}"
    if len(key) > IDEMPOTENCY_KEY_LIMIT or not key.isascii():
        key = "switchboard-ticket-" + hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()
    return key


def _zendesk_id(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def desired_webhook(endpoint: str) -> dict[str, Any]:
    return {
        "name": WEBHOOK_NAME,
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }


def desired_trigger(webhook_id: str) -> dict[str, Any]:
    """Fire on an update that adds a public comment, or that moves the ticket to another requester (the
    agent's link of the customer to a contact); read_thread decides what of it is a reply."""
    return {
        "title": TRIGGER_TITLE,
        "active": True,
        "description": "Created by `switchboard apply`: tells Switchboard to send agents' public replies to the customer.",
        "conditions": {
            "all": [{"field": "update_type", "operator": "is", "value": "Change"}],
            "any": [
                {"field": "comment_is_public", "operator": "is", "value": "true"},
                {"field": "requester_id", "operator": "changed", "value": None},
            ],
        },
        "actions": [{"field": "notification_webhook", "value": [webhook_id, EVENT_BODY]}],
    }


def _canonical(value: Any) -> Any:
    """Zendesk echoes values in its own spelling (true as "true", a missing value as null): compare those alike."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    return value if value is None else str(value)


def _trigger_differs(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return any(_canonical(found.get(k)) != _canonical(wanted[k]) for k in ("active", "conditions", "actions"))


class ZendeskAdapter(CrmAdapter):
    provider: ClassVar[str] = "zendesk"
    label: ClassVar[str] = "Zendesk"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "base_url": url_setting("The Zendesk Support address, e.g. https://acme.zendesk.com (a trailing /api/v2 is ignored)."),
        "email": text_setting(
            "The email of the agent whose API token this is; records are written as this agent.", pattern="^[^@\\s/]+@[^@\\s/]+$"
        ),
    }
    required_settings: ClassVar[tuple[str, ...]] = ("base_url", "email")
    required_secrets: ClassVar[tuple[str, ...]] = ("api_token",)
    # The key of its events (interface section 6); for Zendesk `apply` fetches it unless the file gives it.
    optional_secrets: ClassVar[tuple[str, ...]] = ("events_secret",)

    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        api_token: str,
        session: Session | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        base = base.removesuffix("/api/v2")
        self.api = f"{base}/api/v2"
        self._auth = (f"{email}/token", api_token)
        self.http = CrmHttp(self.provider, session=session, secrets=[api_token])
        self.http.redact.add_basic(*self._auth)
        self._me: CrmUser | None = None
        self._names: dict[str, str] = {}  # user id -> name, from the comments' sideloaded users

    @classmethod
    def from_settings(cls, settings: CrmSettings, secrets: Mapping[str, Any], *, session: Session | None = None) -> Self:
        values = cls.resolve_settings(settings, secrets)
        return cls(base_url=values["base_url"], email=values["email"], api_token=str(secrets["api_token"]), session=session)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": basic_auth_value(*self._auth)}

    def _call(self, method: str, path: str, **kwargs: Any) -> Response:
        return self.http.request(method, f"{self.api}/{path}", auth=self._headers, **kwargs)

    def whoami(self) -> CrmUser:
        if self._me is None:
            response = self._call("GET", "users/me.json", kind="whoami")
            user = self.http.json_object(response).get("user") or {}
            # An unauthenticated users/me answers 200 with the anonymous user (id null).
            if not isinstance(user, dict) or user.get("id") is None:
                raise self.http.error(CrmAuthError, "users/me returned the anonymous user: email/API token refused", status=401)
            self._me = CrmUser(id=str(user["id"]), name=user.get("name"))
        return self._me

    def _existing_contact(self, user_id: str) -> str | None:
        """The authenticated contact id, when it names a Zendesk user (ids are numbers)."""
        if not user_id.isdigit():
            return None
        response = self._call("GET", f"users/{user_id}.json", passthrough=(404,))
        if response.status_code == 404:
            return None
        user = self.http.json_object(response).get("user") or {}
        return str(user["id"]) if isinstance(user, dict) and user.get("id") is not None else None

    def _write_contact(self, contact: ContactFields, *, owner_id: str | None) -> str:
        user: dict[str, Any] = {"name": contact.name, "external_id": contact.identity}
        if contact.email:
            user["email"] = contact.email
        # No "role": a new user is an end user by default, and sending it would demote an agent
        # whose email a customer happens to share.
        response = self._call("POST", "users/create_or_update.json", json_body={"user": user})
        created = self.http.json_object(response).get("user") or {}
        if not isinstance(created, dict) or created.get("id") is None:
            raise self.http.error(CrmRejected, "users/create_or_update returned no user id", status=response.status_code)
        return str(created["id"])

    def _create_ticket(
        self, conversation: ConversationRef, *, contact_id: str, first_message: Envelope, owner_id: str | None
    ) -> str:
        requester = _zendesk_id(contact_id)
        ticket: dict[str, Any] = {
            "subject": subject_for(conversation.channel, first_message, SUBJECT_LIMIT),
            "comment": {"body": describe_message(first_message), "public": True, "author_id": requester},
            "requester_id": requester,
            "external_id": conversation.conversation_id,
            "tags": ["switchboard", f"switchboard_{conversation.channel}"],
        }
        if owner_id:
            ticket["assignee_id"] = _zendesk_id(owner_id)
        try:
            response = self._call(
                "POST",
                "tickets.json",
                json_body={"ticket": ticket},
                headers={"Idempotency-Key": idempotency_key(conversation.conversation_id)},
            )
        except CrmRejected as exc:
            # Same key, different body (the first message was re-described, the owner changed): the
            # ticket exists already, so find it by its external id rather than dead-lettering.
            if exc.status == 400 and "IdempotentRequestError" in exc.message:
                found = self._ticket_by_external_id(conversation.conversation_id)
                if found is not None:
                    return found
            raise
        created = self.http.json_object(response).get("ticket") or {}
        if not isinstance(created, dict) or created.get("id") is None:
            raise self.http.error(CrmRejected, "tickets create returned no ticket id", status=response.status_code)
        return str(created["id"])

    def _find_ticket(self, conversation: ConversationRef, *, contact_id: str, first_message: Envelope) -> str | None:
        return self._ticket_by_external_id(conversation.conversation_id)

    def _ticket_by_external_id(self, conversation_id: str) -> str | None:
        response = self._call("GET", "tickets.json", params={"external_id": conversation_id})
        tickets = self.http.json_object(response).get("tickets") or []
        for ticket in tickets if isinstance(tickets, list) else []:
            if isinstance(ticket, dict) and ticket.get("id") is not None:
                return str(ticket["id"])
        return None

    def append_message(
        self, conversation: ConversationRef, *, ticket_id: str, contact_id: str, message: Envelope, owner_id: str | None
    ) -> None:
        comment = {"body": describe_message(message), "public": True, "author_id": _zendesk_id(contact_id)}
        ticket: dict[str, Any] = {"comment": comment}
        if owner_id:
            ticket["assignee_id"] = _zendesk_id(owner_id)  # default_user.always: the admin keeps the ticket
        self._call("PUT", f"tickets/{ticket_id}.json", json_body={"ticket": ticket})

    # -- the way back (interface section 6) ------------------------------------------------------------

    @classmethod
    def verify_event(cls, request: WebhookRequest, secret: str, *, now: float) -> None:
        """base64(HMAC-SHA256(secret, timestamp + raw body)) in constant time, then the 5-minute window.

        The window is checked only once the signature holds, so what a forger learns is only "refused".
        """
        refusal = Unauthorized(f"{SIGNATURE_HEADER} does not match the body", code="invalid_signature")
        key = events_secret(secret, refusal)
        received = presented(request, SIGNATURE_HEADER, refusal)
        stamp = presented(request, TIMESTAMP_HEADER, refusal)
        expected = base64.b64encode(hmac_sha256(key, stamp + request.body))
        if not hmac.compare_digest(received, expected):
            raise refusal
        at = iso_ms(stamp.decode("utf-8", "replace"))
        if at is None or abs(now * 1000 - at) > EVENT_WINDOW_SECONDS * 1000:
            raise Unauthorized(
                f"{TIMESTAMP_HEADER} is not within {EVENT_WINDOW_SECONDS // 60} minutes of now", code="stale_timestamp"
            )

    @classmethod
    def event_ticket(cls, request: WebhookRequest) -> str | None:
        """The trigger's body ``{"ticket_id": "<id>"}`` (Liquid renders a string; a number is taken too)."""
        body = event_body(request)
        if not isinstance(body, dict) or "ticket_id" not in body:
            raise BadRequest('the event body is not {"ticket_id": ...}')
        value = body["ticket_id"]
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return str(value)
        if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
            return str(int(value.strip()))
        raise BadRequest("ticket_id is not a Zendesk ticket id")

    def _pages(self, path: str, key: str, params: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Each item of a listing, following ``next_page`` (offset) or ``links.next`` (cursor) on Zendesk's own host."""
        url: str | None = f"{self.api}/{path}"
        query: Mapping[str, str] | None = params
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self.http.request("GET", url, auth=self._headers, params=query)
            body = self.http.json_object(response)
            self._sideloaded(body)  # before the items: a comment's author is named from its own page
            items = body.get(key)
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    yield item
            links, meta = body.get("links"), body.get("meta")
            links = links if isinstance(links, dict) else {}
            meta = meta if isinstance(meta, dict) else {}
            following = links.get("next") if meta.get("has_more") else body.get("next_page")
            url = following if isinstance(following, str) and same_origin(following, self.api) else None
            query = None  # the next page's URL carries its own query

    def _sideloaded(self, body: Mapping[str, Any]) -> None:
        users = body.get("users")
        for user in users if isinstance(users, list) else []:
            if isinstance(user, dict) and user.get("id") is not None and isinstance(user.get("name"), str):
                self._names[str(user["id"])] = user["name"]

    def read_thread(self, ticket_id: str, *, own: OwnWrites) -> CrmThread:
        """Public comments by anyone but the requester (now or before: ``own.contact_ids``), oldest first."""
        self._names = {}
        response = self._call("GET", f"tickets/{ticket_id}.json", passthrough=(404,))
        if response.status_code == 404:
            return CrmThread(ticket_id=ticket_id, contact_id=None)
        ticket = self.http.json_object(response).get("ticket") or {}
        requester = ticket.get("requester_id") if isinstance(ticket, dict) else None
        contact_id = str(requester) if requester is not None else None
        not_agents = set(own.contact_ids) | ({contact_id} if contact_id else set())
        replies: list[AgentReply] = []
        for comment in self._pages(f"tickets/{ticket_id}/comments.json", "comments", {"include": "users"}):
            if comment.get("public") is not True or comment.get("id") is None:
                continue  # a private note is never sent
            author = str(comment.get("author_id"))
            text = str(comment.get("plain_body") or comment.get("body") or "")
            if author in not_agents or any(same_text(text, own_text) for own_text in own.texts):
                continue  # the customer's own message, as Switchboard wrote it
            created = iso_ms(comment.get("created_at"))
            replies.append(
                AgentReply(
                    crm_id=str(comment["id"]),
                    text=text,
                    created_at=created if created is not None else 0,
                    author=self._names.get(author),
                    files=self._files(comment.get("attachments")),
                )
            )
        replies.sort(key=lambda r: (r.created_at, int(r.crm_id) if r.crm_id.isdigit() else 0))
        return CrmThread(ticket_id=ticket_id, contact_id=contact_id, replies=tuple(replies))

    def _files(self, attachments: object) -> tuple[AgentFile, ...]:
        files: list[AgentFile] = []
        for item in attachments if isinstance(attachments, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("content_url"), str):
                continue
            url = item["content_url"]
            size = item.get("size")
            files.append(
                AgentFile(
                    name=str(item.get("file_name") or "file"),
                    url=url,
                    content_type=item.get("content_type") if isinstance(item.get("content_type"), str) else None,
                    size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                    # The token goes only to the account's own host (private attachments need it); a CDN URL gets none.
                    headers=self._headers() if same_origin(url, self.api) else {},
                )
            )
        return tuple(files)

    def add_private_note(self, ticket_id: str, text: str, *, key: str) -> None:
        """A private comment by the API token's user, once per ``key`` (looked for first: Zendesk takes no key here)."""
        self._names = {}
        for comment in self._pages(f"tickets/{ticket_id}/comments.json", "comments"):
            if comment.get("public") is False and has_note_ref(comment.get("plain_body") or comment.get("body"), key):
                return
        comment = {"body": note_with_ref(text, key), "public": False}
        self._call("PUT", f"tickets/{ticket_id}.json", json_body={"ticket": {"comment": comment}})

    def ensure_events_hook(self, endpoint: str) -> str | None:
        """Exactly one webhook named :data:`WEBHOOK_NAME` calling ``endpoint`` and one trigger notifying it;
        what already matches is left alone (no write), so a second call changes nothing. Returns the signing secret."""
        self._names = {}
        wanted = desired_webhook(endpoint)
        hook = next(
            (
                h
                for h in self._pages("webhooks", "webhooks", {"filter[name_contains]": WEBHOOK_NAME})
                if h.get("name") == WEBHOOK_NAME
            ),
            None,
        )
        if hook is None:
            created = self._call("POST", "webhooks", json_body={"webhook": wanted})
            hook = self.http.json_object(created).get("webhook") or {}
        elif any(_canonical(hook.get(k)) != _canonical(v) for k, v in wanted.items()):
            self._call("PUT", f"webhooks/{hook['id']}", json_body={"webhook": wanted})
        if not isinstance(hook, dict) or hook.get("id") is None:
            raise self.http.error(CrmRejected, "webhooks create returned no webhook id")
        webhook_id = str(hook["id"])
        secret_body = self.http.json_object(self._call("GET", f"webhooks/{webhook_id}/signing_secret"))
        signing = secret_body.get("signing_secret") or {}
        secret = signing.get("secret") if isinstance(signing, dict) else None
        if not isinstance(secret, str) or not secret.strip():
            raise self.http.error(CrmRejected, "the webhook's signing_secret answer has no secret")
        self.http.redact.add(secret)
        trigger = desired_trigger(webhook_id)
        found = next((t for t in self._pages("triggers.json", "triggers") if t.get("title") == TRIGGER_TITLE), None)
        if found is None:
            self._call("POST", "triggers.json", json_body={"trigger": trigger})
        elif _trigger_differs(found, trigger):
            self._call("PUT", f"triggers/{found['id']}.json", json_body={"trigger": trigger})
        return secret
