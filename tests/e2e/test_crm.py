"""LINE conversations into each CRM, on a local stack of this module's own, against the fake CRM server.

For every provider: one contact and one ticket per conversation, a later message appended, a
replayed delivery that creates nothing, a 500 and a 429 (honouring Retry-After) that still end in
one ticket, and credentials the CRM refuses at `apply` leaving the stored settings as they were.
The CRM is global to a stack, so this module starts its own (tests/e2e/_stack.py start_stack).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.crm import registry

from ._stack import Stack, new_event_id, new_user, start_stack, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fakes
from fakes.crm import SF_REFRESH_TOKENS, TICKET_CREATE, WRONG_SECRETS, FakeCrm

pytestmark = pytest.mark.e2e

ACCOUNT = "crm-line"
PROVIDERS = registry.names()
SETTLE = 2.5  # seconds for an applied CRM section to reach crm_writer (settings and secret caches: 1 s here)
CONFIG: dict[str, Any] = {
    "accounts": [
        {
            "id": ACCOUNT,
            "channel": "line",
            "name": "LINE e2e CRM",
            "channel_id": "2000000077",
            "workstream": "crm-social",
            "secrets": {"channel_secret": "e2e-crm-line-channel-secret-7d7d", "channel_access_token": "e2e-crm-line-token-1e1e"},
        }
    ],
    "workstreams": [{"id": "crm-social", "fallback_queue": "general"}],
    "crm": {"provider": "none"},
}


@pytest.fixture(scope="module")
def crm() -> Iterator[FakeCrm]:
    with FakeCrm() as fake:
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture(scope="module")
def crm_stack(crm: FakeCrm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("crm-e2e")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    fast_caches = {"SWITCHBOARD_SETTINGS_TTL": "1", "SWITCHBOARD_SECRETS_MAX_AGE": "1"}
    with start_stack(config, tmp_path_factory.mktemp("crm-home"), fast_caches) as running:
        yield running


@pytest.fixture(scope="module", params=PROVIDERS)
def provider(request: pytest.FixtureRequest, crm_stack: Stack, crm: FakeCrm) -> str:
    """Module-scoped, so pytest runs every test of one CRM together: one `apply` per CRM."""
    name: str = request.param
    lines = apply_crm(crm_stack, crm.config(name, default_user={"enabled": True}))
    assert "created   crm default" in lines or "updated   crm default" in lines, lines
    return name


def apply_crm(stack: Stack, section: dict[str, Any], *, expect: int = 0) -> list[str]:
    path = stack.home / f"crm-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump({"crm": section}))
    done = stack.cli("apply", str(path), check=False)
    assert done.returncode == expect, f"apply exited {done.returncode}: {done.stdout}{done.stderr}"
    time.sleep(SETTLE)
    return done.stdout.splitlines()


def identity(user: str) -> str:
    return f"line:{ACCOUNT}:{user}"


def contacts_of(crm: FakeCrm, provider: str, user: str) -> list[dict[str, Any]]:
    return crm.contacts(provider, identity(user))


def tickets_of(crm: FakeCrm, provider: str, conversation_id: str) -> list[dict[str, Any]]:
    return crm.tickets(provider, conversation_id)


def texts_of(crm: FakeCrm, provider: str, ticket: dict[str, Any]) -> list[str]:
    return crm.texts(provider, ticket)


def converse(stack: Stack, user: str, text: str, *, messages: int, event_id: str | None = None) -> dict[str, Any]:
    stack.send_text(ACCOUNT, user, text, event_id=event_id or new_event_id())
    return stack.wait_conversation(ACCOUNT, user, messages=messages)


def test_line_conversation_into_the_crm(crm_stack: Stack, crm: FakeCrm, provider: str) -> None:
    stack = crm_stack

    # One contact and one ticket, owned by the default user.
    user = new_user()
    first_event = new_event_id()
    view = converse(stack, user, "My order never arrived", messages=1, event_id=first_event)
    conversation_id = view["conversation_id"]
    assert view["crm"]["provider"] == provider
    assert view["crm"]["owner_id"] == crm.admin_id(provider)
    (contact,) = contacts_of(crm, provider, user)
    (ticket,) = tickets_of(crm, provider, conversation_id)
    assert view["crm"]["contact_id"] and view["crm"]["ticket_id"]

    # A later message is appended to the same ticket.
    converse(stack, user, "It is order 4711", messages=2)

    # The first delivery replayed (LINE redelivers with the same webhookEventId) creates nothing;
    # a message after it shows the replay has been through every stage.
    stack.send_text(ACCOUNT, user, "My order never arrived", event_id=first_event, redelivery=True)
    view = converse(stack, user, "Any news?", messages=3)
    assert view["crm"]["messages_written"] == 3
    assert len(contacts_of(crm, provider, user)) == 1
    (ticket,) = tickets_of(crm, provider, conversation_id)
    assert texts_of(crm, provider, ticket) == ["My order never arrived", "It is order 4711", "Any news?"]
    del contact


def test_a_500_once_still_makes_one_ticket(crm_stack: Stack, crm: FakeCrm, provider: str) -> None:
    user = new_user()
    method, path = TICKET_CREATE[provider]
    crm.fail_next(1, status=500, provider=provider, path_contains=path, method=method)
    view = converse(crm_stack, user, "hello after an outage", messages=1)
    (ticket,) = tickets_of(crm, provider, view["conversation_id"])
    assert len(contacts_of(crm, provider, user)) == 1
    attempts = [c.status for c in crm.ticket_creates(provider)]
    assert 500 in attempts and attempts[-1] < 300
    assert texts_of(crm, provider, ticket) == ["hello after an outage"]


def test_a_429_makes_one_ticket_after_retry_after(crm_stack: Stack, crm: FakeCrm, provider: str) -> None:
    user = new_user()
    method, path = TICKET_CREATE[provider]
    crm.fail_next(1, status=429, retry_after=2, provider=provider, path_contains=path, method=method)
    view = converse(crm_stack, user, "hello under load", messages=1)
    (ticket,) = tickets_of(crm, provider, view["conversation_id"])
    creates = crm.ticket_creates(provider)
    limited = next(c for c in creates if c.status == 429)
    done = creates[-1]
    assert done.status < 300 and done.at - limited.at >= 2.0  # not before Retry-After
    assert texts_of(crm, provider, ticket) == ["hello under load"]


def test_refused_credentials_keep_the_stored_settings(crm_stack: Stack, crm: FakeCrm, provider: str) -> None:
    good = crm.config(provider, default_user={"enabled": True})  # what the provider fixture applied
    before = crm_stack.cli_json("export")["crm"]
    assert before["default_user"]["enabled"] is True

    wrong = WRONG_SECRETS[provider]
    lines = apply_crm(crm_stack, crm.config(provider, default_user={"enabled": True}, secrets=wrong), expect=3)
    refused = [line for line in lines if line.startswith("refused")]
    assert refused and "crm default" in refused[0], lines
    for value in wrong.values():
        for secret in [value] if isinstance(value, str) else value:
            assert secret not in "\n".join(lines)
    after = crm_stack.cli_json("export")["crm"]
    assert {k: v for k, v in after.items() if k != "default_user"} == {k: v for k, v in before.items() if k != "default_user"}
    assert after["default_user"]["enabled"] is False  # off until credentials the CRM accepts are applied

    # The stored (working) credentials still write, now without the default user.
    user = new_user()
    view = converse(crm_stack, user, "still reaching the CRM", messages=1)
    assert len(tickets_of(crm, provider, view["conversation_id"])) == 1
    expected_owner = crm.admin_id("dynamics") if provider == "dynamics" else None  # Dynamics always has one
    assert view["crm"]["owner_id"] == expected_owner

    lines = apply_crm(crm_stack, good)
    assert "updated   crm default" in lines, lines
    assert crm_stack.cli_json("export")["crm"]["default_user"]["enabled"] is True


def test_dynamics_answers_with_the_row_too(crm_stack: Stack, crm: FakeCrm) -> None:
    """Dataverse answers 201 with the row instead of 204 + OData-EntityId when so configured."""
    apply_crm(crm_stack, crm.config("dynamics"))
    crm.representation = True
    try:
        user = new_user()
        converse(crm_stack, user, "first", messages=1)
        view = converse(crm_stack, user, "second", messages=2)
    finally:
        crm.representation = False
    (ticket,) = tickets_of(crm, "dynamics", view["conversation_id"])
    assert view["crm"]["ticket_id"] == ticket["incidentid"]
    assert texts_of(crm, "dynamics", ticket) == ["first", "second"]
    assert {c.status for c in crm.calls(provider="dynamics", kind="api")[-3:]} == {201}


def test_salesforce_failover_shows_on_the_conversation(crm_stack: Stack, crm: FakeCrm) -> None:
    crm.revoke_refresh_token(SF_REFRESH_TOKENS[0])
    try:
        lines = apply_crm(crm_stack, crm.config("salesforce", default_user={"enabled": True}))
        assert any(line.startswith("notice    crm default: Salesforce refused linked admin refresh token #1") for line in lines)
        crm.expire_tokens("salesforce")  # whatever token crm_writer holds: it asks again, and fails over
        view = converse(crm_stack, new_user(), "over to the second admin", messages=1)
    finally:
        crm.revoked_refresh_tokens.discard(SF_REFRESH_TOKENS[0])
    assert any("failing over to #2" in notice for notice in view["crm"]["notices"]), view["crm"]
    assert view["crm"]["owner_id"] == crm.admin_id("salesforce", admin=2)
    shown = crm_stack.cli("conversations", "show", view["conversation_id"]).stdout
    assert "failing over to #2" in shown
    assert SF_REFRESH_TOKENS[0] not in shown


def test_dead_lettered_crm_message_shows_the_crms_words(crm_stack: Stack, crm: FakeCrm) -> None:
    apply_crm(crm_stack, crm.config("zendesk"))
    crm.fail_next(1, status=422, provider="zendesk", path_contains="/tickets.json", method="POST")
    user = new_user()
    crm_stack.send_text(ACCOUNT, user, "this one is refused")

    def dead() -> dict[str, Any] | None:
        rows: list[dict[str, Any]] = crm_stack.cli_json("dlq", "list", "--stage", "crm")
        return next((r for r in rows if "HTTP 422" in r["error"]), None)

    row = wait_for(dead, "the refused message in the crm dead-letter queue")
    assert row["stage"] == "crm" and "CrmRejected" in row["error"] and row["attempts"] == 1
    moved = json.loads(crm_stack.cli("dlq", "redrive", "--stage", "crm", "--json").stdout)
    assert row["message_id"] in [m["message_id"] for m in moved]
    view = crm_stack.wait_conversation(ACCOUNT, user)
    assert len(tickets_of(crm, "zendesk", view["conversation_id"])) == 1
