"""POST /crm/{provider}/events: verified before anything is read or queued, then one "read this ticket" per event."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

import pytest
from fakes.ports import FakeSecrets, FakeSettings, RecordingPublisher

from switchboard import crm_events
from switchboard.crm import registry
from switchboard.crm_events import CrmEventDeps
from switchboard.errors import BadRequest, Unauthorized
from switchboard.outbound import CRM_EVENT
from switchboard.settings import CrmSettings
from switchboard.web import WebhookRequest

NOW = 1_800_000_000.0
SECRET_NAME = "sb/crm-events"


class KeyedCrm:
    """A CRM that proves its events with a shared key, as Salesforce and Dynamics do."""

    provider = "salesforce"
    events_secret_name = "events_secret"

    @classmethod
    def verify_event(cls, request: WebhookRequest, secret: str, *, now: float) -> None:
        presented = request.header("X-Switchboard-Key") or ""
        if not secret.strip() or not hmac.compare_digest(presented.encode(), secret.encode()):
            raise Unauthorized("X-Switchboard-Key does not match", code="invalid_key")

    @classmethod
    def event_ticket(cls, request: WebhookRequest) -> str | None:
        if not request.body.startswith(b"{"):
            raise BadRequest("not JSON")
        return request.body.decode().split('"')[3] if b"case_id" in request.body else None


@dataclass
class Tickets:
    known: dict[tuple[str, str], str] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def conversation_for_ticket(self, provider: str, ticket_id: str) -> str | None:
        self.asked.append((provider, ticket_id))
        return self.known.get((provider, ticket_id))


@pytest.fixture(autouse=True)
def keyed_crm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "names", lambda: ("salesforce", "zendesk"))
    monkeypatch.setattr(registry, "adapter_class", lambda name: KeyedCrm)


def deps(*, secret: str | None = "k3y-0f-the-crm", options: dict[str, Any] | None = None) -> CrmEventDeps:
    values = {SECRET_NAME: {"events_secret": secret}} if secret is not None else {}
    return CrmEventDeps(
        settings=FakeSettings(crm_settings=CrmSettings(provider="salesforce", options=options or {})),
        secrets=FakeSecrets(values=values),
        secrets_prefix="sb",
        tickets=Tickets(known={("salesforce", "500A"): "c-1"}),
        publisher=RecordingPublisher(),
        clock=lambda: NOW,
    )


def request(
    body: bytes = b'{"case_id": "500A"}', *, key: str | None = "k3y-0f-the-crm", provider: str = "salesforce"
) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-switchboard-key"] = key
    return WebhookRequest("POST", f"/crm/{provider}/events", {"provider": provider}, {}, headers, body, "req-1")


def test_a_verified_event_queues_one_read_of_its_ticket_in_the_conversations_group() -> None:
    d = deps()
    answer = crm_events.handle(request(), d)
    assert answer.status == 200
    publisher = d.publisher
    assert isinstance(publisher, RecordingPublisher)
    [queued] = publisher.published
    assert queued.conversation_id == "c-1"
    assert queued.data[CRM_EVENT] == {"provider": "salesforce", "ticket_id": "500A"}
    assert queued.received_at == int(NOW * 1000)


@pytest.mark.parametrize(
    ("key", "secret"),
    [("wrong", "k3y-0f-the-crm"), (None, "k3y-0f-the-crm"), ("", ""), (" ", " "), ("anything", None)],
)
def test_anything_unverified_is_401_and_reads_and_queues_nothing(key: str | None, secret: str | None) -> None:
    d = deps(secret=secret)
    answer = crm_events.handle(request(key=key), d)
    assert answer.status == 401
    assert d.publisher.published == []  # type: ignore[attr-defined]
    assert d.tickets.asked == []  # type: ignore[attr-defined]
    assert "k3y" not in answer.body


def test_an_event_about_no_conversation_or_no_ticket_is_200_and_queues_nothing() -> None:
    d = deps()
    assert crm_events.handle(request(b'{"case_id": "500Z"}'), d).status == 200
    assert crm_events.handle(request(b'{"other": 1}'), d).status == 200
    assert d.publisher.published == []  # type: ignore[attr-defined]


def test_replies_turned_off_verify_then_do_nothing() -> None:
    d = deps(options={"replies": False})
    assert crm_events.handle(request(key="wrong"), d).status == 401
    answer = crm_events.handle(request(), d)
    assert answer.status == 200 and "replies are turned off" in answer.body
    assert d.publisher.published == [] and d.tickets.asked == []  # type: ignore[attr-defined]


def test_another_provider_than_the_stacks_crm_is_404_before_any_secret_is_read() -> None:
    d = deps()
    assert crm_events.handle(request(provider="zendesk"), d).status == 404
    assert crm_events.handle(request(provider="../../etc"), d).status == 404
    assert d.secrets.reads == []  # type: ignore[attr-defined]


def test_a_body_that_is_not_the_crms_is_400_after_verification() -> None:
    d = deps()
    assert crm_events.handle(request(b"not json"), d).status == 400
    assert d.publisher.published == []  # type: ignore[attr-defined]


def test_a_queue_that_refuses_answers_503_so_the_crm_delivers_again() -> None:
    d = deps()
    d.publisher = RecordingPublisher(refuse=True)
    assert crm_events.handle(request(), d).status == 503
