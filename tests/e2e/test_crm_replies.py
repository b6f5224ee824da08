"""Agents' replies from each CRM to the customer on LINE, on a local stack of this module's own.

For every provider, against the fake CRM and the fake LINE: `apply` sets the CRM's events up (Zendesk's
webhook and trigger created once; the others' key stored from the file); a customer writes, the ticket is
opened; an agent replies twice and writes a private note; the CRM's event, posted three times as a CRM
retries, sends exactly the two replies, in order, once each; the transcript shows both directions with the
agent's name and the CRM record; an event signed wrongly is 401 and sends nothing; a reply LINE refuses for
good shows `failed` and a private note on the ticket tells the agent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from fakes.platform import FakePlatform

from switchboard.crm import registry

from ._stack import Stack, new_user, start_stack, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fakes
from fakes.crm import EVENTS_SECRETS, FakeCrm

pytestmark = pytest.mark.e2e

ACCOUNT = "replies-line"
LINE_SECRETS = {"channel_secret": "e2e-replies-line-secret-4b4b", "channel_access_token": "e2e-replies-line-token-9c9c"}
SETTLE = 2.5  # seconds for an applied CRM section to reach the functions (settings and secret caches: 1 s here)


@pytest.fixture(scope="module")
def crm() -> Iterator[FakeCrm]:
    with FakeCrm() as fake:
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture(scope="module")
def line() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.line_token(LINE_SECRETS["channel_access_token"])
        fake.page_token(FB_SECRETS["page_access_token"])
        yield fake


FB = "replies-fb"
FB_PAGE = "104000000000777"
FB_SECRETS = {
    "app_secret": "e2e-replies-fb-app-2a2a",
    "verify_token": "e2e-replies-fb-verify-3b3b",
    "page_access_token": "e2e-replies-fb-page-4c4c",
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 200


@pytest.fixture(scope="module")
def replies_stack(line: FakePlatform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("crm-replies")
    config = folder / "config.yaml"
    document = {
        "accounts": [
            {
                "id": ACCOUNT,
                "channel": "line",
                "name": "LINE replies from the CRM",
                "workstream": "replies",
                "api_base_url": line.url,
                "data_base_url": line.url,
                "secrets": LINE_SECRETS,
            },
            {  # Messenger carries agents' files of every kind
                "id": FB,
                "channel": "facebook",
                "name": "Messenger replies from the CRM",
                "page_id": FB_PAGE,
                "workstream": "replies",
                "graph_base_url": line.url,
                "attachments": {"max_bytes": 100000, "extensions": ["png", "pdf"]},
                "secrets": FB_SECRETS,
            },
        ],
        "workstreams": [{"id": "replies", "fallback_queue": "general"}],
        "crm": {"provider": "none"},
    }
    config.write_text(yaml.safe_dump(document))
    fast = {"SWITCHBOARD_SETTINGS_TTL": "1", "SWITCHBOARD_SECRETS_MAX_AGE": "1", "SWITCHBOARD_RETRY_BASE_SECONDS": "1"}
    with start_stack(config, tmp_path_factory.mktemp("crm-replies-home"), fast) as running:
        yield running


def apply_crm(stack: Stack, section: dict[str, Any]) -> str:
    path = stack.home / f"crm-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump({"crm": section}))
    done = stack.cli("apply", str(path))
    time.sleep(SETTLE)
    return done.stdout


@pytest.fixture(scope="module", params=registry.names())
def provider(request: pytest.FixtureRequest, replies_stack: Stack, crm: FakeCrm) -> str:
    name: str = request.param
    secrets = {} if name == "zendesk" else {"secrets": {"events_secret": EVENTS_SECRETS[name]}}
    printed = apply_crm(replies_stack, crm.config(name, **secrets))
    assert f"{replies_stack.url}/crm/{name}/events" in printed, printed
    return name


def customer_with_ticket(stack: Stack, crm: FakeCrm, provider: str, text: str) -> tuple[str, str, str]:
    """(customer, conversation id, ticket id) of a new customer who wrote ``text``."""
    user = new_user()
    stack.send_text(ACCOUNT, user, text)

    def opened() -> tuple[str, str] | None:
        rows = stack.conversations_of(ACCOUNT, user)
        if len(rows) != 1:
            return None
        view = stack.show(rows[0]["conversation_id"])
        ticket = view["crm"]["ticket_id"]
        return (rows[0]["conversation_id"], ticket) if ticket and view["crm"]["provider"] == provider else None

    conversation_id, ticket = wait_for(opened, f"the {provider} ticket of {user}")
    return user, conversation_id, ticket


def post_event(stack: Stack, crm: FakeCrm, provider: str, ticket: str, *, secret: str | None = None) -> requests.Response:
    body, headers = crm.event(provider, ticket, secret)
    return requests.post(f"{stack.url}/crm/{provider}/events", data=body, headers=headers, timeout=10)


def pushed_texts(line: FakePlatform, user: str) -> list[str]:
    return [m.get("text", "") for p in line.line_pushes() if p.to == user for m in p.messages]


def test_an_agents_replies_reach_the_customer_once_each_in_order(
    provider: str, replies_stack: Stack, crm: FakeCrm, line: FakePlatform
) -> None:
    user, conversation_id, ticket = customer_with_ticket(replies_stack, crm, provider, "my parcel never came")
    crm.agent_reply(provider, ticket, "Sorry! A new one is on its way.", author="Aiko Tanaka")
    crm.agent_note(provider, ticket, "internal: warehouse says it was lost")
    crm.agent_reply(provider, ticket, "Tracking number: JP123.", author="Aiko Tanaka")
    for _ in range(3):  # a CRM retries; each event only says "look at this ticket"
        answer = post_event(replies_stack, crm, provider, ticket)
        assert answer.status_code == 200, answer.text

    expected = ["Sorry! A new one is on its way.", "Tracking number: JP123."]
    wait_for(lambda: pushed_texts(line, user) == expected or None, f"two replies from {provider} on LINE")
    time.sleep(1.5)  # the two later events' reads have had their turn
    assert pushed_texts(line, user) == expected

    def both_sent() -> dict[str, Any] | None:
        view = replies_stack.show(conversation_id)
        out = [m for m in view["messages"] if m["direction"] == "out"]
        return view if len(out) == 2 and all(m["delivery"]["status"] == "sent" for m in out) else None

    view = wait_for(both_sent, "both replies marked sent")
    assert [(m["direction"], m["text"]) for m in view["messages"]] == [
        ("in", "my parcel never came"),
        ("out", expected[0]),
        ("out", expected[1]),
    ]
    for out in view["messages"][1:]:
        assert out["crm_id"] and out["delivery"]["sent_at"]
        if provider != "kustomer":  # Kustomer's message names its sender by id only
            assert out["author"] == "Aiko Tanaka"


def test_a_wrongly_signed_event_is_401_and_sends_nothing(
    provider: str, replies_stack: Stack, crm: FakeCrm, line: FakePlatform
) -> None:
    user, _, ticket = customer_with_ticket(replies_stack, crm, provider, "hello?")
    crm.agent_reply(provider, ticket, "not to be sent by a forged event")
    answer = post_event(replies_stack, crm, provider, ticket, secret="not-the-events-secret")
    assert answer.status_code == 401
    time.sleep(2)
    assert pushed_texts(line, user) == []


def test_a_reply_line_refuses_for_good_is_failed_and_the_agent_gets_a_private_note(
    provider: str, replies_stack: Stack, crm: FakeCrm, line: FakePlatform
) -> None:
    user, conversation_id, ticket = customer_with_ticket(replies_stack, crm, provider, "are you there?")
    line.line_monthly_limit(0)  # LINE's monthly message limit reached: a final refusal
    try:
        crm.agent_reply(provider, ticket, "Yes, we are!")
        assert post_event(replies_stack, crm, provider, ticket).status_code == 200

        def failed() -> dict[str, Any] | None:
            out = [m for m in replies_stack.show(conversation_id)["messages"] if m["direction"] == "out"]
            return out[0] if out and out[0]["delivery"]["status"] == "failed" else None

        reply = wait_for(failed, "the refused reply marked failed")
        notes = wait_for(lambda: crm.notes(provider, ticket) or None, f"the private note on the {provider} ticket")
    finally:
        line.line_monthly_limit(None)
    assert reply["delivery"]["error"].startswith("monthly_limit") or "limit" in reply["delivery"]["error"]
    [note] = notes
    assert "did not receive" in note and "Yes, we are!" in note
    assert pushed_texts(line, user) == []


def test_zendesk_apply_creates_one_webhook_and_trigger_and_a_second_apply_changes_nothing(
    replies_stack: Stack, crm: FakeCrm
) -> None:
    apply_crm(replies_stack, crm.config("zendesk"))
    webhooks, triggers = crm.zendesk_hooks()
    assert len(webhooks) == 1 and len(triggers) == 1
    assert webhooks[0]["endpoint"] == f"{replies_stack.url}/crm/zendesk/events"
    before = len(crm.calls(provider="zendesk", kind="api"))
    apply_crm(replies_stack, crm.config("zendesk"))
    writes = [c for c in crm.calls(provider="zendesk", kind="api")[before:] if c.method != "GET"]
    assert writes == []
    assert crm.zendesk_hooks() == (webhooks, triggers)


@pytest.mark.parametrize("files_crm", ["zendesk", "kustomer"])  # the two CRMs whose replies carry files
def test_an_agents_file_reaches_messenger_from_the_attachments_bucket_and_a_refused_one_is_named(
    files_crm: str, replies_stack: Stack, crm: FakeCrm, line: FakePlatform
) -> None:
    from switchboard.channels.facebook import build_message, sign_sha256

    secrets = {} if files_crm == "zendesk" else {"secrets": {"events_secret": EVENTS_SECRETS[files_crm]}}
    apply_crm(replies_stack, crm.config(files_crm, **secrets))
    psid = str(7_100_000_000_000_000 + int(time.time() * 1000) % 1_000_000)
    line.messenger_customer(psid, int(time.time() * 1000))
    body = build_message(FB_PAGE, psid, "can you send the receipt?")
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign_sha256(FB_SECRETS["app_secret"], body)}
    assert requests.post(f"{replies_stack.url}/webhooks/facebook/{FB}", data=body, headers=headers, timeout=10).status_code == 200

    def opened() -> tuple[str, str] | None:
        rows = replies_stack.conversations_of(FB, psid)
        view = replies_stack.show(rows[0]["conversation_id"]) if len(rows) == 1 else None
        ticket = view["crm"]["ticket_id"] if view and view["crm"]["provider"] == files_crm else None
        return (rows[0]["conversation_id"], ticket) if ticket else None

    conversation_id, ticket = wait_for(opened, f"the {files_crm} ticket of the Messenger customer")
    crm.agent_reply(
        files_crm,
        ticket,
        "Here is your receipt.",
        files=[("receipt.png", "image/png", PNG), ("notes.exe", "application/x-msdownload", b"MZ")],
    )
    assert post_event(replies_stack, crm, files_crm, ticket).status_code == 200

    def sent() -> list[Any] | None:
        found = [m for m in line.messenger_sent() if m.psid == psid]
        return found if len(found) == 2 else None

    text, image = wait_for(sent, "the reply and its image on Messenger")
    assert text.text == "Here is your receipt."
    assert image.attachment is not None and image.attachment["type"] == "image"
    url = image.attachment["payload"]["url"]
    assert "X-Amz-Signature=" in url and "/replies/" in url
    assert requests.get(url, timeout=10).content == PNG  # the platform fetches the kept copy, not the CRM's

    def marked() -> dict[str, Any] | None:
        out = [m for m in replies_stack.show(conversation_id)["messages"] if m["direction"] == "out"]
        return out[0] if out and out[0]["delivery"]["status"] == "sent" else None

    reply = wait_for(marked, "the reply marked sent")
    [unsent] = reply["delivery"]["unsent_files"]
    assert unsent["name"] == "notes.exe" and "do not allow" in unsent["reason"]
