"""Zendesk's way back (interface section 6): the signed webhook, the ticket's public comments read as replies
(never an echo), private notes, and the webhook + trigger `apply` makes exactly once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from events_support import adapter, request, write_conversation, writes
from fakes.crm import AGENT_NAME, EVENTS_SECRETS, ZENDESK_ADMIN_ID, FakeCrm

from switchboard.crm.zendesk import EVENT_BODY, TRIGGER_TITLE, WEBHOOK_NAME, ZendeskAdapter
from switchboard.errors import BadRequest, Unauthorized

SECRET = EVENTS_SECRETS["zendesk"]
BODY = b'{"ticket_id": "35436"}'


def _stamp(offset: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _verify(body: bytes, headers: dict[str, str], secret: str = SECRET) -> None:
    ZendeskAdapter.verify_event(request(body, headers), secret, now=time.time())


# -- verification --------------------------------------------------------------------------------


def test_a_signature_over_timestamp_and_body_verifies() -> None:
    stamp = _stamp()
    expected = base64.b64encode(hmac.new(SECRET.encode(), stamp.encode() + BODY, hashlib.sha256).digest()).decode()
    headers = {"X-Zendesk-Webhook-Signature": expected, "X-Zendesk-Webhook-Signature-Timestamp": stamp}
    _verify(BODY, headers)
    assert FakeCrm.sign_event("zendesk", BODY, SECRET, timestamp=stamp)["X-Zendesk-Webhook-Signature"] == expected


@pytest.mark.parametrize(
    "tamper",
    ["wrong secret", "other body", "signature of the body alone", "other timestamp", "no signature", "no timestamp"],
)
def test_anything_wrong_or_missing_is_refused(tamper: str) -> None:
    stamp = _stamp()
    headers = FakeCrm.sign_event("zendesk", BODY, "not-the-secret" if tamper == "wrong secret" else SECRET, timestamp=stamp)
    body = BODY
    if tamper == "other body":
        body = b'{"ticket_id": "35437"}'
    elif tamper == "signature of the body alone":
        headers["X-Zendesk-Webhook-Signature"] = base64.b64encode(
            hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
        ).decode()
    elif tamper == "other timestamp":
        headers["X-Zendesk-Webhook-Signature-Timestamp"] = _stamp(-1)
    elif tamper == "no signature":
        del headers["X-Zendesk-Webhook-Signature"]
    elif tamper == "no timestamp":
        del headers["X-Zendesk-Webhook-Signature-Timestamp"]
    with pytest.raises(Unauthorized) as info:
        _verify(body, headers)
    assert info.value.status == 401 and SECRET not in info.value.message


@pytest.mark.parametrize("secret", ["", "   "])
def test_an_empty_or_blank_secret_verifies_nothing(secret: str) -> None:
    """Even a request signed with that very (empty) key: the refusal is the wrong signature's."""
    headers = FakeCrm.sign_event("zendesk", BODY, secret or "x", timestamp=_stamp())
    if not secret:
        stamp = headers["X-Zendesk-Webhook-Signature-Timestamp"]
        headers["X-Zendesk-Webhook-Signature"] = base64.b64encode(
            hmac.new(b"", stamp.encode() + BODY, hashlib.sha256).digest()
        ).decode()
    with pytest.raises(Unauthorized) as blank:
        _verify(BODY, headers, secret)
    with pytest.raises(Unauthorized) as wrong:
        _verify(BODY, FakeCrm.sign_event("zendesk", BODY, "other", timestamp=_stamp()))
    assert (blank.value.code, blank.value.message) == (wrong.value.code, wrong.value.message)


def test_an_empty_signature_header_refuses_like_a_wrong_one() -> None:
    headers = FakeCrm.sign_event("zendesk", BODY, SECRET, timestamp=_stamp())
    headers["X-Zendesk-Webhook-Signature"] = "  "
    with pytest.raises(Unauthorized) as info:
        _verify(BODY, headers)
    assert info.value.code == "invalid_signature"


@pytest.mark.parametrize("offset", [-301.0, 301.0, -3600.0, 86400.0])
def test_a_timestamp_outside_five_minutes_either_way_is_refused(offset: float) -> None:
    headers = FakeCrm.sign_event("zendesk", BODY, SECRET, timestamp=_stamp(offset))
    with pytest.raises(Unauthorized) as info:
        _verify(BODY, headers)
    assert info.value.code == "stale_timestamp"


@pytest.mark.parametrize("offset", [-290.0, 290.0])
def test_a_timestamp_within_five_minutes_verifies(offset: float) -> None:
    _verify(BODY, FakeCrm.sign_event("zendesk", BODY, SECRET, timestamp=_stamp(offset)))


def test_a_timestamp_that_is_not_iso_8601_is_refused() -> None:
    headers = FakeCrm.sign_event("zendesk", BODY, SECRET, timestamp=str(int(time.time())))
    with pytest.raises(Unauthorized):
        _verify(BODY, headers)


# -- the event's body ----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "ticket"), [(b'{"ticket_id": "35436"}', "35436"), (b'{"ticket_id": 35436}', "35436")])
def test_the_trigger_body_names_the_ticket(body: bytes, ticket: str) -> None:
    assert ZendeskAdapter.event_ticket(request(body, {})) == ticket


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1]", b"{}", b'{"ticket_id": "{{ticket.id}}"}', b'{"ticket_id": true}', b'{"ticket_id": -3}', b"[" * 5000],
)
def test_a_body_that_is_not_the_trigger_s_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        ZendeskAdapter.event_ticket(request(body, {}))


def test_the_fakes_event_verifies_and_names_the_ticket(fake_crm: FakeCrm) -> None:
    zendesk = adapter(fake_crm, "zendesk")
    written = write_conversation(zendesk)
    body, headers = fake_crm.event("zendesk", written.ticket_id, SECRET)
    ZendeskAdapter.verify_event(request(body, headers), SECRET, now=time.time())
    assert ZendeskAdapter.event_ticket(request(body, headers)) == written.ticket_id


# -- the replies ---------------------------------------------------------------------------------


def test_agents_public_comments_are_the_replies_oldest_first_with_names_and_files(fake_crm: FakeCrm) -> None:
    zendesk = adapter(fake_crm, "zendesk")
    written = write_conversation(zendesk)
    first = fake_crm.agent_reply(
        "zendesk", written.ticket_id, "It left the depot", files=[("map.png", "image/png", b"\x89PNG-map")]
    )
    fake_crm.agent_note("zendesk", written.ticket_id, "internal: checked the warehouse")
    second = fake_crm.agent_reply("zendesk", written.ticket_id, "It arrives tomorrow")

    thread = zendesk.read_thread(written.ticket_id, own=written.own())

    assert thread.contact_id == written.contact_id
    assert [(r.crm_id, r.text, r.author) for r in thread.replies] == [
        (first, "It left the depot", AGENT_NAME),
        (second, "It arrives tomorrow", AGENT_NAME),
    ]
    assert thread.replies[0].created_at < thread.replies[1].created_at
    (file,) = thread.replies[0].files
    assert (file.name, file.content_type, file.size) == ("map.png", "image/png", 8)
    assert requests.get(file.url, headers=dict(file.headers), timeout=5).content == b"\x89PNG-map"
    assert requests.get(file.url, timeout=5).status_code == 401  # the credential travels in the headers only
    assert "token" not in file.url.split("/attachments/")[0]


def test_the_customers_own_comments_never_count_whoever_zendesk_says_wrote_them(fake_crm: FakeCrm) -> None:
    """Zendesk may record Switchboard's comments as the token's user, the admin, who is also an agent who replies."""
    fake_crm.zendesk_ignores_author = True
    zendesk = adapter(fake_crm, "zendesk")
    written = write_conversation(zendesk)
    admin_reply = fake_crm.agent_reply(
        "zendesk", written.ticket_id, "Admin here: refunded", author="Fake Admin", author_id=str(ZENDESK_ADMIN_ID)
    )

    thread = zendesk.read_thread(written.ticket_id, own=written.own())

    assert [(r.crm_id, r.text) for r in thread.replies] == [(admin_reply, "Admin here: refunded")]


def test_a_ticket_moved_to_another_requester_names_it_and_the_old_requesters_comments_stay_out(fake_crm: FakeCrm) -> None:
    zendesk = adapter(fake_crm, "zendesk")
    written = write_conversation(zendesk)
    other = write_conversation(zendesk, ("I am the linked contact",), n=2)
    fake_crm.set_ticket_contact("zendesk", written.ticket_id, other.contact_id)

    thread = zendesk.read_thread(written.ticket_id, own=written.own(texts=False))

    assert thread.contact_id == other.contact_id
    assert thread.replies == ()  # the old requester's (Switchboard's) comments: in own.contact_ids


def test_every_page_of_comments_is_read(fake_crm: FakeCrm) -> None:
    zendesk = adapter(fake_crm, "zendesk")
    written = write_conversation(zendesk, ("one", "two", "three"))
    ids = [fake_crm.agent_reply("zendesk", written.ticket_id, f"reply {n}") for n in range(5)]
    fake_crm.page_size = 2
    thread = zendesk.read_thread(written.ticket_id, own=written.own())
    assert [r.crm_id for r in thread.replies] == ids


def test_a_deleted_ticket_has_no_replies(fake_crm: FakeCrm) -> None:
    thread = adapter(fake_crm, "zendesk").read_thread("999999", own=write_conversation(adapter(fake_crm, "zendesk")).own())
    assert (thread.contact_id, thread.replies) == (None, ())


# -- private notes -------------------------------------------------------------------------------


def test_a_private_note_is_written_once_per_key_and_never_read_as_a_reply(fake_crm: FakeCrm) -> None:
    zendesk = adapter(fake_crm, "zendesk")
    written = write_conversation(zendesk)
    zendesk.add_private_note(written.ticket_id, "The customer did not get your reply: blocked", key="undelivered:r1")
    zendesk.add_private_note(written.ticket_id, "The customer did not get your reply: blocked", key="undelivered:r1")
    adapter(fake_crm, "zendesk").add_private_note(written.ticket_id, "Another one: window closed", key="undelivered:r2")

    notes = fake_crm.notes("zendesk", written.ticket_id)
    assert len(notes) == 2 and notes[0].startswith("The customer did not get your reply: blocked")
    assert notes[1].startswith("Another one: window closed")
    ticket = fake_crm.records("zendesk", "tickets")[0]
    assert [c["public"] for c in ticket["comments"] if c["body"] in notes] == [False, False]
    assert adapter(fake_crm, "zendesk").read_thread(written.ticket_id, own=written.own()).replies == ()


# -- the webhook and the trigger -----------------------------------------------------------------


def test_ensure_events_hook_makes_one_webhook_and_one_trigger_then_changes_nothing(fake_crm: FakeCrm) -> None:
    zendesk = adapter(fake_crm, "zendesk")
    url = "https://abc.execute-api.us-east-1.amazonaws.com/Prod/crm/zendesk/events"
    secret = zendesk.ensure_events_hook(url)

    (hook,), (trigger,) = fake_crm.zendesk_hooks()
    assert (hook["name"], hook["endpoint"], hook["subscriptions"], hook["status"]) == (
        WEBHOOK_NAME,
        url,
        ["conditional_ticket_events"],
        "active",
    )
    assert secret == fake_crm.zendesk_signing_secret(hook["id"])
    assert trigger["title"] == TRIGGER_TITLE and trigger["active"] is True
    assert trigger["actions"] == [{"field": "notification_webhook", "value": [hook["id"], EVENT_BODY]}]
    assert {"field": "comment_is_public", "operator": "is", "value": "true"} in trigger["conditions"]["any"]

    since = len(fake_crm.calls(provider="zendesk"))
    assert adapter(fake_crm, "zendesk").ensure_events_hook(url) == secret
    assert writes(fake_crm, "zendesk", since) == []  # a second apply changes nothing
    assert len(fake_crm.zendesk_hooks()[0]) == 1 and len(fake_crm.zendesk_hooks()[1]) == 1


def test_a_new_endpoint_updates_the_webhook_and_a_changed_trigger_is_put_back(fake_crm: FakeCrm) -> None:
    zendesk = adapter(fake_crm, "zendesk")
    secret = zendesk.ensure_events_hook("https://old.example/crm/zendesk/events")
    (hook,), (trigger,) = fake_crm.zendesk_hooks()
    fake_crm.records_by["zendesk"]["triggers"][str(trigger["id"])]["active"] = False  # an admin switched it off

    since = len(fake_crm.calls(provider="zendesk"))
    assert zendesk.ensure_events_hook("https://new.example/crm/zendesk/events") == secret
    assert sorted(writes(fake_crm, "zendesk", since)) == sorted(
        [f"PUT /zendesk/api/v2/webhooks/{hook['id']}", f"PUT /zendesk/api/v2/triggers/{trigger['id']}.json"]
    )
    (hook,), (trigger,) = fake_crm.zendesk_hooks()
    assert hook["endpoint"] == "https://new.example/crm/zendesk/events" and trigger["active"] is True


def test_the_event_apply_set_up_is_signed_with_the_secret_it_returned(fake_crm: FakeCrm) -> None:
    zendesk = adapter(fake_crm, "zendesk")
    written = write_conversation(zendesk)
    secret = zendesk.ensure_events_hook("https://x.example/crm/zendesk/events")
    assert secret is not None
    body, headers = fake_crm.event("zendesk", written.ticket_id)
    ZendeskAdapter.verify_event(request(body, headers), secret, now=time.time())
    with pytest.raises(Unauthorized):
        ZendeskAdapter.verify_event(request(body, headers), SECRET, now=time.time())
