"""The contract every registered CRM keeps, against the fake CRM server (tests/fakes/crm.py).

Parametrised over :func:`switchboard.crm.registry.names`, so a new CRM is held to it the day it is
registered: built from its stored settings (its declared defaults filled in, what is missing
named), who-am-I, a contact upserted, a ticket opened, a message appended, a redelivery that
creates nothing, and the error classes the stage runner acts on (429 -> ``CrmRateLimited`` with
``retry_after``, 5xx -> ``Retryable``, a validation 4xx -> ``Permanent`` carrying the CRM's own
words), with no secret in any error message or log line; and the way back (interface section 6): the
CRM's signed event verified and read, an agent's reply read (never Switchboard's own writes), a private
note written once, the zero-click set-up idempotent where there is one.

What each CRM's requests look like is tested by its own recorded exchanges (test_<crm>.py); the
stage's exactly-once with every CRM by test_stage.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from crm_support import make_envelope, split_section
from fakes import crm as fake
from fakes.crm import FakeCrm

from switchboard import config_schema
from switchboard.crm import registry
from switchboard.crm.base import ConversationRef, CrmAdapter, CrmConfigError, CrmRateLimited, OwnWrites
from switchboard.crm.http import describe_message
from switchboard.envelope import Customer, Envelope
from switchboard.errors import BadRequest, Permanent, Retryable, Unauthorized
from switchboard.settings import crm_from_dict
from switchboard.web import WebhookRequest

PROVIDERS = registry.names()
ACCOUNT = "contract-acct"


def _secret_values(secrets: dict[str, Any]) -> list[str]:
    values: list[str] = []
    for value in secrets.values():
        values.extend(value if isinstance(value, list) else [value])
    return [v for v in values if isinstance(v, str) and len(v) >= 8]


def _build(crm: FakeCrm, provider: str, **section: Any) -> tuple[CrmAdapter, dict[str, Any]]:
    doc, secrets = split_section(crm.config(provider, **section))
    return registry.build_adapter(crm_from_dict(doc), secrets), secrets


def _conversation(n: int = 1, *, user: str = "U-contract") -> ConversationRef:
    return ConversationRef(
        conversation_id=f"contract-conv-{n}",
        channel="line",
        account_id=ACCOUNT,
        customer=Customer(id=user, name="Contract Customer"),
        contact_id=None,
        queue="general",
        priority=10,
    )


def _message(conversation: ConversationRef, n: int, text: str) -> Envelope:
    return make_envelope(
        id=f"line:{ACCOUNT}:{conversation.conversation_id}-{n}",
        account_id=ACCOUNT,
        customer=conversation.customer,
        text=text,
        conversation_id=conversation.conversation_id,
    )


@pytest.fixture
def crm() -> Iterator[FakeCrm]:
    with FakeCrm() as server:
        yield server
        assert server.errors == [], server.errors


def test_the_fake_answers_as_every_registered_crm() -> None:
    """A CRM registered without a fake would not be held to this contract: say so, by name."""
    missing = [name for name in PROVIDERS if name not in fake.PROVIDERS]
    assert missing == [], f"tests/fakes/crm.py does not answer as {missing}"
    for table in (fake.WRONG_SECRETS, fake.RECORD_KINDS, fake.TICKET_CREATE):
        assert set(PROVIDERS) <= set(table)


# -- the declaration ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_declaration_is_complete(provider: str) -> None:
    cls = registry.adapter_class(provider)
    assert cls.provider == provider and cls.label.strip()
    for name, schema in cls.settings_schema.items():
        assert str(schema.get("description", "")).strip(), f"{provider}.{name} has no description"
    assert set(cls.required_settings) <= set(cls.settings_schema)
    assert not set(cls.required_secrets) & set(cls.optional_secrets)
    assert set(cls.list_secrets) <= set(cls.required_secrets) | set(cls.optional_secrets)
    assert not {"provider", "secrets", "default_user"} & set(cls.settings_schema)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_declared_setting_is_accepted_by_the_schema_and_read_by_the_adapter(crm: FakeCrm, provider: str) -> None:
    """The fake's section, every optional setting given its declared default: valid for `apply`, and it builds."""
    cls = registry.adapter_class(provider)
    defaults = {name: schema["default"] for name, schema in cls.settings_schema.items() if "default" in schema}
    section = crm.config(provider, default_user={"enabled": True}, **defaults)
    assert set(section) - {"provider", "secrets", "default_user"} <= set(cls.settings_schema)
    assert config_schema.check({"crm": section}) == []
    doc, secrets = split_section(section)
    session = requests.Session()
    adapter = registry.build_adapter(crm_from_dict(doc), secrets, session=session)
    assert isinstance(adapter, cls)
    assert adapter.http.session is session  # type: ignore[attr-defined]  # the caller's session (apply's check, tests)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_what_is_missing_is_named_never_its_value(crm: FakeCrm, provider: str) -> None:
    cls = registry.adapter_class(provider)
    doc, secrets = split_section(crm.config(provider))
    for name in cls.required_settings:
        with pytest.raises(CrmConfigError) as info:
            registry.build_adapter(crm_from_dict({k: v for k, v in doc.items() if k != name}), secrets)
        assert name in str(info.value)
        assert not any(value in str(info.value) for value in _secret_values(secrets))
    for name in cls.required_secrets:
        with pytest.raises(CrmConfigError, match=f"secrets.{name}") as info:
            registry.build_adapter(crm_from_dict(doc), {k: v for k, v in secrets.items() if k != name})
        assert not any(value in str(info.value) for value in _secret_values(secrets))


# -- the calls -----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_whoami_contact_ticket_and_message(crm: FakeCrm, provider: str) -> None:
    adapter, _ = _build(crm, provider)
    assert adapter.whoami().id == crm.admin_id(provider)

    conversation = _conversation()
    contact_id = adapter.upsert_contact(conversation, owner_id=None)
    identity = f"line:{ACCOUNT}:{conversation.customer.id}"
    assert len(crm.contacts(provider, identity)) == 1
    assert adapter.upsert_contact(conversation, owner_id=None) == contact_id  # an upsert: the same contact again
    assert len(crm.contacts(provider, identity)) == 1

    first = _message(conversation, 1, "My parcel never came")
    ticket_id = adapter.open_ticket(conversation, contact_id=contact_id, first_message=first, owner_id=None)
    (ticket,) = crm.tickets(provider, conversation.conversation_id)

    later = _message(conversation, 2, "It is order 4711")
    adapter.append_message(conversation, ticket_id=ticket_id, contact_id=contact_id, message=later, owner_id=None)
    (ticket,) = crm.tickets(provider, conversation.conversation_id)
    assert crm.texts(provider, ticket) == ["My parcel never came", "It is order 4711"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_redelivered_opening_creates_nothing(crm: FakeCrm, provider: str) -> None:
    """The stage retries an opening whose answer it did not record: same contact, same ticket, nothing new."""
    adapter, _ = _build(crm, provider)
    conversation = _conversation()
    first = _message(conversation, 1, "Hello")
    contact_id = adapter.upsert_contact(conversation, owner_id=None)
    ticket_id = adapter.open_ticket(conversation, contact_id=contact_id, first_message=first, owner_id=None)
    contact_kind, ticket_kind = fake.RECORD_KINDS[provider]
    before = (len(crm.records(provider, contact_kind)), len(crm.records(provider, ticket_kind)))

    again, _ = _build(crm, provider)  # as a new process would: nothing cached
    assert again.upsert_contact(conversation, owner_id=None) == contact_id
    assert again.open_ticket(conversation, contact_id=contact_id, first_message=first, owner_id=None, retry=True) == ticket_id
    assert (len(crm.records(provider, contact_kind)), len(crm.records(provider, ticket_kind))) == before
    (ticket,) = crm.tickets(provider, conversation.conversation_id)
    assert crm.texts(provider, ticket) == ["Hello"]


# -- the errors ----------------------------------------------------------------------------------


def _opening_fails(adapter: CrmAdapter) -> pytest.ExceptionInfo[Exception]:
    conversation = _conversation()
    with pytest.raises(Exception) as info:
        contact_id = adapter.upsert_contact(conversation, owner_id=None)
        adapter.open_ticket(conversation, contact_id=contact_id, first_message=_message(conversation, 1, "hi"), owner_id=None)
    return info


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_is_rate_limited_with_retry_after(crm: FakeCrm, provider: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter, secrets = _build(crm, provider)
    adapter.whoami()
    crm.fail_next(1, status=429, retry_after=7, provider=provider)
    info = _opening_fails(adapter)
    assert isinstance(info.value, CrmRateLimited) and isinstance(info.value, Retryable)
    assert info.value.retry_after == 7
    _assert_no_secret(info.value, caplog.text, secrets)


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_5xx_is_retryable(crm: FakeCrm, provider: str, status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter, secrets = _build(crm, provider)
    adapter.whoami()
    crm.fail_next(1, status=status, provider=provider)
    info = _opening_fails(adapter)
    assert isinstance(info.value, Retryable) and not isinstance(info.value, CrmRateLimited | Permanent)
    assert f"HTTP {status}" in str(info.value)
    _assert_no_secret(info.value, caplog.text, secrets)


@pytest.mark.parametrize("status", [400, 422])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_validation_error_is_permanent_with_the_crms_message(
    crm: FakeCrm, provider: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter, secrets = _build(crm, provider)
    adapter.whoami()
    crm.fail_next(1, status=status, provider=provider, message="Subject: cannot be blank")
    info = _opening_fails(adapter)
    assert isinstance(info.value, Permanent) and not isinstance(info.value, Retryable)
    assert f"HTTP {status}" in str(info.value) and "Subject: cannot be blank" in str(info.value)
    assert str(info.value).startswith(provider)
    _assert_no_secret(info.value, caplog.text, secrets)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_crm_echoing_a_secret_does_not_leak_it(crm: FakeCrm, provider: str, caplog: pytest.LogCaptureFixture) -> None:
    """Vendors sometimes quote what they were sent; every secret the adapter holds is redacted from its errors."""
    caplog.set_level(logging.DEBUG)
    adapter, secrets = _build(crm, provider)
    adapter.whoami()
    echoed = " ".join(_secret_values(secrets))
    crm.fail_next(1, status=400, provider=provider, message=f"rejected credentials {echoed}")
    info = _opening_fails(adapter)
    assert isinstance(info.value, Permanent) and "rejected credentials" in str(info.value)
    _assert_no_secret(info.value, caplog.text, secrets)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_refused_credentials_say_so_without_the_secret(crm: FakeCrm, provider: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter, secrets = _build(crm, provider, secrets=fake.WRONG_SECRETS[provider])
    with pytest.raises(Exception) as info:
        adapter.whoami()
    assert isinstance(info.value, Retryable | Permanent)  # never a bare exception the runner cannot classify
    _assert_no_secret(info.value, caplog.text, secrets)


def _assert_no_secret(error: BaseException, log: str, secrets: dict[str, Any]) -> None:
    texts = [str(error), repr(error), getattr(error, "message", ""), log]
    cause: BaseException | None = error.__cause__ or error.__context__
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    leaked = [value for value in _secret_values(secrets) for text in texts if value in text]
    assert leaked == []


# -- the way back (interface section 6) ------------------------------------------------------------


def _written(adapter: CrmAdapter) -> tuple[str, OwnWrites]:
    conversation = _conversation(7, user="U-way-back")
    messages = [_message(conversation, 1, "Where is my parcel?"), _message(conversation, 2, "Order 4711")]
    contact_id = adapter.upsert_contact(conversation, owner_id=None)
    ticket_id = adapter.open_ticket(conversation, contact_id=contact_id, first_message=messages[0], owner_id=None)
    adapter.append_message(conversation, ticket_id=ticket_id, contact_id=contact_id, message=messages[1], owner_id=None)
    own = OwnWrites(
        contact_ids=frozenset({contact_id}),
        message_ids=frozenset(m.id for m in messages),
        texts=frozenset(describe_message(m) for m in messages),
    )
    return ticket_id, own


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_crms_event_verifies_and_names_the_ticket_and_a_forgery_does_not(crm: FakeCrm, provider: str) -> None:
    cls = registry.adapter_class(provider)
    assert cls.events_secret_name in cls.optional_secrets  # `apply` and the schema accept it for every CRM
    adapter, _ = _build(crm, provider)
    ticket_id, _ = _written(adapter)
    secret = fake.EVENTS_SECRETS[provider]
    body, headers = crm.event(provider, ticket_id, secret)
    signed = WebhookRequest("POST", f"/crm/{provider}/events", {}, {}, {k.lower(): v for k, v in headers.items()}, body, "r")
    cls.verify_event(signed, secret, now=time.time())
    assert cls.event_ticket(signed) == ticket_id
    for wrong in ("", "  ", secret + "-not"):
        with pytest.raises(Unauthorized):
            cls.verify_event(signed, wrong, now=time.time())
    with pytest.raises(BadRequest):
        cls.event_ticket(WebhookRequest("POST", "/", {}, {}, {}, b"{not json", "r"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_agents_reply_is_read_once_and_switchboards_own_writes_never(crm: FakeCrm, provider: str) -> None:
    adapter, _ = _build(crm, provider)
    ticket_id, own = _written(adapter)
    assert adapter.read_thread(ticket_id, own=own).replies == ()
    reply_id = crm.agent_reply(provider, ticket_id, "It left the depot this morning")
    crm.agent_note(provider, ticket_id, "internal: never for the customer")
    adapter.add_private_note(ticket_id, "The customer did not get your reply: blocked", key="undelivered:r-1")
    adapter.add_private_note(ticket_id, "The customer did not get your reply: blocked", key="undelivered:r-1")

    thread, again = adapter.read_thread(ticket_id, own=own), adapter.read_thread(ticket_id, own=own)

    assert thread == again  # read, not consumed: a repeated event changes nothing
    assert [(r.crm_id, r.text) for r in thread.replies] == [(reply_id, "It left the depot this morning")]
    assert thread.contact_id in own.contact_ids
    (note,) = crm.notes(provider, ticket_id)
    assert note.startswith("The customer did not get your reply: blocked")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_zero_click_set_up_is_idempotent_or_absent(crm: FakeCrm, provider: str) -> None:
    adapter, _ = _build(crm, provider)
    before = len(crm.log)
    secret = adapter.ensure_events_hook(f"https://api.example/crm/{provider}/events")
    if secret is None:
        assert len(crm.log) == before  # not offered: docs/replies.md walks the admin through it
        return
    since = len(crm.log)
    assert adapter.ensure_events_hook(f"https://api.example/crm/{provider}/events") == secret
    assert [f"{c.method} {c.path}" for c in crm.log[since:] if c.method != "GET"] == []  # a second apply writes nothing
