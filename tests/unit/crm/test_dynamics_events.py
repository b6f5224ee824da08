"""Dataverse's way back (interface section 6): the service endpoint's X-Switchboard-Key, the
RemoteExecutionContext of a note's Create, notes titled "Reply..." read as replies (never one of
Switchboard's own note ids), and create-once private notes."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from events_support import adapter, request, write_conversation
from fakes.crm import AGENT_NAME, EVENTS_SECRETS, FakeCrm, dataverse_context

from switchboard.crm.dynamics import DynamicsAdapter, note_text, record_id
from switchboard.errors import BadRequest, Unauthorized

SECRET = EVENTS_SECRETS["dynamics"]
INCIDENT = "0c7b2f4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


def _context(**changes: object) -> bytes:
    doc = dataverse_context(str(uuid.uuid4()), INCIDENT, "https://acme.crm.dynamics.com")
    doc.update(changes)
    return json.dumps(doc).encode()


def test_the_shared_key_verifies_and_anything_else_is_refused() -> None:
    body = _context()
    DynamicsAdapter.verify_event(request(body, {"X-Switchboard-Key": SECRET}, provider="dynamics"), SECRET, now=time.time())
    for headers in ({}, {"X-Switchboard-Key": ""}, {"X-Switchboard-Key": "wrong"}, {"x-ms-dynamics-organization": SECRET}):
        with pytest.raises(Unauthorized) as info:
            DynamicsAdapter.verify_event(request(body, headers, provider="dynamics"), SECRET, now=time.time())
        assert info.value.code == "invalid_key"
    for secret in ("", "   "):
        with pytest.raises(Unauthorized):
            DynamicsAdapter.verify_event(
                request(body, {"X-Switchboard-Key": secret}, provider="dynamics"), secret, now=time.time()
            )


def test_a_notes_create_on_a_case_names_the_case() -> None:
    assert DynamicsAdapter.event_ticket(request(_context(), {}, provider="dynamics")) == INCIDENT
    upper = _context().replace(INCIDENT.encode(), INCIDENT.upper().encode())
    assert DynamicsAdapter.event_ticket(request(upper, {}, provider="dynamics")) == INCIDENT


def test_a_note_on_something_else_or_another_table_names_no_case() -> None:
    doc = json.loads(_context())
    doc["InputParameters"][0]["value"]["Attributes"][1]["value"]["LogicalName"] = "account"
    assert DynamicsAdapter.event_ticket(request(json.dumps(doc).encode(), {}, provider="dynamics")) is None
    assert DynamicsAdapter.event_ticket(request(_context(PrimaryEntityName="contact"), {}, provider="dynamics")) is None
    assert DynamicsAdapter.event_ticket(request(_context(InputParameters=[]), {}, provider="dynamics")) is None


def test_an_update_of_the_case_itself_names_it() -> None:
    """The optional step on Update of incident (its customer changed): the Target is the case."""
    body = _context(
        PrimaryEntityName="incident",
        MessageName="Update",
        InputParameters=[{"key": "Target", "value": {"Id": INCIDENT, "LogicalName": "incident", "Attributes": []}}],
    )
    assert DynamicsAdapter.event_ticket(request(body, {}, provider="dynamics")) == INCIDENT


@pytest.mark.parametrize("body", [b"<xml/>", b"[]", b'{"MessageName": "Create"}'])
def test_a_body_that_is_not_a_remote_execution_context_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        DynamicsAdapter.event_ticket(request(body, {}, provider="dynamics"))


def test_notes_titled_reply_are_the_replies_and_nothing_else_is(fake_crm: FakeCrm) -> None:
    dynamics = adapter(fake_crm, "dynamics")
    written = write_conversation(dynamics)
    first = fake_crm.agent_reply("dynamics", written.ticket_id, "We are on it")
    fake_crm.agent_note("dynamics", written.ticket_id, "internal")
    fake_crm.agent_reply("dynamics", written.ticket_id, "Not for the customer", title="Escalation")
    second = fake_crm.agent_reply("dynamics", written.ticket_id, "<div><p>Your refund</p><p>is &amp; was sent</p></div>")

    thread = dynamics.read_thread(written.ticket_id, own=written.own())

    assert thread.contact_id == written.contact_id
    assert [(r.crm_id, r.text, r.author) for r in thread.replies] == [
        (first, "We are on it", AGENT_NAME),
        (second, "Your refund\nis & was sent", AGENT_NAME),
    ]
    body, headers = fake_crm.event("dynamics", written.ticket_id)
    DynamicsAdapter.verify_event(request(body, headers, provider="dynamics"), SECRET, now=time.time())
    assert DynamicsAdapter.event_ticket(request(body, headers, provider="dynamics")) == written.ticket_id


def test_switchboards_own_notes_never_count_even_retitled_reply(fake_crm: FakeCrm) -> None:
    dynamics = adapter(fake_crm, "dynamics")
    written = write_conversation(dynamics)
    mine = record_id("annotation", written.messages[1].id)
    fake_crm.records_by["dynamics"]["annotations"][mine]["subject"] = "Reply from the customer"  # an agent renamed it
    assert dynamics.read_thread(written.ticket_id, own=written.own(texts=False)).replies == ()


def test_every_page_of_notes_is_read(fake_crm: FakeCrm) -> None:
    dynamics = adapter(fake_crm, "dynamics")
    written = write_conversation(dynamics, ("one", "two", "three"))
    ids = [fake_crm.agent_reply("dynamics", written.ticket_id, f"reply {n}") for n in range(5)]
    fake_crm.page_size = 2
    assert [r.crm_id for r in dynamics.read_thread(written.ticket_id, own=written.own()).replies] == ids


def test_a_case_given_another_customer_names_it(fake_crm: FakeCrm) -> None:
    dynamics = adapter(fake_crm, "dynamics")
    written = write_conversation(dynamics)
    other = write_conversation(dynamics, ("linked",), n=2)
    fake_crm.set_ticket_contact("dynamics", written.ticket_id, other.contact_id)
    assert dynamics.read_thread(written.ticket_id, own=written.own()).contact_id == other.contact_id


def test_a_private_note_is_created_once_at_an_id_derived_from_its_key(fake_crm: FakeCrm) -> None:
    dynamics = adapter(fake_crm, "dynamics")
    written = write_conversation(dynamics)
    dynamics.add_private_note(written.ticket_id, "Not delivered: blocked", key="undelivered:r1")
    since = len(fake_crm.calls(provider="dynamics"))
    adapter(fake_crm, "dynamics").add_private_note(written.ticket_id, "Not delivered: blocked", key="undelivered:r1")
    again = [c for c in fake_crm.calls(provider="dynamics")[since:] if c.method == "PATCH"]
    assert [(c.path, c.status) for c in again] == [
        (f"/dynamics/api/data/v9.2/annotations({record_id('note', 'undelivered:r1')})", 412)
    ]
    assert fake_crm.notes("dynamics", written.ticket_id) == ["Not delivered: blocked"]
    assert record_id("note", "undelivered:r1") in fake_crm.records_by["dynamics"]["annotations"]
    assert dynamics.read_thread(written.ticket_id, own=written.own()).replies == ()


def test_note_text_keeps_plain_text_and_reduces_html() -> None:
    assert note_text("  plain <3 text ") == "plain <3 text"
    assert note_text("<p>one</p><p>two<br>three</p>") == "one\ntwo\nthree"
    assert note_text(None) == ""


def test_no_zero_click_set_up(fake_crm: FakeCrm) -> None:
    assert adapter(fake_crm, "dynamics").ensure_events_hook("https://x.example/crm/dynamics/events") is None
