from __future__ import annotations

import pytest
import requests
import responses
from crm_support import IDENTITY, KUSTOMER_API_KEY, body_of, serve

from switchboard import channels
from switchboard.channels import ChannelInfo
from switchboard.crm.base import ConversationRef, CrmAuthError, CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.crm.kustomer import KustomerAdapter, kustomer_channel
from switchboard.envelope import Envelope

BASE = "https://acme.api.kustomerapp.com"
CUSTOMER = "65a1b2c3d4e5f60012345678"
CONVERSATION = "65b0c1d2e3f4a50098765432"
OWNER = "64b7f0e2c9a1d3001f2e4a00"


@pytest.fixture
def adapter(session: requests.Session) -> KustomerAdapter:
    return KustomerAdapter(base_url=BASE + "/", api_key=KUSTOMER_API_KEY, session=session)


def test_whoami_is_the_api_key_user(rsps: responses.RequestsMock, adapter: KustomerAdapter) -> None:
    serve(rsps, "kustomer", "token_current")
    assert adapter.whoami().id == OWNER
    assert adapter.whoami().name == "Switchboard"
    assert len(rsps.calls) == 1
    assert rsps.calls[0].request.url == f"{BASE}/v1/auth/tokens/current"
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {KUSTOMER_API_KEY}"


def test_whoami_401_is_an_auth_error(rsps: responses.RequestsMock, adapter: KustomerAdapter) -> None:
    serve(rsps, "kustomer", "unauthorized")
    with pytest.raises(CrmAuthError) as info:
        adapter.whoami()
    assert "HTTP 401" in info.value.message and "invalid token" in info.value.message
    assert len(rsps.calls) == 1


def test_known_contact_is_one_lookup(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "kustomer", "customer_found")
    assert adapter.upsert_contact(conversation, owner_id=None) == CUSTOMER
    assert rsps.calls[0].request.method == "GET"
    assert rsps.calls[0].request.url == f"{BASE}/v1/customers/externalId=line%3Aline-tokyo%3AU4af4980629c0f8a1e2b3"


def test_unknown_contact_404_then_create(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "kustomer", "customer_not_found")
    serve(rsps, "kustomer", "customer_created")
    assert adapter.upsert_contact(conversation, owner_id=OWNER) == CUSTOMER
    create = rsps.calls[1]
    assert create.request.method == "POST" and create.request.url == f"{BASE}/v1/customers"
    assert body_of(create) == {"name": "Taro Yamada", "externalId": IDENTITY}


def test_open_ticket_creates_conversation_then_first_message(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "kustomer", "conversation_created")
    serve(rsps, "kustomer", "message_created")
    assert adapter.open_ticket(conversation, contact_id=CUSTOMER, first_message=first_message, owner_id=OWNER) == CONVERSATION
    create, message = rsps.calls  # a first attempt looks nothing up: two calls
    assert create.request.url == f"{BASE}/v1/customers/{CUSTOMER}/conversations"
    assert body_of(create) == {
        "externalId": "conv-0001",
        "name": "LINE: I need a refund for order 1234",
        "direction": "in",
        "assignedUsers": [OWNER],
    }
    assert message.request.url == f"{BASE}/v1/customers/{CUSTOMER}/messages"
    assert body_of(message) == {
        "conversation": CONVERSATION,
        "channel": "chat",
        "app": "switchboard",
        "direction": "in",
        "preview": "I need a refund for order 1234",
        "externalId": "line:line-tokyo:msg-100",
    }


def test_open_ticket_unassigned_without_default_user(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "kustomer", "conversation_created")
    serve(rsps, "kustomer", "message_created")
    adapter.open_ticket(conversation, contact_id=CUSTOMER, first_message=first_message, owner_id=None)
    assert "assignedUsers" not in body_of(rsps.calls[0])


def test_retried_open_ticket_reuses_the_conversation(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "kustomer", "conversation_found_with_messages")
    assert (
        adapter.open_ticket(conversation, contact_id=CUSTOMER, first_message=first_message, owner_id=None, retry=True)
        == CONVERSATION
    )
    assert len(rsps.calls) == 1  # neither a second conversation nor a second copy of the first message
    assert rsps.calls[0].request.url == f"{BASE}/v1/conversations/externalId=conv-0001"


def test_retry_after_a_lost_create_looks_up_then_creates(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "kustomer", "conversation_not_found")
    serve(rsps, "kustomer", "conversation_created")
    serve(rsps, "kustomer", "message_created")
    ticket = adapter.open_ticket(conversation, contact_id=CUSTOMER, first_message=first_message, owner_id=None, retry=True)
    assert ticket == CONVERSATION
    assert [c.request.method for c in rsps.calls] == ["GET", "POST", "POST"]


def test_authenticated_contact_id_is_used_when_kustomer_has_it(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef
) -> None:
    rsps.add(responses.GET, f"{BASE}/v1/customers/{CUSTOMER}", json={"data": {"type": "customer", "id": CUSTOMER}})
    signed_in = ConversationRef(**{**conversation.__dict__, "contact_id": CUSTOMER})
    assert adapter.upsert_contact(signed_in, owner_id=None) == CUSTOMER
    assert len(rsps.calls) == 1


def test_authenticated_contact_id_unknown_to_kustomer_falls_back_to_the_identity(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef
) -> None:
    other = "0123456789abcdef01234567"
    rsps.add(responses.GET, f"{BASE}/v1/customers/{other}", status=404, json={"errors": [{"code": "not_found"}]})
    serve(rsps, "kustomer", "customer_found")
    signed_in = ConversationRef(**{**conversation.__dict__, "contact_id": other})
    assert adapter.upsert_contact(signed_in, owner_id=None) == CUSTOMER
    # A sub that is not a Kustomer id at all is not even looked up.
    serve(rsps, "kustomer", "customer_found")
    portal_user = ConversationRef(**{**conversation.__dict__, "contact_id": "portal|user-17"})
    assert adapter.upsert_contact(portal_user, owner_id=None) == CUSTOMER
    assert len(rsps.calls) == 3


def test_facebook_channel_maps_to_facebook(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "kustomer", "message_created")
    facebook = ConversationRef(**{**conversation.__dict__, "channel": "facebook"})
    adapter.append_message(facebook, ticket_id=CONVERSATION, contact_id=CUSTOMER, message=later_message, owner_id=None)
    assert body_of(rsps.calls[0])["channel"] == "facebook"
    assert body_of(rsps.calls[0])["externalId"] == "line:line-tokyo:msg-101"


def test_429_with_http_date_retry_after(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "kustomer", "rate_limited")
    with pytest.raises(CrmRateLimited) as info:
        adapter.append_message(conversation, ticket_id=CONVERSATION, contact_id=CUSTOMER, message=later_message, owner_id=None)
    assert info.value.retry_after == 0.0  # the recorded date lies in the past
    assert "Too many messages for this customer" in info.value.message


def test_429_without_retry_after_waits_for_the_window(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    rsps.add(
        responses.POST,
        f"{BASE}/v1/customers/{CUSTOMER}/messages",
        status=429,
        json={"errors": [{"code": "too_many_requests", "message": "Rate limit exceeded"}]},
        headers={"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "0"},
    )
    with pytest.raises(CrmRateLimited) as info:
        adapter.append_message(conversation, ticket_id=CONVERSATION, contact_id=CUSTOMER, message=later_message, owner_id=None)
    assert info.value.retry_after == 60.0


def test_400_is_rejected_with_kustomer_text(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "kustomer", "bad_request_jsonapi")
    with pytest.raises(CrmRejected) as info:
        adapter.append_message(conversation, ticket_id=CONVERSATION, contact_id=CUSTOMER, message=later_message, owner_id=None)
    assert "HTTP 400" in info.value.message and '"channel" must be one of' in info.value.message
    assert "/data/attributes/channel" in info.value.message


def test_400_plain_errors_shape(rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef) -> None:
    serve(rsps, "kustomer", "customer_not_found")
    serve(rsps, "kustomer", "bad_request_plain")
    with pytest.raises(CrmRejected, match='bad_request: "name" length must be less than or equal to 256'):
        adapter.upsert_contact(conversation, owner_id=None)


def test_5xx_and_timeout_are_retryable(
    rsps: responses.RequestsMock, adapter: KustomerAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "kustomer", "server_error")
    rsps.add(
        responses.GET,
        f"{BASE}/v1/customers/externalId=line%3Aline-tokyo%3AU4af4980629c0f8a1e2b3",
        body=requests.exceptions.ConnectionError("reset"),
    )
    with pytest.raises(CrmRetryable) as info:
        adapter.upsert_contact(conversation, owner_id=None)
    assert info.value.status == 502 and "502 Bad Gateway" in info.value.message
    with pytest.raises(CrmRetryable, match="connection failed"):
        adapter.upsert_contact(conversation, owner_id=None)


def test_call_count_for_a_conversation(
    rsps: responses.RequestsMock,
    adapter: KustomerAdapter,
    conversation: ConversationRef,
    first_message: Envelope,
    later_message: Envelope,
) -> None:
    serve(rsps, "kustomer", "token_current")
    serve(rsps, "kustomer", "customer_found")
    serve(rsps, "kustomer", "conversation_created")
    serve(rsps, "kustomer", "message_created")
    serve(rsps, "kustomer", "message_created")
    owner = adapter.whoami().id
    contact = adapter.upsert_contact(conversation, owner_id=owner)
    ticket = adapter.open_ticket(conversation, contact_id=contact, first_message=first_message, owner_id=owner)
    assert adapter.http.calls.snapshot() == {"token": 0, "whoami": 1, "api": 3, "total": 4}
    adapter.append_message(conversation, ticket_id=ticket, contact_id=contact, message=later_message, owner_id=None)
    assert adapter.http.calls.api == 4


# -- the Kustomer channel comes from the channel's declared medium, never from its name -------------


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> dict[str, ChannelInfo]:
    """Channels as their modules would declare them; a name missing here is not registered."""
    table = {
        "telegram": ChannelInfo(label="Telegram", medium="telegram"),
        "wa": ChannelInfo(label="WhatsApp", medium="whatsapp"),
        "line": ChannelInfo(label="LINE", medium="chat"),
    }

    def info(name: str) -> ChannelInfo:
        if name not in table:
            raise channels.UnknownChannel(name)
        return table[name]

    monkeypatch.setattr(channels, "info", info)
    return table


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("wa", "whatsapp"),  # a medium Kustomer has a channel for
        ("telegram", "chat"),  # a medium Kustomer has no channel for
        ("line", "chat"),
        ("unregistered", "chat"),
    ],
)
def test_the_kustomer_channel_is_the_declared_medium(declared: dict[str, ChannelInfo], channel: str, expected: str) -> None:
    assert kustomer_channel(channel, {}) == expected


def test_the_admins_channel_map_wins_over_the_medium(declared: dict[str, ChannelInfo]) -> None:
    assert kustomer_channel("wa", {"wa": "sms"}) == "sms"
    assert kustomer_channel("unregistered", {"unregistered": "email"}) == "email"
    assert kustomer_channel("line", {"wa": "sms"}) == "chat"


def test_every_registered_channel_records_as_before() -> None:
    """LINE and GBM were recorded as chat and Messenger as facebook when Kustomer's code listed them by name."""
    before = {"line": "chat", "gbm": "chat", "facebook": "facebook", "chat": "chat", "sms-gateway": "chat"}
    assert {name: kustomer_channel(name, {}) for name in before} == before


def test_a_recorded_message_uses_the_declared_medium(
    rsps: responses.RequestsMock,
    session: requests.Session,
    declared: dict[str, ChannelInfo],
    conversation: ConversationRef,
    later_message: Envelope,
) -> None:
    serve(rsps, "kustomer", "message_created")
    adapter = KustomerAdapter(base_url=BASE, api_key=KUSTOMER_API_KEY, channel_map={"line": "sms"}, session=session)
    on_wa = ConversationRef(**{**conversation.__dict__, "channel": "wa"})
    adapter.append_message(on_wa, ticket_id=CONVERSATION, contact_id=CUSTOMER, message=later_message, owner_id=None)
    assert body_of(rsps.calls[0])["channel"] == "whatsapp"
