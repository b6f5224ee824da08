"""Dynamics 365 / Dataverse Web API: contacts, incidents (cases), annotations (protocols.md 5.3).

Dataverse has no idempotency header, but it lets the client choose primary keys. Every record this
adapter writes gets a uuid5 derived from what it stands for (the channel identity, the conversation
id, the message id), so:

* the contact is ``PATCH contacts(<id>)``, an upsert that creates or refreshes the same row;
* the incident and each note are ``PATCH ...(<id>)`` with ``If-None-Match: *``, a create-once: a
  retry after a lost response gets 412 and the id is already known.

The application user (client-credentials token, WhoAmI) owns what no agent can be credited with,
because Dynamics cannot leave a case without an owner.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, ClassVar, Self

from switchboard.crm.base import (
    AgentReply,
    ContactFields,
    ConversationRef,
    CrmAdapter,
    CrmAuthError,
    CrmRejected,
    CrmThread,
    CrmUser,
    OwnWrites,
    check_shared_key,
    event_body,
    iso_ms,
    same_origin,
    text_setting,
    truncate,
    url_setting,
)
from switchboard.crm.http import CrmHttp, describe_message, subject_for
from switchboard.envelope import Envelope
from switchboard.errors import BadRequest
from switchboard.outbound_http import Response, Session
from switchboard.settings import CrmSettings
from switchboard.web import WebhookRequest

DEFAULT_AUTHORITY_URL = "https://login.microsoftonline.com"
API_PATH = "api/data/v9.2"
LASTNAME_LIMIT = 50
TITLE_LIMIT = 200
DESCRIPTION_LIMIT = 2000
NOTE_SUBJECT_LIMIT = 500
NOTE_TEXT_LIMIT = 100000
# Renew a little before expiry so a call never starts with a token about to lapse mid-flight.
TOKEN_MARGIN_SECONDS = 120
# Fixed namespace: the same conversation must map to the same record id in every process, forever.
SWITCHBOARD_NAMESPACE = uuid.UUID("6f1d9a52-3c1e-5b8a-9a44-2d0c5e7b1f30")
_BARE_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_GUID = re.compile(r"\(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\)\s*$")


def record_id(kind: str, key: str) -> str:
    """The deterministic primary key of the ``kind`` record standing for ``key``."""
    return str(uuid.uuid5(SWITCHBOARD_NAMESPACE, f"{kind}:{key}"))


REPLY_PREFIX = "Reply"  # interface section 6: a note on the case is a reply when its title starts with this
NOTE_TITLE = "Switchboard: reply not delivered"
MAX_PAGES = 20
_FORMATTED = "@OData.Community.Display.V1.FormattedValue"


class _Text(HTMLParser):
    """The text of a note's rich-text body (the timeline editor stores HTML), paragraphs as lines."""

    _BREAKS = frozenset({"br", "p", "div", "li", "tr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BREAKS and self.parts:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def note_text(value: object) -> str:
    """A note's ``notetext`` as the customer should read it: plain text kept, HTML reduced to its text."""
    if not isinstance(value, str):
        return ""
    if "<" not in value or ">" not in value:
        return value.strip()
    parser = _Text()
    parser.feed(value)
    parser.close()
    rows = [" ".join(row.split()) for row in "".join(parser.parts).split("\n")]
    return "\n".join(row for row in rows if row)


def _pairs(value: object) -> dict[str, Any]:
    """A DataContract collection (``[{"key", "value"}...]``) as a dict; the JSON form Dataverse posts."""
    if isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = item.get("value")
    return out


def entity_id_from_header(value: str | None) -> str | None:
    """``OData-EntityId: https://org.crm.dynamics.com/api/data/v9.2/incidents(<guid>)`` -> ``<guid>``."""
    if not value:
        return None
    match = _GUID.search(value)
    return match.group(1).lower() if match else None


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float


class DynamicsAdapter(CrmAdapter):
    provider: ClassVar[str] = "dynamics"
    label: ClassVar[str] = "Dynamics 365"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "org_url": url_setting("The environment's address, e.g. https://acme.crm.dynamics.com (also the token's audience)."),
        "tenant_id": text_setting(
            "The Microsoft Entra tenant (directory) id or domain that issues the application's token.",
            pattern="^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$",
        ),
        "authority_url": url_setting(
            "The token authority; another one only for a national cloud.", default=DEFAULT_AUTHORITY_URL
        ),
        "return_representation": {
            "type": "boolean",
            "default": False,
            "description": "Ask Dataverse to answer writes with the record (Prefer: return=representation).",
        },
        "case_origin_code": {
            "type": ["integer", "null"],
            "default": None,
            "description": "The Origin option value (caseorigincode) of new cases; null leaves the org's default.",
        },
    }
    required_settings: ClassVar[tuple[str, ...]] = ("org_url", "tenant_id")
    required_secrets: ClassVar[tuple[str, ...]] = ("client_id", "client_secret")
    # The key of its events (interface section 6); for Zendesk `apply` fetches it unless the file gives it.
    optional_secrets: ClassVar[tuple[str, ...]] = ("events_secret",)
    contact_name_limit: ClassVar[int | None] = LASTNAME_LIMIT

    def __init__(
        self,
        *,
        org_url: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority_url: str = DEFAULT_AUTHORITY_URL,
        return_representation: bool = False,
        case_origin_code: int | None = None,
        session: Session | None = None,
    ) -> None:
        self.org_url = org_url.rstrip("/")
        self.api = f"{self.org_url}/{API_PATH}"
        self.token_url = f"{authority_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self.return_representation = return_representation
        self.case_origin_code = case_origin_code
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: _Token | None = None
        self._me: CrmUser | None = None
        # The client id is stored as a secret like the rest of the credentials: no error repeats it either.
        self.http = CrmHttp(self.provider, session=session, secrets=[client_secret, client_id])

    @classmethod
    def from_settings(cls, settings: CrmSettings, secrets: Mapping[str, Any], *, session: Session | None = None) -> Self:
        values = cls.resolve_settings(settings, secrets)
        return cls(
            org_url=values["org_url"],
            tenant_id=values["tenant_id"],
            client_id=str(secrets["client_id"]),
            client_secret=str(secrets["client_secret"]),
            authority_url=values["authority_url"] or DEFAULT_AUTHORITY_URL,
            return_representation=bool(values["return_representation"]),
            case_origin_code=values["case_origin_code"],
            session=session,
        )

    # -- authentication ----------------------------------------------------------------------

    def _access_token(self) -> str:
        if self._token is None or self._token.expires_at <= time.time():
            response = self.http.request(
                "POST",
                self.token_url,
                kind="token",
                form={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "scope": f"{self.org_url}/.default",
                },
                passthrough=(400, 401),
            )
            body = self.http.json_object(response)
            if response.status_code >= 400 or "access_token" not in body:
                error = str(body.get("error") or "error")
                description = str(body.get("error_description") or "").split("\r\n")[0]
                raise self.http.error(
                    CrmAuthError,
                    f"token request refused: HTTP {response.status_code}: {error}: {description}",
                    status=response.status_code,
                )
            value = str(body["access_token"])
            self.http.redact.add(value)
            lifetime = float(body.get("expires_in") or 3599)
            self._token = _Token(value=value, expires_at=time.time() + max(lifetime - TOKEN_MARGIN_SECONDS, 30.0))
        return self._token.value

    def _forget_token(self) -> None:
        self._token = None

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._access_token()}",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        }

    def _call(self, method: str, path: str, **kwargs: Any) -> Response:
        return self.http.request(method, f"{self.api}/{path}", auth=self._headers, refresh=self._forget_token, **kwargs)

    # -- writes --------------------------------------------------------------------------------

    def _write(self, entity_set: str, key: str, body: dict[str, Any], *, create_only: bool) -> str:
        """PATCH one row at a client-chosen key; the answer may be 204+OData-EntityId, 200/201 with the row, or 412."""
        headers: dict[str, str] = {}
        if create_only:
            headers["If-None-Match"] = "*"
        if self.return_representation:
            headers["Prefer"] = "return=representation"
        response = self._call(
            "PATCH", f"{entity_set}({key})", json_body=body, headers=headers, passthrough=(412,) if create_only else ()
        )
        if response.status_code == 412:
            return key  # created by an earlier attempt: the id is the one we chose
        found = entity_id_from_header(response.headers.get("OData-EntityId"))
        if found is None and response.content:
            row = self.http.json_object(response)
            primary = entity_set[:-1] + "id" if entity_set != "annotations" else "annotationid"
            value = row.get(primary)
            found = str(value).lower() if value else None
        return found or key

    def whoami(self) -> CrmUser:
        if self._me is None:
            response = self._call("GET", "WhoAmI", kind="whoami")
            user_id = self.http.json_object(response).get("UserId")
            if not user_id:
                raise self.http.error(CrmRejected, "WhoAmI returned no UserId", status=response.status_code)
            self._me = CrmUser(id=str(user_id))
        return self._me

    def _existing_contact(self, contact_id: str) -> str | None:
        """The authenticated contact id, when it names a contact row (Dataverse keys are GUIDs)."""
        if not _BARE_GUID.match(contact_id):
            return None
        response = self._call("GET", f"contacts({contact_id})", params={"$select": "contactid"}, passthrough=(404,))
        if response.status_code == 404:
            return None
        found = self.http.json_object(response).get("contactid")
        return str(found).lower() if found else None

    def _write_contact(self, contact: ContactFields, *, owner_id: str | None) -> str:
        body: dict[str, Any] = {"lastname": contact.name}
        if contact.email:
            body["emailaddress1"] = contact.email
        if owner_id:
            # Without an explicit owner a new row belongs to the application user and an existing
            # row keeps whoever an agent gave it to.
            body["ownerid@odata.bind"] = f"/systemusers({owner_id})"
        return self._write("contacts", record_id("contact", contact.identity), body, create_only=False)

    def ticket_owner(self, owner_id: str | None) -> str:
        """Dynamics cannot leave a case unassigned: without a default user the application user owns it."""
        return owner_id or self.whoami().id

    def _create_ticket(
        self, conversation: ConversationRef, *, contact_id: str, first_message: Envelope, owner_id: str | None
    ) -> str:
        # A create-once PATCH on an id derived from the conversation: a retry gets 412 and the same id.
        owner = self.ticket_owner(owner_id)
        body: dict[str, Any] = {
            "title": subject_for(conversation.channel, first_message, TITLE_LIMIT),
            "description": truncate(describe_message(first_message), DESCRIPTION_LIMIT),
            "customerid_contact@odata.bind": f"/contacts({contact_id})",
            "ownerid@odata.bind": f"/systemusers({owner})",
        }
        if self.case_origin_code is not None:
            body["caseorigincode"] = self.case_origin_code
        return self._write("incidents", record_id("incident", conversation.conversation_id), body, create_only=True)

    def append_message(
        self, conversation: ConversationRef, *, ticket_id: str, contact_id: str, message: Envelope, owner_id: str | None
    ) -> None:
        text = describe_message(message)
        body: dict[str, Any] = {
            "subject": subject_for(conversation.channel, message, NOTE_SUBJECT_LIMIT),
            "notetext": truncate(text, NOTE_TEXT_LIMIT),
            "isdocument": False,
            "objectid_incident@odata.bind": f"/incidents({ticket_id})",
        }
        if owner_id:
            body["ownerid@odata.bind"] = f"/systemusers({owner_id})"  # default_user.always
        self._write("annotations", record_id("annotation", message.id), body, create_only=True)

    # -- the way back (interface section 6) ------------------------------------------------------------

    @classmethod
    def verify_event(cls, request: WebhookRequest, secret: str, *, now: float) -> None:
        """The service endpoint's HttpHeader authentication sends ``X-Switchboard-Key``; constant time."""
        check_shared_key(request, secret)

    @classmethod
    def event_ticket(cls, request: WebhookRequest) -> str | None:
        """The case a ``RemoteExecutionContext`` is about: a note's ``objectid`` when it is an incident (the step on
        Create of annotation), or the incident itself (an optional step on Update of incident: its customer changed).
        Anything else (a note on an account, another table) names no case."""
        body = event_body(request)
        if not isinstance(body, dict) or "PrimaryEntityName" not in body:
            raise BadRequest("the event body is not a Dataverse RemoteExecutionContext")
        target = _pairs(body.get("InputParameters")).get("Target")
        if not isinstance(target, dict):
            return None
        entity = body.get("PrimaryEntityName")
        if entity == "annotation":
            reference = _pairs(target.get("Attributes")).get("objectid")
            if isinstance(reference, dict) and reference.get("LogicalName") == "incident":
                found = reference.get("Id")
                return str(found).lower() if isinstance(found, str) and _BARE_GUID.match(found) else None
            return None
        if entity == "incident":
            found = target.get("Id") or body.get("PrimaryEntityId")
            return str(found).lower() if isinstance(found, str) and _BARE_GUID.match(found) else None
        return None

    def _annotations(self, incident_id: str) -> Iterator[dict[str, Any]]:
        """The case's notes oldest first: one filtered query (protocols 8.6), its ``@odata.nextLink`` pages followed."""
        url: str | None = f"{self.api}/annotations"
        params: dict[str, str] | None = {
            "$filter": f"_objectid_value eq {incident_id}",
            "$orderby": "createdon asc",
            "$select": "annotationid,subject,notetext,createdon,_createdby_value",
        }
        headers = {"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue",odata.maxpagesize=500'}
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self.http.request(
                "GET", url, auth=self._headers, refresh=self._forget_token, params=params, headers=headers
            )
            body = self.http.json_object(response)
            rows = body.get("value")
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict):
                    yield row
            following = body.get("@odata.nextLink")
            url = following if isinstance(following, str) and same_origin(following, self.api) else None
            params = None

    def read_thread(self, ticket_id: str, *, own: OwnWrites) -> CrmThread:
        """Notes titled ``Reply...`` on the case, never one of Switchboard's own note ids; the case's ``customerid``."""
        if not _BARE_GUID.match(ticket_id):
            raise self.http.error(CrmRejected, "the case id is not a Dataverse id")
        case = self._call("GET", f"incidents({ticket_id})", params={"$select": "_customerid_value"}, passthrough=(404,))
        if case.status_code == 404:
            return CrmThread(ticket_id=ticket_id, contact_id=None)
        customer = self.http.json_object(case).get("_customerid_value")
        mine = {record_id("annotation", message_id) for message_id in own.message_ids}
        replies: list[AgentReply] = []
        for note in self._annotations(ticket_id):
            note_id = str(note.get("annotationid") or "").lower()
            subject = note.get("subject")
            if not note_id or note_id in mine or not isinstance(subject, str):
                continue
            if not subject.strip().startswith(REPLY_PREFIX):
                continue  # an internal note: only a note titled "Reply..." goes to the customer
            text = note_text(note.get("notetext"))
            if not text:
                continue
            created = iso_ms(note.get("createdon"))
            author = note.get(f"_createdby_value{_FORMATTED}")
            replies.append(
                AgentReply(
                    crm_id=note_id,
                    text=text,
                    created_at=created if created is not None else 0,
                    author=author if isinstance(author, str) else None,
                )
            )
        replies.sort(key=lambda r: r.created_at)
        return CrmThread(ticket_id=ticket_id, contact_id=str(customer).lower() if customer else None, replies=tuple(replies))

    def add_private_note(self, ticket_id: str, text: str, *, key: str) -> None:
        """A note (never titled ``Reply``) at an id derived from ``key``: create-once, so a retry adds nothing."""
        body: dict[str, Any] = {
            "subject": NOTE_TITLE,
            "notetext": truncate(text, NOTE_TEXT_LIMIT),
            "isdocument": False,
            "objectid_incident@odata.bind": f"/incidents({ticket_id})",
        }
        self._write("annotations", record_id("note", key), body, create_only=True)
