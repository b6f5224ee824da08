from __future__ import annotations

import pytest
import requests
import responses
from crm_support import DYN_CLIENT_ID, DYN_CLIENT_SECRET, DYN_TENANT, IDENTITY, body_of, form_of, load, serve

from switchboard.crm.base import ConversationRef, CrmAuthError, CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.crm.dynamics import DynamicsAdapter, entity_id_from_header, record_id
from switchboard.envelope import Envelope

ORG = "https://acme.crm.dynamics.com"
API = f"{ORG}/api/data/v9.2"
TOKEN_URL = f"https://login.microsoftonline.com/{DYN_TENANT}/oauth2/v2.0/token"
ACCESS = load("dynamics")["token"]["json"]["access_token"]
APP_USER = "a1b2c3d4-5e6f-ee11-be6f-000d3a5c9b02"
AGENT = "0f0e0d0c-0b0a-4909-8807-060504030201"
CONTACT_ID = record_id("contact", IDENTITY)
INCIDENT_ID = record_id("incident", "conv-0001")


@pytest.fixture
def adapter(session: requests.Session) -> DynamicsAdapter:
    return DynamicsAdapter(
        org_url=ORG + "/", tenant_id=DYN_TENANT, client_id=DYN_CLIENT_ID, client_secret=DYN_CLIENT_SECRET, session=session
    )


def _upserted(rsps: responses.RequestsMock, entity_set: str, key: str) -> None:
    serve(rsps, "dynamics", "upserted_204", url=f"{API}/{entity_set}({key})", fill={"entity_set": entity_set, "id": key})


def test_ids_are_deterministic() -> None:
    assert record_id("incident", "conv-0001") == INCIDENT_ID
    assert record_id("incident", "conv-0002") != INCIDENT_ID
    assert record_id("contact", "conv-0001") != INCIDENT_ID
    assert (
        entity_id_from_header(f"{API}/incidents(AB5F1C2E-0000-4000-8000-000000000001)") == "ab5f1c2e-0000-4000-8000-000000000001"
    )
    assert entity_id_from_header(None) is None


def test_whoami_is_the_application_user(rsps: responses.RequestsMock, adapter: DynamicsAdapter) -> None:
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "whoami")
    assert adapter.whoami().id == APP_USER
    assert adapter.whoami().id == APP_USER
    token, whoami = rsps.calls
    assert token.request.url == TOKEN_URL
    assert form_of(token) == {
        "grant_type": "client_credentials",
        "client_id": DYN_CLIENT_ID,
        "client_secret": DYN_CLIENT_SECRET,
        "scope": f"{ORG}/.default",
    }
    assert whoami.request.url == f"{API}/WhoAmI"
    assert whoami.request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert whoami.request.headers["OData-Version"] == "4.0"
    assert adapter.http.calls.snapshot() == {"token": 1, "whoami": 1, "api": 0, "total": 2}


def test_custom_authority(rsps: responses.RequestsMock, session: requests.Session) -> None:
    adapter = DynamicsAdapter(
        org_url=ORG,
        tenant_id=DYN_TENANT,
        client_id=DYN_CLIENT_ID,
        client_secret=DYN_CLIENT_SECRET,
        authority_url="http://127.0.0.1:8443/",
        session=session,
    )
    serve(rsps, "dynamics", "token", url=f"http://127.0.0.1:8443/{DYN_TENANT}/oauth2/v2.0/token")
    serve(rsps, "dynamics", "whoami")
    assert adapter.whoami().id == APP_USER


def test_refused_client_secret_is_an_auth_error(rsps: responses.RequestsMock, adapter: DynamicsAdapter) -> None:
    serve(rsps, "dynamics", "token_invalid_client")
    with pytest.raises(CrmAuthError) as info:
        adapter.whoami()
    assert "invalid_client" in info.value.message and "AADSTS7000215" in info.value.message
    assert "Trace ID" not in info.value.message


def test_upsert_contact_is_a_patch_on_a_derived_id(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "dynamics", "token")
    _upserted(rsps, "contacts", CONTACT_ID)
    assert adapter.upsert_contact(conversation, owner_id=None) == CONTACT_ID
    call = rsps.calls[1]
    assert call.request.method == "PATCH"
    assert call.request.url == f"{API}/contacts({CONTACT_ID})"
    assert "If-None-Match" not in call.request.headers and "If-Match" not in call.request.headers
    assert body_of(call) == {"lastname": "Taro Yamada"}


def test_upsert_contact_with_an_agent_owner(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "dynamics", "token")
    _upserted(rsps, "contacts", CONTACT_ID)
    adapter.upsert_contact(conversation, owner_id=AGENT)
    assert body_of(rsps.calls[1])["ownerid@odata.bind"] == f"/systemusers({AGENT})"


def test_open_incident_204_entity_id_owned_by_given_user(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "dynamics", "token")
    _upserted(rsps, "incidents", INCIDENT_ID)
    assert adapter.open_ticket(conversation, contact_id=CONTACT_ID, first_message=first_message, owner_id=AGENT) == INCIDENT_ID
    call = rsps.calls[1]
    assert call.request.method == "PATCH" and call.request.url == f"{API}/incidents({INCIDENT_ID})"
    assert call.request.headers["If-None-Match"] == "*"
    assert "Prefer" not in call.request.headers
    assert body_of(call) == {
        "title": "LINE: I need a refund for order 1234",
        "description": "I need a refund for order 1234",
        "customerid_contact@odata.bind": f"/contacts({CONTACT_ID})",
        "ownerid@odata.bind": f"/systemusers({AGENT})",
    }


def test_open_incident_without_default_user_is_owned_by_the_app_user(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "whoami")
    _upserted(rsps, "incidents", INCIDENT_ID)
    adapter.open_ticket(conversation, contact_id=CONTACT_ID, first_message=first_message, owner_id=None)
    assert body_of(rsps.calls[2])["ownerid@odata.bind"] == f"/systemusers({APP_USER})"


def test_open_incident_201_representation(
    rsps: responses.RequestsMock, session: requests.Session, conversation: ConversationRef, first_message: Envelope
) -> None:
    adapter = DynamicsAdapter(
        org_url=ORG,
        tenant_id=DYN_TENANT,
        client_id=DYN_CLIENT_ID,
        client_secret=DYN_CLIENT_SECRET,
        return_representation=True,
        case_origin_code=3,
        session=session,
    )
    serve(rsps, "dynamics", "token")
    serve(
        rsps,
        "dynamics",
        "incident_201_representation",
        url=f"{API}/incidents({INCIDENT_ID})",
        fill={"id": INCIDENT_ID, "contact": CONTACT_ID, "owner": AGENT},
    )
    assert adapter.open_ticket(conversation, contact_id=CONTACT_ID, first_message=first_message, owner_id=AGENT) == INCIDENT_ID
    call = rsps.calls[1]
    assert call.request.headers["Prefer"] == "return=representation"
    assert body_of(call)["caseorigincode"] == 3


def test_reopening_the_same_incident_gets_412_and_the_same_id(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "dynamics", "token")
    _upserted(rsps, "incidents", INCIDENT_ID)
    serve(rsps, "dynamics", "already_exists_412", url=f"{API}/incidents({INCIDENT_ID})")
    first = adapter.open_ticket(conversation, contact_id=CONTACT_ID, first_message=first_message, owner_id=AGENT)
    again = adapter.open_ticket(conversation, contact_id=CONTACT_ID, first_message=first_message, owner_id=AGENT)
    assert first == again == INCIDENT_ID
    assert rsps.calls[1].request.url == rsps.calls[2].request.url


def test_append_message_as_note_created_once(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    note_id = record_id("annotation", later_message.id)
    serve(rsps, "dynamics", "token")
    _upserted(rsps, "annotations", note_id)
    serve(rsps, "dynamics", "already_exists_412", url=f"{API}/annotations({note_id})")
    for _ in range(2):  # a redelivered message: the second write is a 412, not a second note
        adapter.append_message(conversation, ticket_id=INCIDENT_ID, contact_id=CONTACT_ID, message=later_message, owner_id=None)
    call = rsps.calls[1]
    assert call.request.method == "PATCH" and call.request.url == f"{API}/annotations({note_id})"
    assert call.request.headers["If-None-Match"] == "*"
    assert body_of(call) == {
        "subject": "LINE: It arrived broken",
        "notetext": "It arrived broken",
        "isdocument": False,
        "objectid_incident@odata.bind": f"/incidents({INCIDENT_ID})",
    }


def test_401_refreshes_the_token_once(rsps: responses.RequestsMock, adapter: DynamicsAdapter) -> None:
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "unauthorized_401", url=f"{API}/WhoAmI")
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "whoami")
    assert adapter.whoami().id == APP_USER
    assert [c.request.url for c in rsps.calls] == [TOKEN_URL, f"{API}/WhoAmI", TOKEN_URL, f"{API}/WhoAmI"]
    assert adapter.http.calls.token == 2


def test_401_twice_is_an_auth_error(rsps: responses.RequestsMock, adapter: DynamicsAdapter) -> None:
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "unauthorized_401", url=f"{API}/WhoAmI")
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "unauthorized_401", url=f"{API}/WhoAmI")
    with pytest.raises(CrmAuthError, match="HTTP 401"):
        adapter.whoami()


def test_429_retry_after(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    note_id = record_id("annotation", later_message.id)
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "throttled_429", method="PATCH", url=f"{API}/annotations({note_id})")
    with pytest.raises(CrmRateLimited) as info:
        adapter.append_message(conversation, ticket_id=INCIDENT_ID, contact_id=CONTACT_ID, message=later_message, owner_id=None)
    assert info.value.retry_after == 93.0
    assert "0x80072322" in info.value.message


def test_400_is_rejected_with_dataverse_text(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "bad_payload_400", url=f"{API}/incidents({INCIDENT_ID})")
    with pytest.raises(CrmRejected) as info:
        adapter.open_ticket(conversation, contact_id=CONTACT_ID, first_message=first_message, owner_id=AGENT)
    assert info.value.status == 400
    assert "HTTP 400" in info.value.message and "0x80048d19" in info.value.message and "titel" in info.value.message


def test_500_and_timeout_are_retryable(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "server_error_500", url=f"{API}/contacts({CONTACT_ID})")
    rsps.add(responses.PATCH, f"{API}/contacts({CONTACT_ID})", body=requests.exceptions.ReadTimeout())
    with pytest.raises(CrmRetryable) as info:
        adapter.upsert_contact(conversation, owner_id=None)
    assert info.value.status == 500 and "An unexpected error occurred." in info.value.message
    with pytest.raises(CrmRetryable, match="timed out"):
        adapter.upsert_contact(conversation, owner_id=None)


def test_call_count_for_a_conversation(
    rsps: responses.RequestsMock,
    adapter: DynamicsAdapter,
    conversation: ConversationRef,
    first_message: Envelope,
    later_message: Envelope,
) -> None:
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "whoami")
    _upserted(rsps, "contacts", CONTACT_ID)
    _upserted(rsps, "incidents", INCIDENT_ID)
    _upserted(rsps, "annotations", record_id("annotation", later_message.id))
    owner = adapter.whoami().id
    contact = adapter.upsert_contact(conversation, owner_id=owner)
    incident = adapter.open_ticket(conversation, contact_id=contact, first_message=first_message, owner_id=None)
    assert adapter.http.calls.snapshot() == {"token": 1, "whoami": 1, "api": 2, "total": 4}
    adapter.append_message(conversation, ticket_id=incident, contact_id=contact, message=later_message, owner_id=None)
    assert adapter.http.calls.api == 3 and adapter.http.calls.total == 5


def test_append_with_default_user_always_owns_the_note(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    note_id = record_id("annotation", later_message.id)
    serve(rsps, "dynamics", "token")
    _upserted(rsps, "annotations", note_id)
    adapter.append_message(conversation, ticket_id=INCIDENT_ID, contact_id=CONTACT_ID, message=later_message, owner_id=APP_USER)
    assert body_of(rsps.calls[1])["ownerid@odata.bind"] == f"/systemusers({APP_USER})"


def test_ticket_owner_without_default_user_is_the_application_user(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter
) -> None:
    serve(rsps, "dynamics", "token")
    serve(rsps, "dynamics", "whoami")
    assert adapter.ticket_owner(None) == APP_USER
    assert adapter.ticket_owner(AGENT) == AGENT
    assert len(rsps.calls) == 2


def test_authenticated_contact_id_is_used_when_dynamics_has_it(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef
) -> None:
    known = "6a1d0c55-2b3e-4f60-9a7b-8c9d0e1f2a3b"
    serve(rsps, "dynamics", "token")
    rsps.add(responses.GET, f"{API}/contacts({known})?%24select=contactid", json={"contactid": known.upper()})
    signed_in = ConversationRef(**{**conversation.__dict__, "contact_id": known})
    assert adapter.upsert_contact(signed_in, owner_id=None) == known
    assert len(rsps.calls) == 2


def test_authenticated_contact_id_unknown_to_dynamics_falls_back_to_the_identity(
    rsps: responses.RequestsMock, adapter: DynamicsAdapter, conversation: ConversationRef
) -> None:
    gone = "00000000-2b3e-4f60-9a7b-8c9d0e1f2a3b"
    serve(rsps, "dynamics", "token")
    rsps.add(
        responses.GET,
        f"{API}/contacts({gone})?%24select=contactid",
        status=404,
        json={"error": {"code": "0x80040217", "message": "contact With Id = gone Does Not Exist"}},
    )
    _upserted(rsps, "contacts", CONTACT_ID)
    signed_in = ConversationRef(**{**conversation.__dict__, "contact_id": gone})
    assert adapter.upsert_contact(signed_in, owner_id=None) == CONTACT_ID
    # Not a GUID: not even looked up.
    _upserted(rsps, "contacts", CONTACT_ID)
    portal = ConversationRef(**{**conversation.__dict__, "contact_id": "portal-user-17"})
    assert adapter.upsert_contact(portal, owner_id=None) == CONTACT_ID
    assert len(rsps.calls) == 4
