"""Zendesk Support: end users, tickets, comments (protocols.md section 5.1).

Contacts are end users keyed by ``external_id`` (the channel identity), so ``create_or_update`` is
one idempotent call. Tickets carry an ``Idempotency-Key`` derived from the conversation id: a retry
within Zendesk's two-hour window returns the original ticket instead of opening a second one. Keys
expire, so a retry the stage marks as such (an earlier attempt may have reached Zendesk) first looks
for the ticket by its ``external_id``, the conversation id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from switchboard.crm.base import (
    ContactFields,
    ConversationRef,
    CrmAdapter,
    CrmAuthError,
    CrmRejected,
    CrmUser,
    text_setting,
    url_setting,
)
from switchboard.crm.http import CrmHttp, basic_auth_value, describe_message, subject_for
from switchboard.envelope import Envelope
from switchboard.outbound_http import Response, Session
from switchboard.settings import CrmSettings

SUBJECT_LIMIT = 150
IDEMPOTENCY_KEY_LIMIT = 255


def idempotency_key(conversation_id: str) -> str:
    """Stable per conversation, so a retried create replays instead of duplicating; hashed when too long."""
    key = f"switchboard-ticket-{conversation_id}"
    if len(key) > IDEMPOTENCY_KEY_LIMIT or not key.isascii():
        key = "switchboard-ticket-" + hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()
    return key


def _zendesk_id(value: str) -> int | str:
    return int(value) if value.isdigit() else value


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
