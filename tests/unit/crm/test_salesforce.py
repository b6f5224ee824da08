from __future__ import annotations

import pytest
import requests
import responses
from crm_support import SF_CLIENT_ID, SF_CLIENT_SECRET, SF_REFRESH_1, SF_REFRESH_2, body_of, form_of, load, serve

from switchboard.crm.base import ConversationRef, CrmAuthError, CrmNotice, CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.crm.salesforce import SalesforceAdapter, normalise_org_id
from switchboard.envelope import Envelope

LOGIN = "https://acme.my.salesforce.com"
DATA = "https://acme.my.salesforce.com/services/data/v59.0"
TOKEN_1 = load("salesforce")["token"]["json"]["access_token"]
TOKEN_2 = load("salesforce")["token_second_admin"]["json"]["access_token"]
CONTACT_URL = f"{DATA}/sobjects/Contact/Switchboard_Identity__c/line%3Aline-tokyo%3AU4af4980629c0f8a1e2b3"
CASE_URL = f"{DATA}/sobjects/Case/Switchboard_Conversation_Id__c/conv-0001"


@pytest.fixture
def adapter(session: requests.Session) -> SalesforceAdapter:
    return SalesforceAdapter(
        client_id=SF_CLIENT_ID,
        client_secret=SF_CLIENT_SECRET,
        refresh_tokens=[SF_REFRESH_1, SF_REFRESH_2],
        login_url=LOGIN + "/",
        org_id="00D5g000004Jj18EAC",
        session=session,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00D0O000005Jj18UAC", "00D0O000005Jj18"),
        ("00D0O000005Jj18", "00D0O000005Jj18"),
        (" 00D5g000004Jj18EAC ", "00D5g000004Jj18"),
        ("00D0O000005JJ18UAC", "00D0O000005Jj18"),  # case lost on the way: rebuilt from the checksum
        ("00d0o000005jj18uac", "00D0O000005Jj18"),
    ],
)
def test_normalise_org_id(value: str, expected: str) -> None:
    assert normalise_org_id(value) == expected


@pytest.mark.parametrize("value", ["", "00D0O000005Jj1", "00D0O000005Jj18U", "00D0O000005Jj18UACX", "00D0O000005Jj-8"])
def test_normalise_org_id_rejects_other_lengths(value: str) -> None:
    with pytest.raises(ValueError, match="15 or 18"):
        normalise_org_id(value)


def test_whoami_from_identity_url_after_refresh_grant(rsps: responses.RequestsMock, adapter: SalesforceAdapter) -> None:
    serve(rsps, "salesforce", "token")
    assert adapter.whoami().id == "0055g00000ABCdeAAH"
    assert adapter.whoami().id == "0055g00000ABCdeAAH"
    assert len(rsps.calls) == 1
    call = rsps.calls[0]
    assert call.request.url == f"{LOGIN}/services/oauth2/token"
    assert form_of(call) == {
        "grant_type": "refresh_token",
        "client_id": SF_CLIENT_ID,
        "client_secret": SF_CLIENT_SECRET,
        "refresh_token": SF_REFRESH_1,
    }
    assert adapter.http.calls.snapshot() == {"token": 1, "whoami": 0, "api": 0, "total": 1}
    assert adapter.drain_notices() == []


def test_whoami_refuses_a_token_of_another_org(rsps: responses.RequestsMock, session: requests.Session) -> None:
    serve(rsps, "salesforce", "token")
    other = SalesforceAdapter(
        client_id=SF_CLIENT_ID,
        client_secret=SF_CLIENT_SECRET,
        refresh_tokens=[SF_REFRESH_1],
        login_url=LOGIN,
        org_id="00D000000000062",
        session=session,
    )
    with pytest.raises(CrmAuthError, match="not the configured org 00D000000000062"):
        other.whoami()


def test_invalid_grant_fails_over_and_is_reported(rsps: responses.RequestsMock, session: requests.Session) -> None:
    seen: list[CrmNotice] = []
    adapter = SalesforceAdapter(
        client_id=SF_CLIENT_ID,
        client_secret=SF_CLIENT_SECRET,
        refresh_tokens=[SF_REFRESH_1, SF_REFRESH_2],
        login_url=LOGIN,
        session=session,
        on_notice=seen.append,
    )
    serve(rsps, "salesforce", "token_invalid_grant")
    serve(rsps, "salesforce", "token_second_admin")
    assert adapter.whoami().id == "0055g00000XYZabAAC"
    assert [form_of(c)["refresh_token"] for c in rsps.calls] == [SF_REFRESH_1, SF_REFRESH_2]
    notices = adapter.drain_notices()
    assert notices == seen
    assert [n.kind for n in notices] == ["salesforce_refresh_token_refused"]
    assert notices[0].detail == {"index": 0, "total": 2, "error": "invalid_grant", "description": "expired access/refresh token"}
    assert "failing over to #2" in notices[0].message
    assert adapter.drain_notices() == []


def test_all_refresh_tokens_refused_is_an_auth_error(rsps: responses.RequestsMock, adapter: SalesforceAdapter) -> None:
    serve(rsps, "salesforce", "token_invalid_grant")
    serve(rsps, "salesforce", "token_invalid_grant")
    with pytest.raises(CrmAuthError, match="every linked admin refresh token was refused"):
        adapter.whoami()
    assert len(adapter.drain_notices()) == 2


def test_invalid_client_does_not_burn_the_other_tokens(rsps: responses.RequestsMock, adapter: SalesforceAdapter) -> None:
    serve(rsps, "salesforce", "token_invalid_client")
    with pytest.raises(CrmAuthError) as info:
        adapter.whoami()
    assert "invalid_client" in info.value.message and "invalid client credentials" in info.value.message
    assert len(rsps.calls) == 1


def test_upsert_contact_by_external_id(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "contact_created")
    assert adapter.upsert_contact(conversation, owner_id=None) == "0035g00000XyZ12AAB"
    call = rsps.calls[1]
    assert call.request.method == "PATCH"
    assert call.request.url == CONTACT_URL
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN_1}"
    assert "Sforce-Auto-Assign" not in call.request.headers
    assert body_of(call) == {"LastName": "Taro Yamada"}


def test_upsert_contact_owned_by_default_user(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "contact_updated")
    assert adapter.upsert_contact(conversation, owner_id="0055g00000ABCdeAAH") == "0035g00000XyZ12AAB"
    call = rsps.calls[1]
    assert call.request.headers["Sforce-Auto-Assign"] == "FALSE"
    assert body_of(call)["OwnerId"] == "0055g00000ABCdeAAH"


def test_open_case_owned_by_default_user(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "case_created")
    case_id = adapter.open_ticket(
        conversation, contact_id="0035g00000XyZ12AAB", first_message=first_message, owner_id="0055g00000ABCdeAAH"
    )
    assert case_id == "5005g00000AbCdEAAZ"
    call = rsps.calls[1]
    assert call.request.method == "PATCH" and call.request.url == CASE_URL
    assert call.request.headers["Sforce-Auto-Assign"] == "FALSE"
    assert body_of(call) == {
        "Subject": "LINE: I need a refund for order 1234",
        "Description": "I need a refund for order 1234",
        "ContactId": "0035g00000XyZ12AAB",
        "Origin": "Web",
        "OwnerId": "0055g00000ABCdeAAH",
    }


def test_open_case_unassigned_leaves_assignment_rules_alone(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "case_created")
    adapter.open_ticket(conversation, contact_id="0035g00000XyZ12AAB", first_message=first_message, owner_id=None)
    call = rsps.calls[1]
    assert "Sforce-Auto-Assign" not in call.request.headers
    assert "OwnerId" not in body_of(call)


def test_append_case_comment(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "case_comment_created")
    adapter.append_message(
        conversation, ticket_id="5005g00000AbCdEAAZ", contact_id="0035g00000XyZ12AAB", message=later_message, owner_id=None
    )
    call = rsps.calls[1]
    assert call.request.method == "POST" and call.request.url == f"{DATA}/sobjects/CaseComment"
    assert body_of(call) == {"ParentId": "5005g00000AbCdEAAZ", "CommentBody": "It arrived broken"}


def test_401_refreshes_the_token_once_then_succeeds(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "session_expired")
    serve(rsps, "salesforce", "token_second_admin")  # a new access token (any user of the org will do here)
    serve(rsps, "salesforce", "case_comment_created")
    adapter.append_message(
        conversation, ticket_id="5005g00000AbCdEAAZ", contact_id="0035g00000XyZ12AAB", message=later_message, owner_id=None
    )
    assert [c.request.url for c in rsps.calls] == [
        f"{LOGIN}/services/oauth2/token",
        f"{DATA}/sobjects/CaseComment",
        f"{LOGIN}/services/oauth2/token",
        f"{DATA}/sobjects/CaseComment",
    ]
    assert rsps.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN_1}"
    assert rsps.calls[3].request.headers["Authorization"] == f"Bearer {TOKEN_2}"
    # the refresh re-used the same linked admin: no failover happened
    assert form_of(rsps.calls[2])["refresh_token"] == SF_REFRESH_1
    assert adapter.http.calls.snapshot() == {"token": 2, "whoami": 0, "api": 2, "total": 4}


def test_401_twice_is_an_auth_error(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "session_expired")
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "session_expired")
    with pytest.raises(CrmAuthError) as info:
        adapter.append_message(
            conversation, ticket_id="5005g00000AbCdEAAZ", contact_id="0035g00000XyZ12AAB", message=later_message, owner_id=None
        )
    assert "HTTP 401" in info.value.message and "INVALID_SESSION_ID" in info.value.message


def test_request_limit_exceeded_is_rate_limited(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "request_limit_exceeded")
    with pytest.raises(CrmRateLimited) as info:
        adapter.open_ticket(conversation, contact_id="0035g00000XyZ12AAB", first_message=first_message, owner_id=None)
    assert info.value.status == 403 and info.value.retry_after == 300.0
    assert "REQUEST_LIMIT_EXCEEDED" in info.value.message


def test_other_403_is_rejected(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "insufficient_access")
    with pytest.raises(CrmRejected, match="INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"):
        adapter.open_ticket(
            conversation, contact_id="0035g00000XyZ12AAB", first_message=first_message, owner_id="0055g00000ZZZzzAAA"
        )


def test_429_with_retry_after(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "rate_limited")
    with pytest.raises(CrmRateLimited) as info:
        adapter.append_message(conversation, ticket_id="5005g00000AbCdEAAZ", contact_id="c", message=later_message, owner_id=None)
    assert info.value.retry_after == 12.0


def test_400_is_rejected_with_salesforce_text(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "required_field_missing")
    with pytest.raises(CrmRejected) as info:
        adapter.upsert_contact(conversation, owner_id=None)
    assert info.value.status == 400
    assert "HTTP 400" in info.value.message and "Required fields are missing: [LastName]" in info.value.message


def test_503_and_timeout_are_retryable(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "server_unavailable")
    rsps.add(responses.POST, f"{DATA}/sobjects/CaseComment", body=requests.exceptions.ReadTimeout())
    for _ in range(2):
        with pytest.raises(CrmRetryable):
            adapter.append_message(
                conversation, ticket_id="5005g00000AbCdEAAZ", contact_id="c", message=later_message, owner_id=None
            )


def test_call_count_for_a_conversation(
    rsps: responses.RequestsMock,
    adapter: SalesforceAdapter,
    conversation: ConversationRef,
    first_message: Envelope,
    later_message: Envelope,
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "contact_updated")
    serve(rsps, "salesforce", "case_created")
    serve(rsps, "salesforce", "case_comment_created")
    owner = adapter.whoami().id
    contact = adapter.upsert_contact(conversation, owner_id=owner)
    case = adapter.open_ticket(conversation, contact_id=contact, first_message=first_message, owner_id=owner)
    assert adapter.http.calls.snapshot() == {"token": 1, "whoami": 0, "api": 2, "total": 3}
    adapter.append_message(conversation, ticket_id=case, contact_id=contact, message=later_message, owner_id=None)
    assert adapter.http.calls.api == 3 and adapter.http.calls.token == 1


def test_pre_46_upsert_204_reads_the_id(
    rsps: responses.RequestsMock, session: requests.Session, conversation: ConversationRef
) -> None:
    adapter = SalesforceAdapter(
        client_id=SF_CLIENT_ID,
        client_secret=SF_CLIENT_SECRET,
        refresh_tokens=[SF_REFRESH_1],
        login_url=LOGIN,
        api_version="v45.0",
        session=session,
    )
    old = CONTACT_URL.replace("v59.0", "v45.0")
    serve(rsps, "salesforce", "token")
    rsps.add(responses.PATCH, old, status=204)
    rsps.add(responses.GET, old, json={"attributes": {"type": "Contact"}, "Id": "0035g00000XyZ12AAB"})
    assert adapter.upsert_contact(conversation, owner_id=None) == "0035g00000XyZ12AAB"
    assert rsps.calls[2].request.url == old + "?fields=Id"


def test_authenticated_contact_id_is_used_when_salesforce_has_it(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "salesforce", "token")
    rsps.add(
        responses.GET,
        f"{DATA}/sobjects/Contact/0035g00000XyZ12AAB?fields=Id",
        json={"attributes": {"type": "Contact"}, "Id": "0035g00000XyZ12AAB"},
    )
    signed_in = ConversationRef(**{**conversation.__dict__, "contact_id": "0035g00000XyZ12AAB"})
    assert adapter.upsert_contact(signed_in, owner_id=None) == "0035g00000XyZ12AAB"
    assert len(rsps.calls) == 2  # the token, then the look-up: no upsert


def test_authenticated_contact_id_unknown_to_salesforce_falls_back_to_the_identity(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef
) -> None:
    serve(rsps, "salesforce", "token")
    rsps.add(
        responses.GET,
        f"{DATA}/sobjects/Contact/0035g00000Gone1AAB?fields=Id",
        status=404,
        json=[{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
    )
    serve(rsps, "salesforce", "contact_created")
    signed_in = ConversationRef(**{**conversation.__dict__, "contact_id": "0035g00000Gone1AAB"})
    assert adapter.upsert_contact(signed_in, owner_id=None) == "0035g00000XyZ12AAB"
    assert rsps.calls[2].request.method == "PATCH" and rsps.calls[2].request.url == CONTACT_URL


def test_case_comment_has_no_owner_even_with_default_user_always(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, later_message: Envelope
) -> None:
    """CaseComment has no OwnerId: it is created by the linked admin (the API user), whoever owns the case."""
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "case_comment_created")
    adapter.append_message(
        conversation, ticket_id="5005g00000AbCdEAAZ", contact_id="0035g00000XyZ12AAB", message=later_message, owner_id="0055g"
    )
    assert body_of(rsps.calls[1]) == {"ParentId": "5005g00000AbCdEAAZ", "CommentBody": "It arrived broken"}
    assert "Sforce-Auto-Assign" not in rsps.calls[1].request.headers


def test_failover_mid_write_makes_the_working_admin_the_owner(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    # A warm adapter holds admin 1's session; admin 1 is then revoked, so the write's 401 refresh fails
    # over to admin 2. The Case must not be owned by the revoked admin (who can own nothing).
    serve(rsps, "salesforce", "token")
    first_admin = adapter.whoami().id
    serve(rsps, "salesforce", "session_expired", url=CASE_URL, method="PATCH")
    serve(rsps, "salesforce", "token_invalid_grant")
    serve(rsps, "salesforce", "token_second_admin")
    serve(rsps, "salesforce", "case_created")
    adapter.open_ticket(conversation, contact_id="0035g00000XyZ12AAB", first_message=first_message, owner_id=first_admin)
    first_try, retry = rsps.calls[1], rsps.calls[4]
    assert body_of(first_try)["OwnerId"] == first_admin == "0055g00000ABCdeAAH"
    assert retry.request.url == CASE_URL
    assert body_of(retry)["OwnerId"] == "0055g00000XYZabAAC"
    assert adapter.ticket_owner(first_admin) == "0055g00000XYZabAAC"


def test_an_owner_who_is_not_a_linked_admin_is_kept_across_a_failover(
    rsps: responses.RequestsMock, adapter: SalesforceAdapter, conversation: ConversationRef, first_message: Envelope
) -> None:
    serve(rsps, "salesforce", "token")
    serve(rsps, "salesforce", "session_expired", url=CASE_URL, method="PATCH")
    serve(rsps, "salesforce", "token_invalid_grant")
    serve(rsps, "salesforce", "token_second_admin")
    serve(rsps, "salesforce", "case_created")
    adapter.open_ticket(conversation, contact_id="0035g00000XyZ12AAB", first_message=first_message, owner_id="005OTHERUSER0001")
    assert body_of(rsps.calls[4])["OwnerId"] == "005OTHERUSER0001"
    assert adapter.ticket_owner("005OTHERUSER0001") == "005OTHERUSER0001"
