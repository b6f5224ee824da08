"""Kustomer's way back (interface section 6): the outbound webhook's hex HMAC, the ``kustomer.message.create``
event, outbound messages read as replies (never the ones Switchboard recorded), files, and notes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import requests
from events_support import adapter, request, write_conversation
from fakes.crm import EVENTS_SECRETS, NOTE_MARK, FakeCrm

from switchboard.crm.kustomer import KustomerAdapter
from switchboard.errors import BadRequest, Unauthorized

SECRET = EVENTS_SECRETS["kustomer"]
CONVERSATION = "6717c2a4e5b1f00012ab3501"


def _event(name: str = "kustomer.message.create", **data: object) -> bytes:
    doc = {
        "id": "6717c2a4e5b1f00012ab3500",
        "name": name,
        "org": "5f8481c6a22ab5b9d5f2dd8a",
        "data": {
            "type": "message",
            "id": "6717c2a4e5b1f00012ab3502",
            "attributes": {"direction": "out", "preview": "hello"},
            "relationships": {"conversation": {"data": {"type": "conversation", "id": CONVERSATION}}},
            **data,
        },
    }
    return json.dumps(doc).encode()


def _verify(body: bytes, headers: dict[str, str], secret: str = SECRET) -> None:
    KustomerAdapter.verify_event(request(body, headers, provider="kustomer"), secret, now=time.time())


def test_the_lowercase_hex_hmac_of_the_raw_body_verifies() -> None:
    body = _event()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert FakeCrm.sign_event("kustomer", body, SECRET)["X-Kustomer-Webhook-Signature"] == digest
    _verify(body, {"X-Kustomer-Webhook-Signature": digest})


def test_hex_in_upper_case_is_the_same_digest() -> None:
    body = _event()
    _verify(body, {"X-Kustomer-Webhook-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().upper()})


@pytest.mark.parametrize("how", ["wrong secret", "other body", "missing", "empty", "base64", "re-serialised body"])
def test_anything_wrong_is_refused(how: str) -> None:
    body = _event()
    headers = FakeCrm.sign_event("kustomer", body, "wrong" if how == "wrong secret" else SECRET)
    if how == "other body":
        body = _event(id="6717c2a4e5b1f00012ab3503")
    elif how == "missing":
        del headers["X-Kustomer-Webhook-Signature"]
    elif how == "empty":
        headers["X-Kustomer-Webhook-Signature"] = ""
    elif how == "base64":
        import base64

        headers["X-Kustomer-Webhook-Signature"] = base64.b64encode(
            hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
        ).decode()
    elif how == "re-serialised body":
        body = json.dumps(json.loads(body), indent=1).encode()
    with pytest.raises(Unauthorized) as info:
        _verify(body, headers)
    assert info.value.code == "invalid_signature" and SECRET not in info.value.message


@pytest.mark.parametrize("secret", ["", " "])
def test_an_empty_secret_verifies_nothing(secret: str) -> None:
    body = _event()
    with pytest.raises(Unauthorized):
        _verify(body, {"X-Kustomer-Webhook-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}, secret)


def test_a_message_create_names_its_conversation() -> None:
    assert KustomerAdapter.event_ticket(request(_event(), {}, provider="kustomer")) == CONVERSATION


def test_a_conversation_update_names_the_conversation() -> None:
    body = json.dumps({"name": "kustomer.conversation.update", "data": {"type": "conversation", "id": CONVERSATION}}).encode()
    assert KustomerAdapter.event_ticket(request(body, {}, provider="kustomer")) == CONVERSATION


@pytest.mark.parametrize(
    "body",
    [
        _event("kustomer.customer.update"),
        _event(relationships={}),
        _event(relationships={"conversation": {"data": {"id": "../customers"}}}),
        _event(type="note"),
    ],
)
def test_other_events_name_no_conversation(body: bytes) -> None:
    assert KustomerAdapter.event_ticket(request(body, {}, provider="kustomer")) is None


@pytest.mark.parametrize("body", [b"", b"[]", b'{"name": "kustomer.message.create"}', b'{"data": {}}'])
def test_a_body_that_is_not_a_kustomer_event_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        KustomerAdapter.event_ticket(request(body, {}, provider="kustomer"))


def test_outbound_messages_are_the_replies_oldest_first_with_files(fake_crm: FakeCrm) -> None:
    kustomer = adapter(fake_crm, "kustomer")
    written = write_conversation(kustomer)
    first = fake_crm.agent_reply(
        "kustomer", written.ticket_id, "Here is the label", files=[("label.pdf", "application/pdf", b"%PDF-1.4")]
    )
    fake_crm.agent_note("kustomer", written.ticket_id, "internal")
    second = fake_crm.agent_reply("kustomer", written.ticket_id, "Anything else?")

    thread = kustomer.read_thread(written.ticket_id, own=written.own())

    assert thread.contact_id == written.contact_id
    assert [(r.crm_id, r.text) for r in thread.replies] == [(first, "Here is the label"), (second, "Anything else?")]
    assert [r.author for r in thread.replies] == [None, None]  # Kustomer names the sender by user id only
    (file,) = thread.replies[0].files
    assert (file.name, file.content_type, file.size) == ("label.pdf", "application/pdf", 8)
    assert requests.get(file.url, headers=dict(file.headers), timeout=5).content == b"%PDF-1.4"

    body, headers = fake_crm.event("kustomer", written.ticket_id)
    _verify(body, headers)
    assert KustomerAdapter.event_ticket(request(body, headers, provider="kustomer")) == written.ticket_id


def test_messages_switchboard_recorded_never_count_even_as_out(fake_crm: FakeCrm) -> None:
    kustomer = adapter(fake_crm, "kustomer")
    written = write_conversation(kustomer)
    for record in fake_crm.records_by["kustomer"]["messages"].values():
        record["attributes"]["direction"] = "out"  # whatever Kustomer says: its app and external id are Switchboard's
    assert kustomer.read_thread(written.ticket_id, own=written.own()).replies == ()
    for record in fake_crm.records_by["kustomer"]["messages"].values():
        record["attributes"]["app"] = "chat"  # only the external id is left to tell
    assert kustomer.read_thread(written.ticket_id, own=written.own()).replies == ()


def test_every_page_of_messages_is_read(fake_crm: FakeCrm) -> None:
    kustomer = adapter(fake_crm, "kustomer")
    written = write_conversation(kustomer, ("one", "two", "three"))
    ids = [fake_crm.agent_reply("kustomer", written.ticket_id, f"reply {n}") for n in range(5)]
    fake_crm.page_size = 2
    assert [r.crm_id for r in kustomer.read_thread(written.ticket_id, own=written.own()).replies] == ids


def test_a_conversation_moved_to_another_customer_names_it(fake_crm: FakeCrm) -> None:
    kustomer = adapter(fake_crm, "kustomer")
    written = write_conversation(kustomer)
    other = write_conversation(kustomer, ("linked",), n=2)
    fake_crm.set_ticket_contact("kustomer", written.ticket_id, other.contact_id)
    assert kustomer.read_thread(written.ticket_id, own=written.own()).contact_id == other.contact_id


def test_a_private_note_is_written_once_per_key(fake_crm: FakeCrm) -> None:
    kustomer = adapter(fake_crm, "kustomer")
    written = write_conversation(kustomer)
    for _ in range(2):
        adapter(fake_crm, "kustomer").add_private_note(written.ticket_id, "Not delivered: blocked", key="undelivered:r1")
    (note,) = fake_crm.notes("kustomer", written.ticket_id)
    assert note.startswith("Not delivered: blocked") and note.endswith(f"{NOTE_MARK}undelivered:r1")
    assert kustomer.read_thread(written.ticket_id, own=written.own()).replies == ()


def test_no_zero_click_set_up(fake_crm: FakeCrm) -> None:
    assert adapter(fake_crm, "kustomer").ensure_events_hook("https://x.example/crm/kustomer/events") is None
