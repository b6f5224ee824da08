"""Salesforce: Contact and Case by external-id upsert, CaseComment for later messages (protocols.md 5.2).

Salesforce has no idempotency header, so both writes that open a conversation are upserts keyed on
external-id fields (the channel identity on Contact, the conversation id on Case): a retry updates
the record it already wrote instead of creating a twin.

Credentials are refresh tokens of linked admin users. The admin links several so that revoking one
(the user left, the token was reset) does not stop the pipeline: each token is tried in order and a
refused one (``invalid_grant``) falls over to the next. Every failover is reported as a
:class:`~switchboard.crm.base.CrmNotice` in ``notices`` (and to ``on_notice`` if given), because the
admin has to re-link the revoked user even though calls keep succeeding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import quote

from switchboard.crm.base import (
    AgentReply,
    ContactFields,
    ConversationRef,
    CrmAdapter,
    CrmAuthError,
    CrmConfigError,
    CrmNotice,
    CrmRejected,
    CrmThread,
    CrmUser,
    OwnWrites,
    check_shared_key,
    event_body,
    has_note_ref,
    iso_ms,
    note_with_ref,
    same_origin,
    same_text,
    text_setting,
    truncate,
    url_setting,
)
from switchboard.crm.http import CrmHttp, describe_message, error_codes, subject_for
from switchboard.envelope import Envelope
from switchboard.errors import BadRequest
from switchboard.outbound_http import Response, Session
from switchboard.settings import CrmSettings
from switchboard.web import WebhookRequest

DEFAULT_API_VERSION = "59.0"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_CONTACT_ID_FIELD = "Switchboard_Identity__c"
DEFAULT_CASE_ID_FIELD = "Switchboard_Conversation_Id__c"
DEFAULT_CASE_ORIGIN = "Web"
# REQUEST_LIMIT_EXCEEDED (a 403) is a rolling 24 h allocation: hammering it every few seconds only
# burns what frees up, so back off for minutes rather than seconds.
LIMIT_RETRY_AFTER = 300.0
LASTNAME_LIMIT = 80
SUBJECT_LIMIT = 255
DESCRIPTION_LIMIT = 32000
COMMENT_LIMIT = 4000
MAX_QUERY_PAGES = 20  # 2,000 comments a page: far past any case a person reads
# OAuth errors that condemn one refresh token but say nothing about the others.
_TOKEN_REFUSED = frozenset({"invalid_grant", "inactive_user"})
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
# API names of custom fields: they are a path segment of the upsert URL, so nothing else gets through.
_FIELD_NAME = "^[A-Za-z][A-Za-z0-9_]{0,79}$"


def normalise_org_id(value: str) -> str:
    """The 15-character org id the settings keep (18 characters are cut to 15; other lengths are refused).

    An 18-character id is case-insensitive: when its checksum decodes, the case of the first 15
    characters is rebuilt from it, so an id that was upper-cased on the way still names the right org.
    """
    candidate = value.strip()
    if not candidate.isalnum() or not candidate.isascii():
        raise ValueError(f"Salesforce org id must be 15 or 18 letters and digits, got {len(candidate)} characters")
    if len(candidate) == 15:
        return candidate
    if len(candidate) != 18:
        raise ValueError(f"Salesforce org id must be 15 or 18 characters long, got {len(candidate)}")
    head, suffix = candidate[:15], candidate[15:].upper()
    if any(c not in _CHECKSUM_ALPHABET for c in suffix):
        return head
    chars: list[str] = []
    for chunk in range(3):
        bits = _CHECKSUM_ALPHABET.index(suffix[chunk])
        for j, c in enumerate(head[chunk * 5 : chunk * 5 + 5]):
            chars.append(c.upper() if bits & (1 << j) else c.lower())
    return "".join(chars)


def case_safe_id(value: str) -> str:
    """The 18-character form of a record id (a flow may send either; the API answered the 18-character one)."""
    if len(value) == 18:
        return value
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << j for j, c in enumerate(value[chunk * 5 : chunk * 5 + 5]) if "A" <= c <= "Z")
        suffix += _CHECKSUM_ALPHABET[bits]
    return value + suffix


def daily_limit(response: Response) -> float | None:
    """Salesforce reports its API request limit as a 403, not a 429: still a wait, not a rejection."""
    if response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in error_codes(response):
        return LIMIT_RETRY_AFTER
    return None


@dataclass(frozen=True)
class _Session:
    access_token: str
    instance_url: str
    user_id: str
    org_id: str | None
    token_index: int


class SalesforceAdapter(CrmAdapter):
    provider: ClassVar[str] = "salesforce"
    label: ClassVar[str] = "Salesforce"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "login_url": url_setting(
            f"Where the refresh tokens are exchanged: {DEFAULT_LOGIN_URL}, https://test.salesforce.com "
            "for a sandbox, or the org's My Domain address."
        ),
        "org_id": text_setting(
            "The org's id (15 or 18 characters, 00D...): a token of another org is refused.", pattern=_RECORD_ID.pattern
        ),
        "api_version": text_setting(
            "The REST API version, e.g. 59.0.", pattern="^v?[0-9]{1,3}\\.[0-9]$", default=DEFAULT_API_VERSION
        ),
        "contact_external_id_field": text_setting(
            "The Contact's external-id field holding the channel identity (the contact upsert's key).",
            pattern=_FIELD_NAME,
            default=DEFAULT_CONTACT_ID_FIELD,
        ),
        "case_external_id_field": text_setting(
            "The Case's external-id field holding the conversation id (the case upsert's key).",
            pattern=_FIELD_NAME,
            default=DEFAULT_CASE_ID_FIELD,
        ),
        "case_origin": {
            "type": ["string", "null"],
            "default": DEFAULT_CASE_ORIGIN,
            "description": "The Case Origin picklist value of new cases; null leaves the org's default.",
        },
    }
    required_settings: ClassVar[tuple[str, ...]] = ("login_url", "org_id")
    required_secrets: ClassVar[tuple[str, ...]] = ("client_id", "client_secret", "refresh_tokens")
    # The key of its events (interface section 6); for Zendesk `apply` fetches it unless the file gives it.
    optional_secrets: ClassVar[tuple[str, ...]] = ("events_secret",)
    list_secrets: ClassVar[tuple[str, ...]] = ("refresh_tokens",)
    contact_name_limit: ClassVar[int | None] = LASTNAME_LIMIT

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_tokens: Sequence[str],
        login_url: str = DEFAULT_LOGIN_URL,
        api_version: str = DEFAULT_API_VERSION,
        org_id: str | None = None,
        contact_id_field: str = DEFAULT_CONTACT_ID_FIELD,
        case_id_field: str = DEFAULT_CASE_ID_FIELD,
        case_origin: str | None = DEFAULT_CASE_ORIGIN,
        session: Session | None = None,
        on_notice: Callable[[CrmNotice], None] | None = None,
    ) -> None:
        if isinstance(refresh_tokens, str):
            refresh_tokens = [refresh_tokens]
        tokens = [t for t in refresh_tokens if t]
        if not tokens:
            raise ValueError("salesforce needs at least one refresh token")
        self.login_url = login_url.rstrip("/")
        self.api_version = str(api_version).removeprefix("v")
        self.org_id = normalise_org_id(org_id) if org_id else None
        self.contact_id_field = contact_id_field
        self.case_id_field = case_id_field
        self.case_origin = case_origin
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_tokens = tokens
        self._next_index = 0
        self._session: _Session | None = None
        # Every linked admin a token has named: an owner that is one of them means "the linked admin".
        self._admin_ids: set[str] = set()
        # The client id is stored as a secret like the rest of the credentials: no error repeats it either.
        secrets = [client_secret, client_id, *tokens]
        self.http = CrmHttp(self.provider, session=session, secrets=secrets, rate_limited=daily_limit)
        self.notices: list[CrmNotice] = []
        self._on_notice = on_notice

    @classmethod
    def stored_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The org id is kept in its 15-character form, the one the token's identity URL is compared with."""
        stored = dict(settings)
        if isinstance(stored.get("org_id"), str):
            stored["org_id"] = normalise_org_id(stored["org_id"])
        return stored

    @classmethod
    def from_settings(cls, settings: CrmSettings, secrets: Mapping[str, Any], *, session: Session | None = None) -> Self:
        values = cls.resolve_settings(settings, secrets)
        tokens = cls.secret_list(secrets, "refresh_tokens")
        if not tokens:
            raise CrmConfigError(f"crm ({cls.provider}) is missing: secrets.refresh_tokens")
        try:
            return cls(
                client_id=str(secrets["client_id"]),
                client_secret=str(secrets["client_secret"]),
                refresh_tokens=tokens,
                login_url=values["login_url"],
                api_version=values["api_version"] or DEFAULT_API_VERSION,
                org_id=values["org_id"],
                contact_id_field=values["contact_external_id_field"] or DEFAULT_CONTACT_ID_FIELD,
                case_id_field=values["case_external_id_field"] or DEFAULT_CASE_ID_FIELD,
                case_origin=values["case_origin"],
                session=session,
            )
        except ValueError as exc:  # an org id that is not 15 or 18 letters and digits; the message names no secret
            raise CrmConfigError(f"crm ({cls.provider}) org_id: {exc}") from None

    # -- notices -----------------------------------------------------------------------------

    def drain_notices(self) -> list[CrmNotice]:
        """Hand over (and forget) what happened since the last drain, for the caller to report."""
        drained, self.notices = self.notices, []
        return drained

    def _notify(self, notice: CrmNotice) -> None:
        self.notices.append(notice)
        if self._on_notice is not None:
            self._on_notice(notice)

    # -- authentication ----------------------------------------------------------------------

    def _authenticate(self) -> _Session:
        """Refresh-token grant, trying the linked users' tokens from the last one that worked."""
        total = len(self._refresh_tokens)
        start = self._next_index
        refused: list[str] = []
        for index in range(start, total):
            response = self.http.request(
                "POST",
                f"{self.login_url}/services/oauth2/token",
                kind="token",
                form={
                    "grant_type": "refresh_token",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "refresh_token": self._refresh_tokens[index],
                },
                passthrough=(400, 401),
            )
            if response.status_code >= 400:
                body = self.http.json_object(response) if response.content else {}
                error = str(body.get("error") or "")
                description = self.http.redact(str(body.get("error_description") or ""))
                if error not in _TOKEN_REFUSED:
                    # invalid_client, invalid_client_id, ...: the app credentials are wrong; every token would fail.
                    raise self.http.error(
                        CrmAuthError,
                        f"token request refused: HTTP {response.status_code}: {error or 'error'}: {description}",
                        status=response.status_code,
                    )
                refused.append(f"#{index + 1}: {error}: {description}")
                next_index = index + 1
                self._notify(
                    CrmNotice(
                        kind="salesforce_refresh_token_refused",
                        message=(
                            f"Salesforce refused linked admin refresh token #{index + 1} of {total} ({error}: {description}); "
                            + (f"failing over to #{next_index + 1}" if next_index < total else "no linked admin token left")
                        ),
                        detail={"index": index, "total": total, "error": error, "description": description},
                    )
                )
                continue
            body = self.http.json_object(response)
            try:
                access_token = str(body["access_token"])
                instance_url = str(body["instance_url"]).rstrip("/")
                identity_url = str(body["id"])
            except KeyError as exc:
                raise self.http.error(
                    CrmAuthError, f"token response lacks {exc.args[0]!r}", status=response.status_code
                ) from None
            self.http.redact.add(access_token)
            rotated = body.get("refresh_token")
            if isinstance(rotated, str) and rotated and rotated != self._refresh_tokens[index]:
                # Refresh token rotation invalidates the one just used; keep the new one for this process.
                self._refresh_tokens[index] = rotated
                self.http.redact.add(rotated)
                self._notify(
                    CrmNotice(
                        kind="salesforce_refresh_token_rotated",
                        message=f"Salesforce rotated linked admin refresh token #{index + 1}; store the new value",
                        detail={"index": index},
                    )
                )
            parts = [p for p in identity_url.rstrip("/").split("/") if p]
            if len(parts) < 2:
                raise self.http.error(CrmAuthError, "token response has an identity URL without a user id")
            self._next_index = index
            self._admin_ids.add(parts[-1])
            self._session = _Session(
                access_token=access_token,
                instance_url=instance_url,
                user_id=parts[-1],
                org_id=parts[-2] if parts[-2].startswith("00D") else None,
                token_index=index,
            )
            return self._session
        raise self.http.error(
            CrmAuthError,
            f"every linked admin refresh token was refused ({'; '.join(refused) or 'none left to try'})",
            status=400,
        )

    def _current(self) -> _Session:
        return self._session if self._session is not None else self._authenticate()

    def _forget_session(self) -> None:
        self._session = None

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._current().access_token}"}

    def _api(self, method: str, path: str, **kwargs: Any) -> Response:
        base = f"{self._current().instance_url}/services/data/v{self.api_version}"
        body = kwargs.get("json_body")

        def auth() -> dict[str, str]:
            # Asked again after a 401's refresh, before the body is serialised: a write that was to be
            # owned by the linked admin whose token has just been refused (a revoked, perhaps
            # deactivated user, who can own nothing) is owned by the admin whose token works.
            headers = self._bearer()
            if isinstance(body, dict) and body.get("OwnerId") in self._admin_ids:
                body["OwnerId"] = self._current().user_id
            return headers

        return self.http.request(method, f"{base}/{path}", auth=auth, refresh=self._forget_session, **kwargs)

    def ticket_owner(self, owner_id: str | None) -> str | None:
        """The linked admin's id as it is now: a failover since ``owner_id`` was read changed who that is."""
        if owner_id is not None and owner_id in self._admin_ids and self._session is not None:
            return self._session.user_id
        return owner_id

    # -- CrmAdapter ----------------------------------------------------------------------------

    def whoami(self) -> CrmUser:
        """The linked admin, read from the token response's identity URL: no extra call."""
        current = self._current()
        if self.org_id and current.org_id and normalise_org_id(current.org_id) != self.org_id:
            raise self.http.error(
                CrmAuthError,
                f"the linked admin belongs to org {normalise_org_id(current.org_id)}, not the configured org {self.org_id}",
            )
        return CrmUser(id=current.user_id)

    @staticmethod
    def _owner_headers(body: dict[str, Any], owner_id: str | None) -> dict[str, str]:
        """An explicit owner must survive assignment rules, which otherwise run on every REST write."""
        if not owner_id:
            return {}
        body["OwnerId"] = owner_id
        return {"Sforce-Auto-Assign": "FALSE"}

    def _upsert(self, sobject: str, field: str, value: str, body: dict[str, Any], headers: dict[str, str]) -> str:
        path = f"sobjects/{sobject}/{field}/{quote(value, safe='')}"
        response = self._api("PATCH", path, json_body=body, headers=headers)
        if response.status_code == 204 or not response.content:
            # API versions before 46.0 answer an update with 204 and no id.
            found = self._api("GET", path, params={"fields": "Id"})
            record_id = self.http.json_object(found).get("Id")
        else:
            record_id = self.http.json_object(response).get("id")
        if not record_id:
            raise self.http.error(CrmRejected, f"{sobject} upsert returned no id", status=response.status_code)
        return str(record_id)

    def _existing_contact(self, contact_id: str) -> str | None:
        """The authenticated contact id, when it names a Contact this org has (ids are 15 or 18 letters and digits)."""
        if not _RECORD_ID.match(contact_id):
            return None
        response = self._api("GET", f"sobjects/Contact/{contact_id}", params={"fields": "Id"}, passthrough=(400, 404))
        if response.status_code >= 400:
            return None
        found = self.http.json_object(response).get("Id")
        return str(found) if found else None

    def _write_contact(self, contact: ContactFields, *, owner_id: str | None) -> str:
        body: dict[str, Any] = {"LastName": contact.name}
        if contact.email:
            body["Email"] = contact.email
        headers = self._owner_headers(body, owner_id)
        return self._upsert("Contact", self.contact_id_field, contact.identity, body, headers)

    def _create_ticket(
        self, conversation: ConversationRef, *, contact_id: str, first_message: Envelope, owner_id: str | None
    ) -> str:
        # An upsert keyed on the conversation id: a retry updates the Case it already wrote.
        body: dict[str, Any] = {
            "Subject": subject_for(conversation.channel, first_message, SUBJECT_LIMIT),
            "Description": truncate(describe_message(first_message), DESCRIPTION_LIMIT),
            "ContactId": contact_id,
        }
        if self.case_origin:
            body["Origin"] = self.case_origin
        headers = self._owner_headers(body, owner_id)
        return self._upsert("Case", self.case_id_field, conversation.conversation_id, body, headers)

    def append_message(
        self, conversation: ConversationRef, *, ticket_id: str, contact_id: str, message: Envelope, owner_id: str | None
    ) -> None:
        # CaseComment has no owner of its own: it is created by the linked admin (the API user) in every mode.
        # IsPublished is left to its default, false: the customer's own words are never a public reply to send back.
        body = {"ParentId": ticket_id, "CommentBody": truncate(describe_message(message), COMMENT_LIMIT)}
        self._api("POST", "sobjects/CaseComment", json_body=body)

    # -- the way back (interface section 6) ------------------------------------------------------------

    @classmethod
    def verify_event(cls, request: WebhookRequest, secret: str, *, now: float) -> None:
        """The flow's HTTP callout sends the events secret in ``X-Switchboard-Key``; compared in constant time."""
        check_shared_key(request, secret)

    @classmethod
    def event_ticket(cls, request: WebhookRequest) -> str | None:
        """``{"case_id": "<Case Id>"}``, 15 or 18 characters, returned in the 18-character form Switchboard stored."""
        body = event_body(request)
        if not isinstance(body, dict) or "case_id" not in body:
            raise BadRequest('the event body is not {"case_id": ...}')
        value = body["case_id"]
        if not isinstance(value, str) or not _RECORD_ID.match(value.strip()):
            raise BadRequest("case_id is not a 15- or 18-character Salesforce id")
        return case_safe_id(value.strip())

    def _case_comments(self, case_id: str) -> list[dict[str, Any]]:
        """The case's comments in CreatedDate order: one SOQL query (protocols 8.7), its further batches followed."""
        if not _RECORD_ID.match(case_id):  # only letters and digits reach the query's literal
            raise self.http.error(CrmRejected, "the case id is not a Salesforce id")
        fields = "Id, CommentBody, IsPublished, CreatedById, CreatedBy.Name, CreatedDate"
        soql = f"SELECT {fields} FROM CaseComment WHERE ParentId = '{case_id}' ORDER BY CreatedDate"  # noqa: S608 - an id checked above
        response = self._api("GET", "query", params={"q": soql})
        records: list[dict[str, Any]] = []
        for _ in range(MAX_QUERY_PAGES):
            body = self.http.json_object(response)
            batch = body.get("records")
            records.extend(r for r in (batch if isinstance(batch, list) else []) if isinstance(r, dict))
            following = body.get("nextRecordsUrl")
            if body.get("done") is not False or not isinstance(following, str) or not following.startswith("/services/"):
                break
            url = f"{self._current().instance_url}{following}"
            if not same_origin(url, self._current().instance_url):
                break
            response = self.http.request("GET", url, auth=self._bearer, refresh=self._forget_session)
        return records

    def read_thread(self, ticket_id: str, *, own: OwnWrites) -> CrmThread:
        """Published CaseComments, never one Switchboard wrote, and the case's ContactId.

        Switchboard writes the customer's messages as unpublished comments; one an agent later made
        public is still the customer's own when its body is one Switchboard wrote (``own.texts``).
        """
        if not _RECORD_ID.match(ticket_id):
            raise self.http.error(CrmRejected, "the case id is not a Salesforce id")
        case = self._api("GET", f"sobjects/Case/{ticket_id}", params={"fields": "Id,ContactId"}, passthrough=(404,))
        if case.status_code == 404:
            return CrmThread(ticket_id=ticket_id, contact_id=None)
        contact = self.http.json_object(case).get("ContactId")
        replies: list[AgentReply] = []
        for record in self._case_comments(ticket_id):
            text = record.get("CommentBody")
            if record.get("IsPublished") is not True or not isinstance(text, str) or not record.get("Id"):
                continue
            if any(same_text(text, written) or same_text(text, truncate(written, COMMENT_LIMIT)) for written in own.texts):
                continue
            creator = record.get("CreatedBy")
            name = creator.get("Name") if isinstance(creator, dict) else None
            created = iso_ms(record.get("CreatedDate"))
            replies.append(
                AgentReply(
                    crm_id=str(record["Id"]),
                    text=text,
                    created_at=created if created is not None else 0,
                    author=name if isinstance(name, str) else None,
                )
            )
        replies.sort(key=lambda r: r.created_at)
        return CrmThread(ticket_id=ticket_id, contact_id=str(contact) if contact else None, replies=tuple(replies))

    def add_private_note(self, ticket_id: str, text: str, *, key: str) -> None:
        """An unpublished CaseComment, once per ``key``: CaseComment takes no external id, so it is looked for first."""
        if any(has_note_ref(r.get("CommentBody"), key) for r in self._case_comments(ticket_id) if r.get("IsPublished") is False):
            return
        body = {
            "ParentId": ticket_id,
            "CommentBody": note_with_ref(truncate(text, COMMENT_LIMIT - 100), key),
            "IsPublished": False,
        }
        self._api("POST", "sobjects/CaseComment", json_body=body)
