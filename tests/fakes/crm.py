"""A fake CRM: one local HTTP server that answers as Zendesk, Salesforce, Dynamics 365 and Kustomer.

It keeps the records it is asked to write and behaves like the real APIs where exactly-once depends
on it (protocols.md section 5): Zendesk replays a ticket create with the same ``Idempotency-Key``
and refuses the key with another body; Salesforce upserts by external id (201 created, 200
updated) and lets assignment rules overwrite ``OwnerId`` unless ``Sforce-Auto-Assign: FALSE``;
Dynamics upserts on a client-chosen key, answers ``If-None-Match: *`` on an existing row with 412,
and answers 204 with ``OData-EntityId`` or 201 with the row (``Prefer: return=representation``, or
``representation = True`` to force it); Kustomer finds customers and conversations by
``externalId``. Creates that the real API does not deduplicate (a Zendesk ticket without a key, a
Kustomer customer) are not deduplicated here either, so a test sees every duplicate.

Small API (for the CRM tests, the e2e suite and later load-and-fault runs)::

    with FakeCrm() as crm:
        section = crm.config("zendesk")          # the config file's `crm:` section, secrets included
        crm.fail_next(1, status=500)             # the next API call answers 500
        crm.fail_next(1, status=429, retry_after=1)
        crm.fail_next(1, status=422, message="Subject: cannot be blank")  # in the CRM's own error shape
        crm.fail_rate(0.2, status=503)           # a fifth of API calls fail, at random
        crm.expire_tokens("salesforce")          # issued access tokens stop working: 401, then refresh
        crm.records("zendesk", "tickets")        # what was written, oldest first
        crm.contacts("zendesk", identity)        # the contacts keyed on a channel identity
        crm.tickets("zendesk", conversation_id)  # the tickets of a conversation
        crm.texts("zendesk", ticket)             # the customer's messages on a ticket, oldest first
        crm.calls(provider="zendesk", kind="api")  # the request log (kind: token | whoami | api)

The way back (interface section 6)::

        crm.agent_reply("zendesk", ticket_id, "It left today", author="Agent Smith", files=[("map.png", "image/png", b"...")])
        crm.agent_note("zendesk", ticket_id, "internal only")    # never a reply
        crm.notes("zendesk", ticket_id)                          # Switchboard's private notes, oldest first
        crm.set_ticket_contact("zendesk", ticket_id, other_id)   # the agent moved the ticket to another contact
        body, headers = crm.event("zendesk", ticket_id, secret)  # what the CRM posts to /crm/zendesk/events
        headers = crm.sign_event("kustomer", body, secret)       # signed as the CRM signs it
        crm.zendesk_hooks()                                      # (webhooks, triggers) apply created
        crm.page_size = 2                                        # listings page every 2 records

Faults apply to ``api`` calls only unless ``kinds`` says otherwise, so token and who-am-I calls
stay predictable. Runs on 127.0.0.1, port 0, in a daemon thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# The CRMs this server answers as. The code's list is switchboard.crm.registry.names(); the CRM
# contract suite fails for a registered CRM missing here.
PROVIDERS = ("zendesk", "salesforce", "dynamics", "kustomer")

ZENDESK_EMAIL = "admin@fake-crm.example"
ZENDESK_TOKEN = "fake-zendesk-api-token-7Qm2"
ZENDESK_ADMIN_ID = 1001

SF_CLIENT_ID = "3MVG9fakeSalesforceConnectedApp"
SF_CLIENT_SECRET = "fake-sf-client-secret-9d1e"
SF_REFRESH_TOKENS = ("5Aep861.fake-refresh-admin-one", "5Aep861.fake-refresh-admin-two")
SF_ORG_ID = "00D5g000004Jj18"
SF_API_VERSION = "59.0"
SF_CONTACT_FIELD = "Switchboard_Identity__c"
SF_CASE_FIELD = "Switchboard_Conversation_Id__c"
SF_DEFAULT_CASE_OWNER = "00G5g000000CaseQAAS"  # where assignment rules put a case (a queue)

DYN_TENANT = "6f6c2f4e-0d3a-4c1e-9b55-1f3a2b4c5d6e"
DYN_CLIENT_ID = "0b6e8f3a-2d4c-4f1e-9a7b-5c3d2e1f0a9b"
DYN_CLIENT_SECRET = "fake-dyn-secret~Qx7.Yb3"
DYN_APP_USER = "7d2b1c4e-5f6a-4b8c-9d0e-1f2a3b4c5d6e"

KUSTOMER_API_KEY = "fake-kustomer-api-key.eyJ1c2VyIjoiNjQifQ"
KUSTOMER_USER = "64b7f0e2c9a1d3001f2e4a00"
KUSTOMER_CHANNELS = frozenset(
    {"email", "sms", "chat", "facebook", "twitter-dm", "twitter-tweet", "voice", "instagram", "whatsapp"}
)

# Credentials each CRM refuses (merged over the good ones by ``config(provider, secrets=...)``).
WRONG_SECRETS: dict[str, dict[str, Any]] = {
    "zendesk": {"api_token": "wrong-token-0000"},
    "salesforce": {"refresh_tokens": ["5Aep861.wrong-one", "5Aep861.wrong-two"]},
    "dynamics": {"client_secret": "wrong-secret-0000"},
    "kustomer": {"api_key": "wrong-key-0000"},
}
# What each CRM calls a contact and a ticket, as ``records()`` keys them.
RECORD_KINDS: dict[str, tuple[str, str]] = {
    "zendesk": ("users", "tickets"),
    "salesforce": ("Contact", "Case"),
    "dynamics": ("contacts", "incidents"),
    "kustomer": ("customers", "conversations"),
}
# The call that creates a ticket (method, a part of its path): where a test injects a fault.
TICKET_CREATE: dict[str, tuple[str, str]] = {
    "zendesk": ("POST", "/tickets.json"),
    "salesforce": ("PATCH", "/sobjects/Case/"),
    "dynamics": ("PATCH", "/incidents("),
    "kustomer": ("POST", "/conversations"),
}

# The events secret each CRM signs (or keys) its events with, as a test gives it in secrets.events_secret.
EVENTS_SECRETS: dict[str, str] = {
    "zendesk": "fake-zendesk-signing-secret-Jq8",
    "salesforce": "fake-sf-events-key-3Wc9",
    "dynamics": "fake-dyn-events-key-7Rt2",
    "kustomer": "fake-kustomer-webhook-secret-5Hd1",
}
AGENT_NAME = "Agent Smith"
ZENDESK_AGENT_ID = 2001
SF_AGENT_ID = "0055g00000Agt01AAA"
DYN_AGENT = "4e1c2b3a-9d8f-4a7b-8c6d-5e4f3a2b1c0d"
KUSTOMER_AGENT = "64b7f0e2c9a1d3001f2e4a77"
NOTE_MARK = "Switchboard ref: "  # how the adapters end a private note (their idempotency for CRMs without ids)
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ENTITY = re.compile(r"^(\w+)\(([0-9a-fA-F-]{36})\)$")


def salesforce_18(id15: str) -> str:
    """The case-safe 18-character form of a 15-character Salesforce id."""
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << j for j, c in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if c.isupper())
        suffix += _CHECKSUM[bits]
    return id15 + suffix


SF_USERS = {token: salesforce_18(f"0055g00000Adm{n:02d}") for n, token in enumerate(SF_REFRESH_TOKENS, start=1)}


@dataclass
class Call:
    provider: str
    method: str
    path: str
    query: dict[str, str]
    status: int
    kind: str  # token | whoami | api
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic()
    fault: bool = False


@dataclass
class _Fault:
    status: int
    remaining: int | None  # None: by rate
    rate: float = 1.0
    provider: str | None = None
    retry_after: float | None = None
    method: str | None = None
    path_contains: str | None = None
    kinds: tuple[str, ...] = ("api",)
    message: str | None = None

    def matches(self, provider: str, method: str, path: str, kind: str) -> bool:
        return (
            (self.provider is None or self.provider == provider)
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
            and kind in self.kinds
        )


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a file's bytes instead of a JSON body (Content-Type in headers)


class FakeCrm:
    def __init__(self, *, seed: int = 7) -> None:
        self._lock = threading.RLock()
        self._random = random.Random(seed)
        self._faults: list[_Fault] = []
        self.log: list[Call] = []
        self.records_by: dict[str, dict[str, dict[str, dict[str, Any]]]] = {p: {} for p in PROVIDERS}
        self._ids = itertools.count(1)
        self._tokens: dict[str, set[str]] = {p: set() for p in PROVIDERS}
        self.revoked_refresh_tokens: set[str] = set()
        self.representation = False  # Dynamics: answer every write with 201 + the row
        self.errors: list[str] = []  # bugs in the fake itself; a test can assert there are none
        self.zendesk_keys: dict[str, tuple[str, _Answer]] = {}
        self.page_size = 100  # records per page of every listing the way back reads
        # Zendesk records a comment as the token's user when it does not honour author_id: the echo
        # rules must hold whoever the CRM says wrote the customer's messages.
        self.zendesk_ignores_author = False
        self.files: dict[str, tuple[bytes, str]] = {}  # download path -> (bytes, content type)
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._clock = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> FakeCrm:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in two writes; without this each answer waits out a delayed ACK (~40 ms).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                answer = fake._dispatch(self.command, self.path, dict(self.headers.items()), raw)
                payload = b"" if answer.body is None else json.dumps(answer.body).encode("utf-8")
                if answer.raw is not None:
                    payload = answer.raw
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.body is not None and answer.raw is None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-crm", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeCrm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a test configures --------------------------------------------------------------------
    def config(self, provider: str, *, default_user: dict[str, bool] | None = None, **overrides: Any) -> dict[str, Any]:
        """The `crm:` section of a configuration file pointing at this fake, with valid secrets."""
        sections: dict[str, dict[str, Any]] = {
            "zendesk": {"base_url": f"{self.url}/zendesk", "email": ZENDESK_EMAIL, "secrets": {"api_token": ZENDESK_TOKEN}},
            "salesforce": {
                "login_url": f"{self.url}/salesforce",
                "org_id": SF_ORG_ID,
                "api_version": SF_API_VERSION,
                "secrets": {
                    "client_id": SF_CLIENT_ID,
                    "client_secret": SF_CLIENT_SECRET,
                    "refresh_tokens": list(SF_REFRESH_TOKENS),
                },
            },
            "dynamics": {
                "org_url": f"{self.url}/dynamics",
                "tenant_id": DYN_TENANT,
                "authority_url": f"{self.url}/dynamics-login",
                "secrets": {"client_id": DYN_CLIENT_ID, "client_secret": DYN_CLIENT_SECRET},
            },
            "kustomer": {"base_url": f"{self.url}/kustomer", "secrets": {"api_key": KUSTOMER_API_KEY}},
        }
        section = {"provider": provider, **sections[provider]}
        if default_user is not None:
            section["default_user"] = default_user
        for key, value in overrides.items():
            if key == "secrets":
                section["secrets"] = {**section["secrets"], **value}
            else:
                section[key] = value
        return section

    def admin_id(self, provider: str, *, admin: int = 1) -> str:
        """The id the fake gives the credentials' own user (the default user); Salesforce: of linked admin #``admin``."""
        return {
            "zendesk": str(ZENDESK_ADMIN_ID),
            "salesforce": SF_USERS[SF_REFRESH_TOKENS[admin - 1]],
            "dynamics": DYN_APP_USER,
            "kustomer": KUSTOMER_USER,
        }[provider]

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        provider: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        kinds: Iterable[str] = ("api",),
        message: str | None = None,
    ) -> None:
        """The next ``count`` matching calls answer ``status``, with ``message`` (if given) in the CRM's error shape."""
        with self._lock:
            self._faults.append(_Fault(status, count, 1.0, provider, retry_after, method, path_contains, tuple(kinds), message))

    def fail_rate(
        self,
        fraction: float,
        *,
        status: int = 500,
        provider: str | None = None,
        retry_after: float | None = None,
        kinds: Iterable[str] = ("api",),
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(status, None, fraction, provider, retry_after, kinds=tuple(kinds)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def expire_tokens(self, provider: str | None = None) -> None:
        """Every access token issued so far stops working (the next call gets 401, a refresh gets a new one)."""
        with self._lock:
            for name in [provider] if provider else list(PROVIDERS):
                self._tokens[name].clear()

    def revoke_refresh_token(self, token: str) -> None:
        """A Salesforce admin's refresh token is revoked: the grant answers invalid_grant."""
        with self._lock:
            self.revoked_refresh_tokens.add(token)

    # -- what a test reads -------------------------------------------------------------------------
    def records(self, provider: str, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.records_by[provider].get(kind, {}).values()]

    def contacts(self, provider: str, identity: str) -> list[dict[str, Any]]:
        """The contacts keyed on a channel identity (``channel:account:user``)."""
        if provider == "zendesk":
            return [u for u in self.records("zendesk", "users") if u.get("external_id") == identity]
        if provider == "salesforce":
            return [c for c in self.records("salesforce", "Contact") if c.get(SF_CONTACT_FIELD) == identity]
        if provider == "dynamics":
            from switchboard.crm.dynamics import record_id  # the adapter chooses the key; the row does not hold the identity

            return [c for c in self.records("dynamics", "contacts") if c["contactid"] == record_id("contact", identity)]
        if provider == "kustomer":
            return [c for c in self.records("kustomer", "customers") if c["attributes"].get("externalId") == identity]
        raise KeyError(f"the fake CRM does not answer as {provider!r}")

    def tickets(self, provider: str, conversation_id: str) -> list[dict[str, Any]]:
        """The tickets (cases, incidents, conversations) opened for a conversation."""
        if provider == "zendesk":
            return [t for t in self.records("zendesk", "tickets") if t.get("external_id") == conversation_id]
        if provider == "salesforce":
            return [c for c in self.records("salesforce", "Case") if c.get(SF_CASE_FIELD) == conversation_id]
        if provider == "dynamics":
            from switchboard.crm.dynamics import record_id

            return [i for i in self.records("dynamics", "incidents") if i["incidentid"] == record_id("incident", conversation_id)]
        if provider == "kustomer":
            return [c for c in self.records("kustomer", "conversations") if c["attributes"].get("externalId") == conversation_id]
        raise KeyError(f"the fake CRM does not answer as {provider!r}")

    def texts(self, provider: str, ticket: dict[str, Any]) -> list[str]:
        """What the ticket holds of the customer's messages, oldest first."""
        if provider == "zendesk":
            return [c["body"] for c in ticket["comments"] if _kind(provider, c) == "message"]
        if provider == "salesforce":
            comments = self.records("salesforce", "CaseComment")
            later = [c["CommentBody"] for c in comments if c["ParentId"] == ticket["Id"] and _kind(provider, c) == "message"]
            return [ticket["Description"], *later]
        if provider == "dynamics":
            notes = self.records("dynamics", "annotations")
            later = [
                n["notetext"]
                for n in notes
                if n.get("_objectid_incident_value") == ticket["incidentid"] and _kind(provider, n) == "message"
            ]
            return [ticket["description"], *later]
        if provider == "kustomer":
            return [
                m["attributes"]["preview"]
                for m in self.records("kustomer", "messages")
                if m["relationships"]["conversation"]["data"]["id"] == ticket["id"] and _kind(provider, m) == "message"
            ]
        raise KeyError(f"the fake CRM does not answer as {provider!r}")

    def ticket_owner(self, provider: str, ticket: dict[str, Any]) -> str | None:
        """The user a ticket is assigned to; None when unassigned (or, in Salesforce, left to assignment rules)."""
        if provider == "zendesk":
            return None if ticket.get("assignee_id") is None else str(ticket["assignee_id"])
        if provider == "salesforce":
            return None if ticket.get("OwnerId") in (None, SF_DEFAULT_CASE_OWNER) else str(ticket["OwnerId"])
        if provider == "dynamics":
            return ticket.get("_ownerid_value")
        if provider == "kustomer":
            users = ticket["attributes"].get("assignedUsers") or []
            return str(users[0]) if users else None
        raise KeyError(f"the fake CRM does not answer as {provider!r}")

    def ticket_creates(self, provider: str) -> list[Call]:
        """The calls that created (or tried to create) a ticket, oldest first."""
        method, path = TICKET_CREATE[provider]
        return [c for c in self.calls(provider=provider, kind="api") if path in c.path and c.method == method]

    # -- the way back: what agents do in the CRM, and the CRM's events -----------------------------------
    def agent_reply(
        self,
        provider: str,
        ticket_id: str,
        text: str,
        *,
        author: str = AGENT_NAME,
        author_id: str | None = None,
        files: Iterable[tuple[str, str, bytes]] = (),
        public: bool = True,
        title: str = "Reply to customer",
    ) -> str:
        """An agent's reply on the ticket as the CRM records it (a public comment, a published CaseComment, a note
        titled ``title``, an outbound message); ``author_id`` another user (the admin: the default user replying).
        ``files`` (name, content type, bytes) are attached where the CRM carries files (Zendesk, Kustomer).
        ``public=False`` writes the agent's private note instead. Returns the record's id."""
        with self._lock:
            files = list(files)
            if provider == "zendesk":
                users = self._store("zendesk", "users")
                user_id = int(author_id) if author_id else ZENDESK_AGENT_ID
                users.setdefault(str(user_id), {"id": user_id, "name": author, "role": "agent"})
                attachments = []
                for name, content_type, data in files:
                    token = uuid.uuid4().hex
                    self.files[f"zendesk/attachments/token/{token}/"] = (data, content_type)
                    attachments.append(
                        {
                            "id": self._next(),
                            "file_name": name,
                            "content_url": f"{self.url}/zendesk/attachments/token/{token}/?name={name}",
                            "content_type": content_type,
                            "size": len(data),
                        }
                    )
                ticket = self._store("zendesk", "tickets")[str(ticket_id)]
                comment = self._zendesk_comment(
                    {"body": text, "public": public, "author_id": user_id, "attachments": attachments}, via="web"
                )
                comment["author_id"] = user_id  # typed in the agent workspace: no author_id to ignore
                ticket["comments"].append(comment)
                return str(comment["id"])
            if provider == "salesforce":
                record = {
                    "Id": salesforce_18(f"00a5g{self._next():010d}"),
                    "ParentId": ticket_id,
                    "CommentBody": text,
                    "IsPublished": public,
                    "CreatedById": author_id or SF_AGENT_ID,
                    "CreatedByName": author,
                    "CreatedDate": self._stamp().replace("Z", ".000+0000"),
                    "agent": True,
                }
                self._store("salesforce", "CaseComment")[record["Id"]] = record
                return str(record["Id"])
            if provider == "dynamics":
                note_id = str(uuid.uuid4())
                self._store("dynamics", "annotations")[note_id] = {
                    "annotationid": note_id,
                    "subject": title if public else "Internal: checked the warehouse",
                    "notetext": text,
                    "isdocument": False,
                    "_objectid_value": ticket_id,
                    "_objectid_incident_value": ticket_id,
                    "_createdby_value": author_id or DYN_AGENT,
                    "createdbyname": author,
                    "_ownerid_value": author_id or DYN_AGENT,
                    "createdon": self._stamp(),
                    "agent": True,
                }
                return note_id
            if provider == "kustomer":
                user = author_id or KUSTOMER_AGENT
                if not public:
                    return str(self._kustomer_note(ticket_id, text, user)["id"])
                conversation = self._store("kustomer", "conversations")[ticket_id]
                message_id = f"{self._next():024x}"
                attachments = []
                for name, content_type, data in files:
                    attachment_id = f"{self._next():024x}"
                    self.files[f"kustomer/{message_id}/{attachment_id}"] = (data, content_type)
                    attachments.append(
                        {"_id": attachment_id, "name": name, "contentType": content_type, "contentLength": len(data)}
                    )
                record = {
                    "type": "message",
                    "id": message_id,
                    "attributes": {
                        "channel": "chat",
                        "app": "chat",
                        "direction": "out",
                        "preview": text,
                        "attachments": attachments,
                        "createdAt": self._stamp(),
                    },
                    "relationships": {
                        "conversation": {"data": {"type": "conversation", "id": ticket_id}},
                        "customer": conversation["relationships"]["customer"],
                        "sentBy": {"data": {"type": "user", "id": user}},
                    },
                }
                self._store("kustomer", "messages")[message_id] = record
                conversation["attributes"]["messageCount"] += 1
                return message_id
        raise KeyError(f"the fake CRM does not answer as {provider!r}")

    def agent_note(self, provider: str, ticket_id: str, text: str) -> str:
        """An agent's internal note on the ticket: never a reply."""
        return self.agent_reply(provider, ticket_id, text, public=False)

    def notes(self, provider: str, ticket_id: str) -> list[str]:
        """The private notes Switchboard wrote on the ticket (a reply that did not reach the customer), oldest first."""
        with self._lock:
            if provider == "zendesk":
                comments = self._store("zendesk", "tickets")[str(ticket_id)]["comments"]
                return [c["body"] for c in comments if _kind(provider, c) == "note"]
            if provider == "salesforce":
                rows = [c for c in self._store("salesforce", "CaseComment").values() if c["ParentId"] == ticket_id]
            elif provider == "dynamics":
                rows = [n for n in self._store("dynamics", "annotations").values() if n.get("_objectid_value") == ticket_id]
            elif provider == "kustomer":
                notes = self._store("kustomer", "notes").values()
                rows = [n for n in notes if n["relationships"]["conversation"]["data"]["id"] == ticket_id]
            else:
                raise KeyError(f"the fake CRM does not answer as {provider!r}")
            ordered = sorted(
                rows, key=lambda r: str(r.get("CreatedDate") or r.get("createdon") or r.get("attributes", {}).get("createdAt"))
            )
            return [_body(provider, r) for r in ordered if _kind(provider, r) == "note"]

    def set_ticket_contact(self, provider: str, ticket_id: str, contact_id: str) -> None:
        """An agent moves the ticket to another existing contact (the agent's link of the customer to a contact)."""
        with self._lock:
            if provider == "zendesk":
                self._store("zendesk", "tickets")[str(ticket_id)]["requester_id"] = int(contact_id)
            elif provider == "salesforce":
                self._store("salesforce", "Case")[ticket_id]["ContactId"] = contact_id
            elif provider == "dynamics":
                row = self._store("dynamics", "incidents")[ticket_id]
                row["_customerid_value"] = row["_customerid_contact_value"] = contact_id
            elif provider == "kustomer":
                conversation = self._store("kustomer", "conversations")[ticket_id]
                conversation["relationships"]["customer"] = {"data": {"type": "customer", "id": contact_id}}
            else:
                raise KeyError(f"the fake CRM does not answer as {provider!r}")

    def publish(self, provider: str, record_id: str) -> None:
        """An agent makes a record public: a Salesforce CaseComment published (the customer's own, perhaps)."""
        with self._lock:
            if provider != "salesforce":
                raise KeyError("only Salesforce comments are published after the fact in this fake")
            self._store("salesforce", "CaseComment")[record_id]["IsPublished"] = True

    def zendesk_hooks(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The webhooks and triggers the Zendesk account has (what `apply` created)."""
        return self.records("zendesk", "webhooks"), self.records("zendesk", "triggers")

    def zendesk_signing_secret(self, webhook_id: str) -> str:
        return str(self._store("zendesk", "webhooks")[webhook_id]["signing_secret"])

    @staticmethod
    def sign_event(provider: str, body: bytes, secret: str, *, timestamp: str | None = None) -> dict[str, str]:
        """The headers the CRM sends with ``body``: Zendesk's signature over timestamp + body (``timestamp``
        defaults to now), Kustomer's hex HMAC, or the shared key Salesforce's flow and Dataverse send."""
        key = secret.encode("utf-8")
        if provider == "zendesk":
            stamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            digest = hmac.new(key, stamp.encode("utf-8") + body, hashlib.sha256).digest()
            return {
                "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode("ascii"),
                "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                "Content-Type": "application/json",
            }
        if provider == "kustomer":
            digest_hex = hmac.new(key, body, hashlib.sha256).hexdigest()
            return {"X-Kustomer-Webhook-Signature": digest_hex, "Content-Type": "application/json"}
        if provider in ("salesforce", "dynamics"):
            return {"X-Switchboard-Key": secret, "Content-Type": "application/json"}
        raise KeyError(f"the fake CRM does not answer as {provider!r}")

    def event_body(self, provider: str, ticket_id: str) -> bytes:
        """What the CRM posts about the ticket: Zendesk's trigger body, the Salesforce flow's, a Dataverse
        RemoteExecutionContext for the ticket's newest note, a Kustomer ``kustomer.message.create`` for its newest message."""
        with self._lock:
            if provider == "zendesk":
                doc: dict[str, Any] = {"ticket_id": str(ticket_id)}
            elif provider == "salesforce":
                doc = {"case_id": ticket_id}
            elif provider == "dynamics":
                notes = [n for n in self._store("dynamics", "annotations").values() if n.get("_objectid_value") == ticket_id]
                note_id = max(notes, key=lambda n: n["createdon"])["annotationid"] if notes else str(uuid.uuid4())
                doc = dataverse_context(note_id, ticket_id, self.url)
            elif provider == "kustomer":
                messages = [
                    m
                    for m in self._store("kustomer", "messages").values()
                    if m["relationships"]["conversation"]["data"]["id"] == ticket_id
                ]
                data = (
                    max(messages, key=lambda m: m["attributes"]["createdAt"])
                    if messages
                    else {
                        "type": "message",
                        "id": f"{self._next():024x}",
                        "attributes": {"direction": "out"},
                        "relationships": {"conversation": {"data": {"type": "conversation", "id": ticket_id}}},
                    }
                )
                doc = {
                    "id": f"{self._next():024x}",
                    "name": "kustomer.message.create",
                    "org": "5f8481c6a22ab5b9d5f2dd8a",
                    "partition": "5f8481c6a22ab5b9d5f2dd8a",
                    "data": json.loads(json.dumps(data)),
                    "createdAt": self._stamp(),
                    "changes": None,
                }
            else:
                raise KeyError(f"the fake CRM does not answer as {provider!r}")
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    def event(self, provider: str, ticket_id: str, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        """An event about the ticket as the CRM sends it: (raw body, headers), signed with ``secret`` (default: the
        fake's :data:`EVENTS_SECRETS`; for Zendesk, the signing secret of the webhook `apply` created, if any)."""
        if secret is None:
            hooks = self.records("zendesk", "webhooks") if provider == "zendesk" else []
            secret = hooks[0]["signing_secret"] if hooks else EVENTS_SECRETS[provider]
        body = self.event_body(provider, ticket_id)
        return body, self.sign_event(provider, body, secret)

    def calls(self, *, provider: str | None = None, kind: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.log if (provider is None or c.provider == provider) and (kind is None or c.kind == kind)]

    def reset(self) -> None:
        """Forget records, log, faults and tokens (not the server)."""
        with self._lock:
            self.records_by = {p: {} for p in PROVIDERS}
            self.log.clear()
            self._faults.clear()
            self.zendesk_keys.clear()
            self.revoked_refresh_tokens.clear()
            self.representation = False
            self.page_size = 100
            self.zendesk_ignores_author = False
            self.files.clear()
            self._cursors.clear()
            for tokens in self._tokens.values():
                tokens.clear()

    # -- plumbing ----------------------------------------------------------------------------------
    def _store(self, provider: str, kind: str) -> dict[str, dict[str, Any]]:
        return self.records_by[provider].setdefault(kind, {})

    def _next(self) -> int:
        return next(self._ids)

    def _issue(self, provider: str) -> str:
        token = f"fake-{provider}-access-{uuid.uuid4().hex}"
        self._tokens[provider].add(token)
        return token

    def _bearer_ok(self, provider: str, headers: dict[str, str]) -> bool:
        auth = _header(headers, "Authorization") or ""
        return auth.startswith("Bearer ") and auth[7:] in self._tokens[provider]

    def _dispatch(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Answer:
        split = urlsplit(target)
        path = unquote(split.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        body: Any = None
        if raw:
            text = raw.decode("utf-8")
            content_type = _header(headers, "Content-Type") or ""
            if "json" in content_type:
                try:
                    body = json.loads(text)
                except ValueError:
                    body = text
            else:
                body = {k: v[0] for k, v in parse_qs(text).items()}
        route, rest = _provider_of(path)
        kind = _kind_of(route, rest)
        provider = "dynamics" if route == "dynamics-login" else route
        with self._lock:
            fault = self._fault_for(provider, method, rest, kind)
            if fault is not None:
                answer = _fault_answer(provider, fault)
            elif route is None:
                answer = _Answer(404, {"error": "no such fake"})
            else:
                handler = getattr(self, f"_{route.replace('-', '_')}")
                try:
                    answer = handler(method, rest, query, headers, body)
                except _Reply as reply:
                    answer = reply.answer
                except Exception as exc:  # a bug in the fake must show, not hang the client
                    self.errors.append(f"{method} {path}: {exc!r}")
                    answer = _Answer(599, {"error": "FakeCrmBug", "description": repr(exc)})
            self.log.append(
                Call(
                    provider=provider or "?",
                    method=method,
                    path=path,
                    query=query,
                    status=answer.status,
                    kind=kind,
                    headers={k: v for k, v in headers.items() if k.lower() in _LOGGED_HEADERS},
                    body=body if not (isinstance(body, dict) and kind == "token") else {"grant_type": body.get("grant_type")},
                    at=time.monotonic(),
                    fault=fault is not None,
                )
            )
            # Serialised here, under the lock: the records an answer shows may change right after.
            body_out = None if answer.body is None else json.loads(json.dumps(answer.body))
            return _Answer(answer.status, body_out, answer.headers, answer.raw)

    def _fault_for(self, provider: str | None, method: str, path: str, kind: str) -> _Fault | None:
        if provider is None:
            return None
        for fault in self._faults:
            if not fault.matches(provider, method, path, kind):
                continue
            if fault.remaining is not None:
                if fault.remaining <= 0:
                    continue
                fault.remaining -= 1
                return fault
            if self._random.random() < fault.rate:
                return fault
        return None

    # -- Zendesk -----------------------------------------------------------------------------------
    def _zendesk(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> _Answer:
        auth = _header(headers, "Authorization")
        expected = "Basic " + base64.b64encode(f"{ZENDESK_EMAIL}/token:{ZENDESK_TOKEN}".encode()).decode()
        if path.startswith("/attachments/"):  # private attachments: the account's credentials, on its own host
            return self._file(f"zendesk{path}", authorised=auth == expected)
        path = path.removeprefix("/api/v2/").removesuffix(".json")
        if auth is None and path == "users/me":
            return _Answer(200, {"user": {"id": None, "name": "Anonymous user", "role": "end-user"}})
        if auth != expected:
            return _Answer(401, {"error": "Couldn't authenticate you"})
        users, tickets = self._store("zendesk", "users"), self._store("zendesk", "tickets")
        users.setdefault(
            str(ZENDESK_ADMIN_ID), {"id": ZENDESK_ADMIN_ID, "name": "Fake Admin", "email": ZENDESK_EMAIL, "role": "admin"}
        )
        if method == "GET" and path == "users/me":
            return _Answer(200, {"user": users[str(ZENDESK_ADMIN_ID)]})
        if method == "GET" and (m := re.fullmatch(r"users/(\d+)", path)):
            user = users.get(m.group(1))
            return _Answer(200, {"user": user}) if user else _Answer(404, {"error": "RecordNotFound", "description": "Not found"})
        if method == "POST" and path == "users/create_or_update":
            wanted = _need(body, "user", dict)
            match = next(
                (
                    u
                    for u in users.values()
                    if (wanted.get("external_id") and u.get("external_id") == wanted.get("external_id"))
                    or (wanted.get("email") and u.get("email") == wanted.get("email"))
                ),
                None,
            )
            if match is not None:
                match.update({k: v for k, v in wanted.items() if k != "id"})
                return _Answer(200, {"user": match})
            user = {"id": 5000 + self._next(), "role": "end-user", **wanted}
            users[str(user["id"])] = user
            return _Answer(201, {"user": user})
        if method == "POST" and path == "tickets":
            key = _header(headers, "Idempotency-Key")
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            if key is not None and key in self.zendesk_keys:
                seen, answer = self.zendesk_keys[key]
                if seen != digest:
                    return _Answer(
                        400,
                        {
                            "error": "IdempotentRequestError",
                            "description": "Request parameters don't match the given idempotency key",
                        },
                    )
                return _Answer(answer.status, answer.body, {"x-idempotency-lookup": "hit"})
            ticket = dict(_need(body, "ticket", dict))
            problems = []
            if not str(ticket.get("subject") or "").strip():
                problems.append({"description": "Subject: cannot be blank", "error": "BlankValue", "field_key": "subject"})
            if str(ticket.get("requester_id")) not in users:
                problems.append({"description": "Requester: is invalid", "error": "InvalidValue", "field_key": "requester_id"})
            if ticket.get("assignee_id") is not None and ticket["assignee_id"] != ZENDESK_ADMIN_ID:
                problems.append({"description": "Assignee: is not an agent", "error": "InvalidValue", "field_key": "assignee_id"})
            if problems:
                return _Answer(
                    422,
                    {"error": "RecordInvalid", "description": "Record validation errors", "details": {"base": problems}},
                )
            comment = ticket.pop("comment", None)
            record = {
                "id": self._next(),
                "status": "new",
                "comments": [self._zendesk_comment(comment)] if comment else [],
                **ticket,
            }
            tickets[str(record["id"])] = record
            answer = _Answer(201, {"ticket": record, "audit": {"events": []}})
            if key is not None:  # a replay answers what the first call answered, not the ticket as it is now
                self.zendesk_keys[key] = (digest, _Answer(201, json.loads(json.dumps(answer.body))))
                answer = _Answer(201, answer.body, {"x-idempotency-lookup": "miss"})
            return answer
        if method == "GET" and path == "tickets":
            found = [t for t in tickets.values() if "external_id" not in query or t.get("external_id") == query["external_id"]]
            return _Answer(200, {"tickets": found, "count": len(found)})
        if method == "PUT" and (m := re.fullmatch(r"tickets/(\d+)", path)):
            record = tickets.get(m.group(1))
            if record is None:
                return _Answer(404, {"error": "RecordNotFound", "description": "Not found"})
            update = dict(_need(body, "ticket", dict))
            comment = update.pop("comment", None)
            if comment:
                record["comments"].append(self._zendesk_comment(comment))
            record.update(update)
            return _Answer(200, {"ticket": record, "audit": {"events": []}})
        if method == "GET" and (m := re.fullmatch(r"tickets/(\d+)", path)):
            record = tickets.get(m.group(1))
            if record is None:
                return _Answer(404, {"error": "RecordNotFound", "description": "Not found"})
            return _Answer(200, {"ticket": {k: v for k, v in record.items() if k != "comments"}})
        if method == "GET" and (m := re.fullmatch(r"tickets/(\d+)/comments", path)):
            record = tickets.get(m.group(1))
            if record is None:
                return _Answer(404, {"error": "RecordNotFound", "description": "Not found"})
            page = int(query.get("page") or 1)
            size = self.page_size
            chunk = record["comments"][(page - 1) * size : page * size]
            more = page * size < len(record["comments"])
            answer: dict[str, Any] = {
                "comments": chunk,
                "count": len(record["comments"]),
                "next_page": f"{self.url}/zendesk/api/v2/tickets/{m.group(1)}/comments.json?page={page + 1}&include=users"
                if more
                else None,
            }
            if "users" in (query.get("include") or ""):
                authors = {str(c.get("author_id")) for c in chunk}
                answer["users"] = [u for key, u in users.items() if key in authors]
            return _Answer(200, answer)
        if path.startswith("webhooks") or path.startswith("triggers"):
            return self._zendesk_hooks(method, path, query, body)
        return _Answer(404, {"error": "InvalidEndpoint", "description": f"{method} {path}"})

    def _stamp(self) -> str:
        """Every record's creation time: one second after the previous record's, so order is exact and stable."""
        return (_EPOCH + timedelta(seconds=next(self._clock))).isoformat().replace("+00:00", "Z")

    def _zendesk_comment(self, comment: dict[str, Any], *, via: str = "api") -> dict[str, Any]:
        body = str(comment.get("body") or comment.get("html_body") or "")
        author = comment.get("author_id")
        if author is None or self.zendesk_ignores_author:
            author = ZENDESK_ADMIN_ID  # Zendesk's default: the token's own user
        return {
            "id": 900000 + self._next(),
            "type": "Comment",
            "body": body,
            "plain_body": body,
            "public": comment.get("public", True) is not False,
            "author_id": author,
            "created_at": self._stamp(),
            "attachments": list(comment.get("attachments") or []),
            "via": {"channel": via},
        }

    def _zendesk_hooks(self, method: str, path: str, query: dict[str, str], body: Any) -> _Answer:
        hooks, triggers = self._store("zendesk", "webhooks"), self._store("zendesk", "triggers")
        not_found = _Answer(404, {"errors": [{"code": "WebhookNotFound", "title": "Webhook not found"}]})
        if method == "GET" and path == "webhooks":
            needle = query.get("filter[name_contains]", "")
            found = [{k: v for k, v in h.items() if k != "signing_secret"} for h in hooks.values() if needle in h["name"]]
            return _Answer(200, {"webhooks": found, "meta": {"has_more": False}, "links": {"next": None, "prev": None}})
        if method == "POST" and path == "webhooks":
            hook = dict(_need(body, "webhook", dict))
            if not hook.get("endpoint") or not hook.get("name") or not hook.get("subscriptions"):
                return _Answer(
                    400, {"errors": [{"code": "InvalidInput", "title": "name, endpoint and subscriptions are required"}]}
                )
            hook["id"] = f"01HFAKE{self._next():019d}"
            hook["signing_secret"] = f"fake-zendesk-signing-{uuid.uuid4().hex}"
            hooks[hook["id"]] = hook
            return _Answer(201, {"webhook": {k: v for k, v in hook.items() if k != "signing_secret"}})
        if m := re.fullmatch(r"webhooks/(\w+)(/signing_secret)?", path):
            hook = hooks.get(m.group(1))
            if hook is None:
                return not_found
            if method == "GET" and m.group(2):
                return _Answer(200, {"signing_secret": {"algorithm": "sha256", "secret": hook["signing_secret"]}})
            if method == "PUT" and not m.group(2):
                hook.update({k: v for k, v in _need(body, "webhook", dict).items() if k not in ("id", "signing_secret")})
                return _Answer(204)
        if method == "GET" and path == "triggers":
            return _Answer(200, {"triggers": list(triggers.values()), "next_page": None, "count": len(triggers)})
        if (method == "POST" and path == "triggers") or (method == "PUT" and re.fullmatch(r"triggers/\d+", path)):
            trigger = dict(_need(body, "trigger", dict))
            for action in trigger.get("actions") or []:
                if action.get("field") == "notification_webhook" and action["value"][0] not in hooks:
                    return _Answer(422, {"error": "RecordInvalid", "description": "Actions: webhook does not exist"})
            if method == "POST":
                trigger["id"] = self._next()
                triggers[str(trigger["id"])] = trigger
                return _Answer(201, {"trigger": trigger})
            existing = triggers.get(path.split("/")[1])
            if existing is None:
                return _Answer(404, {"error": "RecordNotFound", "description": "Not found"})
            existing.update({k: v for k, v in trigger.items() if k != "id"})
            return _Answer(200, {"trigger": existing})
        return _Answer(404, {"error": "InvalidEndpoint", "description": f"{method} {path}"})

    # -- Salesforce --------------------------------------------------------------------------------
    def _salesforce(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> _Answer:
        if path == "/services/oauth2/token" and method == "POST":
            form = body if isinstance(body, dict) else {}
            if form.get("client_id") != SF_CLIENT_ID or form.get("client_secret") != SF_CLIENT_SECRET:
                return _Answer(400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
            token = form.get("refresh_token", "")
            if form.get("grant_type") != "refresh_token" or token not in SF_USERS or token in self.revoked_refresh_tokens:
                return _Answer(400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
            return _Answer(
                200,
                {
                    "access_token": self._issue("salesforce"),
                    "instance_url": f"{self.url}/salesforce",
                    "id": f"https://login.salesforce.com/id/{salesforce_18(SF_ORG_ID)}/{SF_USERS[token]}",
                    "token_type": "Bearer",
                    "issued_at": str(int(time.time() * 1000)),
                    "signature": "ZmFrZQ==",
                },
            )
        prefix = f"/services/data/v{SF_API_VERSION}/"
        if not path.startswith(prefix):
            return _Answer(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
        if not self._bearer_ok("salesforce", headers):
            return _Answer(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        path = path[len(prefix) :]
        api_user = SF_USERS[SF_REFRESH_TOKENS[0]]
        fields = {"Contact": SF_CONTACT_FIELD, "Case": SF_CASE_FIELD}
        if m := re.fullmatch(r"sobjects/(Contact|Case)/(\w+)/(.+)", path):
            sobject, field_name, value = m.groups()
            if fields[sobject] != field_name:
                return _Answer(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
            store = self._store("salesforce", sobject)
            matches = [r for r in store.values() if str(r.get(field_name, "")).lower() == value.lower()]
            if method == "GET":
                if not matches:
                    return _Answer(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
                return _Answer(200, {"attributes": {"type": sobject}, **matches[0]})
            if method != "PATCH":
                return _Answer(405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": method}])
            if len(matches) > 1:
                return _Answer(300, [f"/services/data/v{SF_API_VERSION}/sobjects/{sobject}/{r['Id']}" for r in matches])
            fields_in = dict(body or {})
            problem = self._salesforce_refs(sobject, fields_in)
            if problem:
                return _Answer(400, [problem])
            auto_assign = (_header(headers, "Sforce-Auto-Assign") or "TRUE").upper() != "FALSE"
            if matches:
                record = matches[0]
                record.update(fields_in)
                if sobject == "Case" and auto_assign:
                    record["OwnerId"] = SF_DEFAULT_CASE_OWNER
                return _Answer(200, {"id": record["Id"], "success": True, "errors": [], "created": False})
            prefix_id = {"Contact": "003", "Case": "500"}[sobject]
            record = {"Id": salesforce_18(f"{prefix_id}5g{self._next():010d}"), field_name: value, **fields_in}
            record.setdefault("OwnerId", api_user)
            if sobject == "Case" and auto_assign:
                record["OwnerId"] = SF_DEFAULT_CASE_OWNER  # assignment rules run unless told not to
            record["SforceAutoAssign"] = _header(headers, "Sforce-Auto-Assign")  # what the create was sent with
            store[record["Id"]] = record
            return _Answer(201, {"id": record["Id"], "success": True, "errors": [], "created": True})
        if method == "GET" and (m := re.fullmatch(r"sobjects/(Contact|Case)/(\w{15,18})", path)):
            found = self._store("salesforce", m.group(1)).get(m.group(2))
            if found is None:
                return _Answer(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
            return _Answer(200, {"attributes": {"type": m.group(1)}, **found})
        if method == "POST" and path == "sobjects/CaseComment":
            fields_in = dict(body or {})
            if fields_in.get("ParentId") not in self._store("salesforce", "Case"):
                return _Answer(
                    400,
                    [
                        {
                            "message": "Parent ID: id value of incorrect type",
                            "errorCode": "FIELD_INTEGRITY_EXCEPTION",
                            "fields": ["ParentId"],
                        }
                    ],
                )
            record = {
                "Id": salesforce_18(f"00a5g{self._next():010d}"),
                "CreatedById": api_user,
                "CreatedByName": "Fake Admin One",
                "CreatedDate": self._stamp().replace("Z", ".000+0000"),
                "IsPublished": False,  # the API's default
                **fields_in,
            }
            self._store("salesforce", "CaseComment")[record["Id"]] = record
            return _Answer(201, {"id": record["Id"], "success": True, "errors": []})
        if method == "GET" and path == "query":
            m = re.search(r"FROM CaseComment WHERE ParentId = '(\w+)' ORDER BY CreatedDate$", query.get("q", ""))
            if m is None:
                return _Answer(400, [{"errorCode": "MALFORMED_QUERY", "message": "the fake answers one CaseComment query"}])
            rows = sorted(
                (c for c in self._store("salesforce", "CaseComment").values() if c["ParentId"] == m.group(1)),
                key=lambda c: c["CreatedDate"],
            )
            return self._salesforce_batch([_soql_row(c) for c in rows])
        if method == "GET" and (m := re.fullmatch(r"query/(01gFAKE\w+)", path)):
            return self._salesforce_batch(self._cursors.pop(m.group(1), []))
        return _Answer(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])

    def _salesforce_batch(self, rows: list[dict[str, Any]]) -> _Answer:
        chunk, rest = rows[: self.page_size], rows[self.page_size :]
        answer: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": chunk}
        if rest:
            cursor = f"01gFAKE{self._next():08d}"
            self._cursors[cursor] = rest
            answer["nextRecordsUrl"] = f"/services/data/v{SF_API_VERSION}/query/{cursor}"
        return _Answer(200, answer)

    def _salesforce_refs(self, sobject: str, fields_in: dict[str, Any]) -> dict[str, Any] | None:
        owner = fields_in.get("OwnerId")
        if owner is not None and owner not in SF_USERS.values():
            return {
                "message": "Owner ID: owner cannot be blank",
                "errorCode": "INVALID_CROSS_REFERENCE_KEY",
                "fields": ["OwnerId"],
            }
        if sobject == "Case" and fields_in.get("ContactId") not in self._store("salesforce", "Contact"):
            return {
                "message": "Contact ID: id value of incorrect type",
                "errorCode": "INVALID_CROSS_REFERENCE_KEY",
                "fields": ["ContactId"],
            }
        if sobject == "Contact" and not fields_in.get("LastName"):
            return {
                "message": "Required fields are missing: [LastName]",
                "errorCode": "REQUIRED_FIELD_MISSING",
                "fields": ["LastName"],
            }
        return None

    # -- Dynamics 365 ------------------------------------------------------------------------------
    def _dynamics_login(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> _Answer:
        if method != "POST" or path != f"/{DYN_TENANT}/oauth2/v2.0/token":
            return _Answer(400, {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."})
        form = body if isinstance(body, dict) else {}
        if form.get("client_id") != DYN_CLIENT_ID or form.get("client_secret") != DYN_CLIENT_SECRET:
            return _Answer(
                401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
            )
        if form.get("grant_type") != "client_credentials" or form.get("scope") != f"{self.url}/dynamics/.default":
            return _Answer(400, {"error": "invalid_scope", "error_description": "AADSTS70011: The provided scope is not valid."})
        return _Answer(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": self._issue("dynamics")})

    def _dynamics(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> _Answer:
        prefix = "/api/data/v9.2/"
        if not path.startswith(prefix):
            return _Answer(404, {"error": {"code": "0x8006088a", "message": "Resource not found"}})
        if not self._bearer_ok("dynamics", headers):
            return _Answer(401, None, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        path = path[len(prefix) :]
        if method == "GET" and path == "WhoAmI":
            return _Answer(
                200, {"BusinessUnitId": str(uuid.UUID(int=1)), "UserId": DYN_APP_USER, "OrganizationId": str(uuid.UUID(int=2))}
            )
        sets = {"contacts": "contactid", "incidents": "incidentid", "annotations": "annotationid"}
        m = _ENTITY.match(path)
        if method == "POST" and path in sets:
            return self._dynamics_write(path, str(uuid.uuid4()), body, headers, create_only=True)
        if method == "GET" and path == "annotations":
            if "$skiptoken" in query:
                rows = self._cursors.pop(query["$skiptoken"], [])
            else:
                m = re.fullmatch(r"_objectid_value eq ([0-9a-f-]{36})", query.get("$filter", ""))
                if m is None or query.get("$orderby") != "createdon asc":
                    return _Answer(400, {"error": {"code": "0x80060888", "message": "the fake answers one annotations query"}})
                notes = self._store("dynamics", "annotations").values()
                chosen = [n for n in notes if n.get("_objectid_value") == m.group(1)]
                names = "OData.Community.Display.V1.FormattedValue" in (_header(headers, "Prefer") or "")
                rows = [_dataverse_note(n, query.get("$select", ""), names) for n in sorted(chosen, key=lambda n: n["createdon"])]
            answer: dict[str, Any] = {"value": rows[: self.page_size]}
            if rows[self.page_size :]:
                token = f"fake{self._next()}"
                self._cursors[token] = rows[self.page_size :]
                answer["@odata.nextLink"] = f"{self.url}/dynamics/api/data/v9.2/annotations?$skiptoken={token}"
            return _Answer(200, answer)
        if m is None or m.group(1) not in sets:
            return _Answer(404, {"error": {"code": "0x8006088a", "message": f"Resource not found for the segment '{path}'."}})
        entity_set, key = m.group(1), m.group(2).lower()
        if method == "GET":
            row = self._store("dynamics", entity_set).get(key)
            if row is None:
                return _Answer(
                    404, {"error": {"code": "0x80040217", "message": f"{entity_set[:-1]} With Id = {key} Does Not Exist"}}
                )
            return _Answer(200, row)
        if method == "PATCH":
            return self._dynamics_write(entity_set, key, body, headers, create_only=False)
        return _Answer(405, {"error": {"code": "0x80060888", "message": method}})

    def _dynamics_write(self, entity_set: str, key: str, body: Any, headers: dict[str, str], *, create_only: bool) -> _Answer:
        store = self._store("dynamics", entity_set)
        exists = key in store
        if exists and (create_only or _header(headers, "If-None-Match") == "*"):
            return _Answer(412, {"error": {"code": "0x80060892", "message": "A record with matching key values already exists."}})
        if not exists and _header(headers, "If-Match") == "*":
            return _Answer(404, {"error": {"code": "0x80040217", "message": "Does Not Exist"}})
        values = dict(body or {})
        row: dict[str, Any] = dict(store.get(key) or {})
        for name, value in values.items():
            if name.endswith("@odata.bind"):
                target = _ENTITY.match(str(value).lstrip("/"))
                if target is None:
                    return _Answer(400, {"error": {"code": "0x80060891", "message": f"bad reference {value}"}})
                target_set, target_key = target.group(1), target.group(2).lower()
                known = (
                    target_key == DYN_APP_USER
                    if target_set == "systemusers"
                    else target_key in self._store("dynamics", target_set)
                )
                if not known:
                    return _Answer(
                        404, {"error": {"code": "0x80040217", "message": f"{target_set} With Id = {target_key} Does Not Exist"}}
                    )
                row[f"_{name.split('@')[0]}_value"] = target_key
                if name.startswith(("customerid_", "objectid_")):  # the polymorphic lookup's own column too
                    row[f"_{name.split('_')[0]}_value"] = target_key
            else:
                row[name] = value
        if entity_set == "incidents" and not row.get("title"):
            return _Answer(400, {"error": {"code": "0x80040200", "message": "title: required"}})
        if entity_set == "incidents" and not row.get("_customerid_contact_value"):
            return _Answer(400, {"error": {"code": "0x80040200", "message": "customerid: required"}})
        primary = {"contacts": "contactid", "incidents": "incidentid", "annotations": "annotationid"}[entity_set]
        row[primary] = key
        if not exists:
            row["createdon"] = self._stamp()
            row.setdefault("_createdby_value", DYN_APP_USER)
        row.setdefault("_ownerid_value", DYN_APP_USER)  # a row without an owner belongs to its creator
        store[key] = row
        location = f"{self.url}/dynamics/api/data/v9.2/{entity_set}({key})"
        if self.representation or "return=representation" in (_header(headers, "Prefer") or ""):
            return _Answer(200 if exists else 201, row, {"Preference-Applied": "return=representation"})
        return _Answer(204, None, {"OData-EntityId": location})

    # -- Kustomer ----------------------------------------------------------------------------------
    def _kustomer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> _Answer:
        if _header(headers, "Authorization") != f"Bearer {KUSTOMER_API_KEY}":
            return _Answer(
                401, {"errors": [{"status": 401, "code": "unauthorized", "title": "Unauthorized", "detail": "invalid token"}]}
            )
        path = path.removeprefix("/v1/")
        customers, conversations = self._store("kustomer", "customers"), self._store("kustomer", "conversations")
        not_found = _Answer(404, {"errors": [{"status": 404, "code": "not_found", "title": "Not Found"}]})
        if method == "GET" and path == "auth/tokens/current":
            return _Answer(
                200,
                {
                    "data": {
                        "type": "token",
                        "id": "6500000000000000000000aa",
                        "attributes": {"name": "Switchboard", "roles": ["org.permission.customer.create"]},
                        "relationships": {"user": {"data": {"type": "user", "id": KUSTOMER_USER}}},
                    }
                },
            )
        if method == "GET" and (m := re.fullmatch(r"(customers|conversations)/externalId=(.+)", path)):
            store = customers if m.group(1) == "customers" else conversations
            found = next((r for r in store.values() if r["attributes"].get("externalId") == m.group(2)), None)
            return _Answer(200, {"data": found}) if found else not_found
        if method == "GET" and (m := re.fullmatch(r"conversations/([0-9a-f]{24})", path)):
            found = conversations.get(m.group(1))
            return _Answer(200, {"data": found}) if found else not_found
        if method == "GET" and (m := re.fullmatch(r"conversations/([0-9a-f]{24})/(messages|notes)", path)):
            if m.group(1) not in conversations:
                return not_found
            records = [
                r
                for r in self._store("kustomer", m.group(2)).values()
                if r["relationships"]["conversation"]["data"]["id"] == m.group(1)
            ]
            records.sort(key=lambda r: r["attributes"]["createdAt"], reverse=True)  # newest first, as Kustomer lists
            page, size = int(query.get("page") or 1), int(query.get("pageSize") or self.page_size)
            size = min(size, self.page_size)
            following = f"/v1/{path}?page={page + 1}&pageSize={size}" if page * size < len(records) else None
            return _Answer(
                200, {"data": records[(page - 1) * size : page * size], "links": {"self": f"/v1/{path}", "next": following}}
            )
        if method == "POST" and path == "notes":
            attributes = dict(body or {})
            conversation = conversations.get(str(attributes.pop("conversation", "")))
            if conversation is None or not attributes.get("body"):
                return _Answer(400, {"errors": [{"code": "bad_request", "message": "conversation and body are required"}]})
            return _Answer(201, {"data": self._kustomer_note(conversation["id"], attributes["body"], KUSTOMER_USER)})
        if method == "GET" and (m := re.fullmatch(r"messages/([0-9a-f]{24})/attachments/(\w+)", path)):
            return self._file(f"kustomer/{m.group(1)}/{m.group(2)}", authorised=True)
        if method == "GET" and (m := re.fullmatch(r"customers/([0-9a-f]{24})", path)):
            found = customers.get(m.group(1))
            return _Answer(200, {"data": found}) if found else not_found
        if method == "POST" and path == "customers":
            attributes = dict(body or {})
            if not attributes.get("name") or len(str(attributes["name"])) > 256:
                return _Answer(
                    400, {"errors": [{"code": "bad_request", "message": '"name" length must be less than or equal to 256'}]}
                )
            record = {"type": "customer", "id": f"{self._next():024x}", "attributes": attributes}
            customers[record["id"]] = record
            return _Answer(201, {"data": record})
        if method == "POST" and (m := re.fullmatch(r"customers/([0-9a-f]{24})/conversations", path)):
            if m.group(1) not in customers:
                return not_found
            attributes = dict(body or {})
            if any(u != KUSTOMER_USER for u in attributes.get("assignedUsers") or []):
                return _Answer(400, {"errors": [{"code": "bad_request", "message": "assignedUsers: unknown user"}]})
            return _Answer(201, {"data": self._kustomer_conversation(m.group(1), attributes)})
        if method == "POST" and (m := re.fullmatch(r"customers/([0-9a-f]{24})/messages", path)):
            customer_id = m.group(1)
            if customer_id not in customers:
                return not_found
            attributes = dict(body or {})
            errors = []
            if attributes.get("channel") not in KUSTOMER_CHANNELS:
                errors.append(
                    {
                        "status": 400,
                        "code": "invalid",
                        "title": "Invalid attribute",
                        "detail": f'"channel" must be one of [{", ".join(sorted(KUSTOMER_CHANNELS))}]',
                        "source": {"pointer": "/data/attributes/channel"},
                    }
                )
            if attributes.get("direction") not in ("in", "out") or not attributes.get("app"):
                errors.append({"status": 400, "code": "bad_request", "title": '"direction" and "app" are required'})
            if errors:
                return _Answer(400, {"errors": errors})
            conversation_id = attributes.get("conversation")
            if conversation_id is None:
                conversation_id = self._kustomer_conversation(customer_id, {"direction": "in"})["id"]
            conversation = conversations.get(str(conversation_id))
            if conversation is None or conversation["relationships"]["customer"]["data"]["id"] != customer_id:
                return _Answer(
                    400, {"errors": [{"code": "bad_request", "message": "conversation does not belong to the customer"}]}
                )
            conversation["attributes"]["messageCount"] += 1
            attributes.setdefault("createdAt", self._stamp())
            record = {
                "type": "message",
                "id": f"{self._next():024x}",
                "attributes": attributes,
                "relationships": {
                    "conversation": {"data": {"type": "conversation", "id": conversation_id}},
                    "customer": {"data": {"type": "customer", "id": customer_id}},
                    "createdBy": {"data": {"type": "user", "id": KUSTOMER_USER}},
                },
            }
            self._store("kustomer", "messages")[record["id"]] = record
            return _Answer(201, {"data": record})
        return not_found

    def _kustomer_note(self, conversation_id: str, text: str, user: str) -> dict[str, Any]:
        record = {
            "type": "note",
            "id": f"{self._next():024x}",
            "attributes": {"body": text, "createdAt": self._stamp()},
            "relationships": {
                "conversation": {"data": {"type": "conversation", "id": conversation_id}},
                "createdBy": {"data": {"type": "user", "id": user}},
            },
        }
        self._store("kustomer", "notes")[record["id"]] = record
        return record

    def _file(self, key: str, *, authorised: bool) -> _Answer:
        if not authorised:
            return _Answer(401, {"error": "Couldn't authenticate you"})
        found = self.files.get(key)
        if found is None:
            return _Answer(404, {"error": "RecordNotFound", "description": "Not found"})
        data, content_type = found
        return _Answer(200, None, {"Content-Type": content_type}, raw=data)

    def _kustomer_conversation(self, customer_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        record = {
            "type": "conversation",
            "id": f"{self._next():024x}",
            "attributes": {**attributes, "messageCount": 0},
            "relationships": {"customer": {"data": {"type": "customer", "id": customer_id}}},
        }
        self._store("kustomer", "conversations")[record["id"]] = record
        return record


def dataverse_context(note_id: str, incident_id: str, org_url: str) -> dict[str, Any]:
    """A Dataverse ``RemoteExecutionContext`` for the Create of a note on a case (the shape a service endpoint posts)."""
    contracts = "http://schemas.microsoft.com/xrm/2011/Contracts"
    target = {
        "__type": f"Entity:{contracts}",
        "Attributes": [
            {"key": "subject", "value": "Reply to customer"},
            {
                "key": "objectid",
                "value": {"__type": f"EntityReference:{contracts}", "Id": incident_id, "LogicalName": "incident", "Name": None},
            },
            {"key": "annotationid", "value": note_id},
        ],
        "Id": note_id,
        "LogicalName": "annotation",
    }
    return {
        "BusinessUnitId": str(uuid.UUID(int=1)),
        "CorrelationId": str(uuid.uuid4()),
        "Depth": 1,
        "InitiatingUserId": DYN_AGENT,
        "InputParameters": [{"key": "Target", "value": target}],
        "MessageName": "Create",
        "Mode": 1,
        "OrganizationName": urlsplit(org_url).hostname or "fake",
        "OutputParameters": [{"key": "id", "value": note_id}],
        "PrimaryEntityId": note_id,
        "PrimaryEntityName": "annotation",
        "Stage": 40,
        "UserId": DYN_AGENT,
    }


def _body(provider: str, record: dict[str, Any]) -> str:
    if provider == "zendesk":
        return str(record["body"])
    if provider == "salesforce":
        return str(record["CommentBody"])
    if provider == "dynamics":
        return str(record.get("notetext") or "")
    return str(record["attributes"].get("body") or record["attributes"].get("preview") or "")


def _kind(provider: str, record: dict[str, Any]) -> str:
    """What a record on a ticket is: the customer's ``message`` (Switchboard wrote it), Switchboard's private
    ``note``, or the ``agent``'s (a reply or an internal note)."""
    if provider == "zendesk":
        if record.get("via", {}).get("channel") != "api":
            return "agent"
        return "message" if record.get("public", True) else "note"
    if provider == "salesforce":
        if record.get("agent"):
            return "agent"
        return "note" if NOTE_MARK in record["CommentBody"] else "message"
    if provider == "dynamics":
        if record.get("agent"):
            return "agent"
        return "note" if str(record.get("subject") or "").startswith("Switchboard:") else "message"
    if record.get("type") == "note":
        return "agent" if record["relationships"]["createdBy"]["data"]["id"] != KUSTOMER_USER else "note"
    return "message" if record["attributes"].get("direction") == "in" else "agent"


def _soql_row(comment: dict[str, Any]) -> dict[str, Any]:
    return {
        "attributes": {"type": "CaseComment", "url": f"/services/data/v{SF_API_VERSION}/sobjects/CaseComment/{comment['Id']}"},
        "Id": comment["Id"],
        "CommentBody": comment["CommentBody"],
        "IsPublished": comment["IsPublished"],
        "CreatedById": comment["CreatedById"],
        "CreatedBy": {"attributes": {"type": "User"}, "Name": comment.get("CreatedByName")},
        "CreatedDate": comment["CreatedDate"],
    }


def _dataverse_note(note: dict[str, Any], select: str, names: bool) -> dict[str, Any]:
    columns = [c.strip() for c in select.split(",") if c.strip()] or [k for k in note if not k.startswith("@")]
    row = {c: note.get(c) for c in columns}
    if names and "_createdby_value" in columns:
        name = note.get("createdbyname") or (
            "Switchboard (application user)" if note.get("_createdby_value") == DYN_APP_USER else None
        )
        row["_createdby_value@OData.Community.Display.V1.FormattedValue"] = name
    return row


class _Reply(Exception):
    def __init__(self, answer: _Answer) -> None:
        self.answer = answer


_LOGGED_HEADERS = {"idempotency-key", "sforce-auto-assign", "prefer", "if-none-match", "if-match"}
_PREFIXES = ("dynamics-login", "zendesk", "salesforce", "dynamics", "kustomer")


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _need(body: Any, key: str, kind: type) -> Any:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, kind):
        raise _Reply(_Answer(400, {"error": "InvalidValue", "description": f"{key} is required"}))
    return value


def _provider_of(path: str) -> tuple[str | None, str]:
    for prefix in _PREFIXES:
        if path == f"/{prefix}" or path.startswith(f"/{prefix}/"):
            return prefix, path[len(prefix) + 1 :]
    return None, path


def _kind_of(provider: str | None, rest: str) -> str:
    if provider == "dynamics-login" or rest.endswith("/oauth2/token"):
        return "token"
    if rest in ("/api/v2/users/me.json", "/api/v2/users/me", "/api/data/v9.2/WhoAmI", "/v1/auth/tokens/current"):
        return "whoami"
    return "api"


def _fault_answer(provider: str | None, fault: _Fault) -> _Answer:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(int(fault.retry_after) if float(fault.retry_after).is_integer() else fault.retry_after)
    texts = {
        429: "Too Many Requests",
        401: "Unauthorized",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }
    text = fault.message or texts.get(fault.status, "Injected fault")
    if provider == "salesforce":
        code = {401: "INVALID_SESSION_ID", 429: "REQUEST_LIMIT_EXCEEDED"}.get(fault.status, "SERVER_ERROR")
        if fault.message and fault.status < 500 and fault.status not in (401, 429):
            code = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        return _Answer(fault.status, [{"message": f"injected: {text}", "errorCode": code}], headers)
    if provider == "dynamics":
        return _Answer(fault.status, {"error": {"code": "0x80072322", "message": f"injected: {text}"}}, headers)
    if provider == "kustomer":
        if fault.message:
            error = {"status": fault.status, "code": "invalid", "title": "Invalid", "detail": text}
            return _Answer(fault.status, {"errors": [error]}, headers)
        return _Answer(fault.status, {"errors": [{"status": fault.status, "code": "injected", "title": text}]}, headers)
    return _Answer(fault.status, {"error": "RecordInvalid" if fault.message else "Injected", "description": text}, headers)
