"""Salesforce's way back (interface section 6): the flow's callout with X-Switchboard-Key, published
CaseComments read as replies (never Switchboard's own), unpublished notes, no zero-click set-up."""

from __future__ import annotations

import time

import pytest
from events_support import adapter, request, write_conversation
from fakes.crm import AGENT_NAME, EVENTS_SECRETS, NOTE_MARK, FakeCrm

from switchboard.crm.salesforce import SalesforceAdapter, case_safe_id
from switchboard.errors import BadRequest, Unauthorized

SECRET = EVENTS_SECRETS["salesforce"]
BODY = b'{"case_id": "5005g00000AbCdEAAZ"}'


def _verify(headers: dict[str, str], secret: str = SECRET) -> None:
    SalesforceAdapter.verify_event(request(BODY, headers, provider="salesforce"), secret, now=time.time())


def test_the_shared_key_verifies() -> None:
    _verify({"X-Switchboard-Key": SECRET})
    _verify({"x-switchboard-key": f" {SECRET} "})  # header names are case-free; the value is compared stripped


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Switchboard-Key": ""},
        {"X-Switchboard-Key": "   "},
        {"X-Switchboard-Key": SECRET[:-1]},
        {"X-Switchboard-Key": SECRET + "x"},
        {"Authorization": SECRET},
    ],
)
def test_a_missing_empty_or_wrong_key_is_refused_alike(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized) as info:
        _verify(headers)
    assert (info.value.status, info.value.code) == (401, "invalid_key") and SECRET not in info.value.message


@pytest.mark.parametrize("secret", ["", "  "])
def test_without_a_secret_nothing_verifies_not_even_an_empty_key(secret: str) -> None:
    for presented in ("", secret, "  "):
        with pytest.raises(Unauthorized):
            _verify({"X-Switchboard-Key": presented}, secret)


@pytest.mark.parametrize(
    ("body", "case"),
    [
        (b'{"case_id": "5005g00000AbCdEAAZ"}', "5005g00000AbCdEAAZ"),
        (b'{"case_id": "5005g00000AbCdE"}', "5005g00000AbCdEAAV"),  # a 15-character id, as stored: 18
    ],
)
def test_the_flow_body_names_the_case(body: bytes, case: str) -> None:
    assert SalesforceAdapter.event_ticket(request(body, {}, provider="salesforce")) == case


@pytest.mark.parametrize(
    "body", [b"nope", b"{}", b'{"case_id": 5}', b'{"case_id": "500-bad"}', b'{"case_id": "5005g00000AbCdEAAZ\' OR Id != \'"}']
)
def test_a_body_that_is_not_the_flows_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        SalesforceAdapter.event_ticket(request(body, {}, provider="salesforce"))


def test_case_safe_id_matches_the_published_vectors() -> None:
    assert case_safe_id("70130000001tcyI") == "70130000001tcyIAAQ"
    assert case_safe_id("00558000001N0Ke") == "00558000001N0KeAAK"


def test_the_fakes_event_verifies_and_names_the_case(fake_crm: FakeCrm) -> None:
    written = write_conversation(adapter(fake_crm, "salesforce"))
    body, headers = fake_crm.event("salesforce", written.ticket_id)
    req = request(body, headers, provider="salesforce")
    SalesforceAdapter.verify_event(req, SECRET, now=time.time())
    assert SalesforceAdapter.event_ticket(req) == written.ticket_id


def test_published_comments_not_written_by_switchboard_are_the_replies(fake_crm: FakeCrm) -> None:
    salesforce = adapter(fake_crm, "salesforce")
    written = write_conversation(salesforce)
    first = fake_crm.agent_reply("salesforce", written.ticket_id, "We found it")
    fake_crm.agent_note("salesforce", written.ticket_id, "internal: unpublished")
    second = fake_crm.agent_reply("salesforce", written.ticket_id, "It ships today")

    thread = salesforce.read_thread(written.ticket_id, own=written.own())

    assert thread.contact_id == written.contact_id
    assert [(r.crm_id, r.text, r.author, r.files) for r in thread.replies] == [
        (first, "We found it", AGENT_NAME, ()),
        (second, "It ships today", AGENT_NAME, ()),
    ]
    assert thread.replies[0].created_at < thread.replies[1].created_at


def test_a_customers_comment_an_agent_made_public_is_still_never_sent_back(fake_crm: FakeCrm) -> None:
    salesforce = adapter(fake_crm, "salesforce")
    written = write_conversation(salesforce)
    (customers,) = [c for c in fake_crm.records("salesforce", "CaseComment") if c["CommentBody"] == "It is order 4711"]
    assert customers["IsPublished"] is False  # Switchboard writes the customer's messages unpublished
    fake_crm.publish("salesforce", customers["Id"])
    admin = fake_crm.agent_reply(
        "salesforce", written.ticket_id, "Admin: refunded", author="Fake Admin One", author_id=fake_crm.admin_id("salesforce")
    )

    thread = salesforce.read_thread(written.ticket_id, own=written.own())

    assert [r.crm_id for r in thread.replies] == [admin]  # the linked admin's own reply counts; the echo does not


def test_every_batch_of_the_query_is_read(fake_crm: FakeCrm) -> None:
    salesforce = adapter(fake_crm, "salesforce")
    written = write_conversation(salesforce, ("one", "two", "three"))
    ids = [fake_crm.agent_reply("salesforce", written.ticket_id, f"reply {n}") for n in range(5)]
    fake_crm.page_size = 2
    assert [r.crm_id for r in salesforce.read_thread(written.ticket_id, own=written.own()).replies] == ids


def test_a_moved_case_names_its_new_contact(fake_crm: FakeCrm) -> None:
    salesforce = adapter(fake_crm, "salesforce")
    written = write_conversation(salesforce)
    other = write_conversation(salesforce, ("linked",), n=2)
    fake_crm.set_ticket_contact("salesforce", written.ticket_id, other.contact_id)
    assert salesforce.read_thread(written.ticket_id, own=written.own()).contact_id == other.contact_id


def test_a_private_note_is_an_unpublished_comment_written_once_per_key(fake_crm: FakeCrm) -> None:
    salesforce = adapter(fake_crm, "salesforce")
    written = write_conversation(salesforce)
    for _ in range(2):
        adapter(fake_crm, "salesforce").add_private_note(written.ticket_id, "Not delivered: blocked", key="undelivered:r1")
    (note,) = fake_crm.notes("salesforce", written.ticket_id)
    assert note.startswith("Not delivered: blocked") and note.endswith(f"{NOTE_MARK}undelivered:r1")
    (row,) = [c for c in fake_crm.records("salesforce", "CaseComment") if c["CommentBody"] == note]
    assert row["IsPublished"] is False
    assert salesforce.read_thread(written.ticket_id, own=written.own()).replies == ()


def test_no_zero_click_set_up(fake_crm: FakeCrm) -> None:
    before = len(fake_crm.log)
    assert adapter(fake_crm, "salesforce").ensure_events_hook("https://x.example/crm/salesforce/events") is None
    assert len(fake_crm.log) == before
