from __future__ import annotations

import base64

import pytest
import requests
import responses
from crm_support import IDENTITY, ZENDESK_API_TOKEN, body_of, serve

from switchboard.crm.base import ConversationRef, CrmAuthError, CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.crm.zendesk import ZendeskAdapter, idempotency_key
from switchboard.envelope import Envelope

API = "https://acme.zendesk.com/api/v2"
BASIC = "Basic " + base64.b64encode(f"admin@acme.com/token:{ZENDESK_API_TOKEN}".encode()).decode()


@pytest.fixture
def adapter(session: requests.Session) -> ZendeskAdapter:
    return ZendeskAdapter(
        base_url="https://acme.zendesk.com/", email="admin@acme.com", api_token=ZENDESK_API_TOKEN, session=session
    )


def test_whoami_is_the_token_user_and_cached(rsps: responses.RequestsMock, adapter: ZendeskAdapter) -> None:
    serve(rsps, "zendesk", "users_me")
    assert adapter.whoami().id == "361898904439"
    assert adapter.whoami().name == "Acme Admin"
    assert len(rsps.calls) == 1
    assert rsps.calls[0].request.url == f"{API}/users/me.json"
    assert rsps.calls[0].request.headers["Authorization"] == BASIC
    assert adapter.http.calls.whoami == 1


def test_whoami_anonymous_user_is_an_auth_error(rsps: responses.RequestsMock, adapter: ZendeskAdapter) -> None:
    serve(rsps, "zendesk", "users_me_anonymous")
    with pytest.raises(CrmAuthError, match="anonymous"):
        adapter.whoami()


def test_whoami_401_is_an_auth_error_without_retry(rsps: responses.RequestsMock, adapter: ZendeskAdapter) -> None:
    serve(rsps, "zendesk", "unauthorized")
    with pytest.raises(CrmAuthError) as info:
        adapter.whoami()
    assert "HTTP 401" in info.value.message and "Couldn't authenticate you" in info.value.message
    assert len(rsps.calls) == 1  # an API token cannot be refreshed


def test_upsert_contact_by_external_id(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "zendesk", "user_created")
    assert adapter.upsert_contact(conversation, owner_id=None) == "8193477002"
    call = rsps.calls[0]
    assert call.request.method == "POST"
    assert call.request.url == f"{API}/users/create_or_update.json"
    assert call.request.headers["Authorization"] == BASIC
    assert body_of(call) == {"user": {"name": "Taro Yamada", "external_id": IDENTITY}}


def test_upsert_existing_contact_with_email(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "zendesk", "user_updated")
    customer = conversation.customer.__class__(id=conversation.customer.id, name=None, email="taro@example.jp")
    ref = ConversationRef(**{**conversation.__dict__, "customer": customer})
    assert adapter.upsert_contact(ref, owner_id=None) == "8193477002"
    user = body_of(rsps.calls[0])["user"]
    assert user["email"] == "taro@example.jp"
    assert user["name"] == "line customer U4af4980629c0f8a1e2b3"
    assert "role" not in user


def test_open_ticket_with_default_user(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "zendesk", "ticket_created")
    ticket_id = adapter.open_ticket(conversation, contact_id="8193477002", first_message=first_message, owner_id="361898904439")
    assert ticket_id == "35436"
    call = rsps.calls[0]
    assert call.request.url == f"{API}/tickets.json"
    assert call.request.headers["Idempotency-Key"] == "switchboard-ticket-conv-0001"
    assert body_of(call) == {
        "ticket": {
            "subject": "LINE: I need a refund for order 1234",
            "comment": {"body": "I need a refund for order 1234", "public": True, "author_id": 8193477002},
            "requester_id": 8193477002,
            "external_id": "conv-0001",
            "tags": ["switchboard", "switchboard_line"],
            "assignee_id": 361898904439,
        }
    }


def test_open_ticket_unassigned_without_default_user(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "zendesk", "ticket_created")
    adapter.open_ticket(conversation, contact_id="8193477002", first_message=first_message, owner_id=None)
    assert "assignee_id" not in body_of(rsps.calls[0])["ticket"]


def test_retried_open_ticket_sends_the_same_idempotency_key(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "zendesk", "ticket_created")
    serve(rsps, "zendesk", "ticket_replayed")
    first = adapter.open_ticket(conversation, contact_id="8193477002", first_message=first_message, owner_id=None)
    again = adapter.open_ticket(conversation, contact_id="8193477002", first_message=first_message, owner_id=None)
    assert first == again == "35436"
    keys = {c.request.headers["Idempotency-Key"] for c in rsps.calls}
    assert keys == {"switchboard-ticket-conv-0001"}
    assert rsps.calls[0].request.body == rsps.calls[1].request.body


def test_idempotency_mismatch_finds_the_existing_ticket(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "zendesk", "ticket_idempotency_mismatch")
    serve(rsps, "zendesk", "tickets_by_external_id")
    assert adapter.open_ticket(conversation, contact_id="8193477002", first_message=first_message, owner_id=None) == "35436"
    assert rsps.calls[1].request.url == f"{API}/tickets.json?external_id=conv-0001"


def test_long_idempotency_key_is_hashed() -> None:
    key = idempotency_key("c" * 300)
    assert len(key) <= 255 and key.startswith("switchboard-ticket-")
    assert key == idempotency_key("c" * 300)


def test_append_message_as_public_requester_comment(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, image_message: Envelope
) -> None:
    serve(rsps, "zendesk", "ticket_updated")
    adapter.append_message(conversation, ticket_id="35436", contact_id="8193477002", message=image_message, owner_id=None)
    call = rsps.calls[0]
    assert call.request.method == "PUT"
    assert call.request.url == f"{API}/tickets/35436.json"
    assert body_of(call) == {
        "ticket": {"comment": {"body": "[image] https://cdn.example.com/img/abc.jpg", "public": True, "author_id": 8193477002}}
    }
    assert "Idempotency-Key" not in call.request.headers


def test_429_carries_retry_after(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "zendesk", "rate_limited")
    with pytest.raises(CrmRateLimited) as info:
        adapter.append_message(conversation, ticket_id="35436", contact_id="8193477002", message=later_message, owner_id=None)
    assert info.value.retry_after == 7.0
    assert info.value.status == 429
    assert "Rate limit for ticket updates exceeded" in info.value.message


def test_422_is_rejected_with_zendesk_text(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "zendesk", "record_invalid")
    with pytest.raises(CrmRejected) as info:
        adapter.open_ticket(conversation, contact_id="8193477002", first_message=first_message, owner_id=None)
    assert info.value.status == 422
    assert "HTTP 422" in info.value.message
    assert "RecordInvalid" in info.value.message and "Subject: cannot be blank" in info.value.message


def test_5xx_and_timeout_are_retryable(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "zendesk", "server_error")
    rsps.add(responses.POST, f"{API}/users/create_or_update.json", body=requests.exceptions.ConnectTimeout())
    with pytest.raises(CrmRetryable) as info:
        adapter.upsert_contact(conversation, owner_id=None)
    assert info.value.status == 503 and not isinstance(info.value, CrmRateLimited)
    with pytest.raises(CrmRetryable, match="timed out"):
        adapter.upsert_contact(conversation, owner_id=None)


def test_call_count_for_a_conversation(
    rsps: responses.RequestsMock,
    adapter: ZendeskAdapter,
    conversation: ConversationRef,
    first_message: Envelope,
    later_message: Envelope,
) -> None:
    serve(rsps, "zendesk", "users_me")
    serve(rsps, "zendesk", "user_updated")
    serve(rsps, "zendesk", "ticket_created")
    serve(rsps, "zendesk", "ticket_updated")
    owner = adapter.whoami().id
    contact = adapter.upsert_contact(conversation, owner_id=owner)
    ticket = adapter.open_ticket(conversation, contact_id=contact, first_message=first_message, owner_id=owner)
    adapter.whoami()
    assert adapter.http.calls.snapshot() == {"token": 0, "whoami": 1, "api": 2, "total": 3}
    adapter.append_message(conversation, ticket_id=ticket, contact_id=contact, message=later_message, owner_id=None)
    assert adapter.http.calls.api == 3


def test_retry_finds_the_ticket_an_earlier_attempt_opened(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "zendesk", "tickets_by_external_id")
    ticket = adapter.open_ticket(conversation, contact_id="8193477002", first_message=first_message, owner_id=None, retry=True)
    assert ticket == "35436"
    assert [c.request.method for c in rsps.calls] == ["GET"]  # found by external_id: nothing created, key or no key


def test_retry_without_an_earlier_ticket_creates_it(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    rsps.add(responses.GET, f"{API}/tickets.json?external_id=conv-0001", json={"tickets": [], "count": 0})
    serve(rsps, "zendesk", "ticket_created")
    ticket = adapter.open_ticket(conversation, contact_id="8193477002", first_message=first_message, owner_id=None, retry=True)
    assert ticket == "35436"
    assert rsps.calls[1].request.headers["Idempotency-Key"] == "switchboard-ticket-conv-0001"


def test_append_with_default_user_always_keeps_the_admin_assigned(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "zendesk", "ticket_updated")
    adapter.append_message(
        conversation, ticket_id="35436", contact_id="8193477002", message=later_message, owner_id="361898904439"
    )
    assert body_of(rsps.calls[0])["ticket"]["assignee_id"] == 361898904439


def test_authenticated_contact_id_is_used_when_zendesk_has_it(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef
) -> None:
    rsps.add(responses.GET, f"{API}/users/8193477002.json", json={"user": {"id": 8193477002, "role": "end-user"}})
    signed_in = ConversationRef(**{**conversation.__dict__, "contact_id": "8193477002"})
    assert adapter.upsert_contact(signed_in, owner_id=None) == "8193477002"
    assert len(rsps.calls) == 1


def test_authenticated_contact_id_unknown_to_zendesk_falls_back_to_the_identity(
    rsps: responses.RequestsMock, adapter: ZendeskAdapter, conversation: ConversationRef
) -> None:
    rsps.add(responses.GET, f"{API}/users/777.json", status=404, json={"error": "RecordNotFound", "description": "Not found"})
    serve(rsps, "zendesk", "user_created")
    signed_in = ConversationRef(**{**conversation.__dict__, "contact_id": "777"})
    assert adapter.upsert_contact(signed_in, owner_id=None) == "8193477002"
    assert body_of(rsps.calls[1])["user"]["external_id"] == IDENTITY
    # A sub that cannot be a Zendesk user id is not looked up at all.
    serve(rsps, "zendesk", "user_created")
    portal = ConversationRef(**{**conversation.__dict__, "contact_id": "auth0|5f7c"})
    assert adapter.upsert_contact(portal, owner_id=None) == "8193477002"
    assert len(rsps.calls) == 3
