"""Helpers for the CRM events tests (test_<crm>_events.py): an adapter on the fake CRM, a conversation
written into it the way crm_writer writes one, and events as the CRM posts them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_support import make_envelope, split_section
from fakes.crm import FakeCrm

from switchboard.crm import registry
from switchboard.crm.base import ConversationRef, CrmAdapter, OwnWrites
from switchboard.crm.http import describe_message
from switchboard.envelope import Customer, Envelope
from switchboard.settings import crm_from_dict
from switchboard.web import WebhookRequest

ACCOUNT = "line-tokyo"


def request(body: bytes, headers: Mapping[str, str], *, provider: str = "zendesk") -> WebhookRequest:
    """The request as the events function sees it: header names lower-cased (switchboard.apigw does that)."""
    return WebhookRequest(
        method="POST",
        path=f"/crm/{provider}/events",
        path_params={"provider": provider},
        query={},
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        request_id="req-events-1",
    )


def adapter(crm: FakeCrm, provider: str, **section: Any) -> CrmAdapter:
    doc, secrets = split_section(crm.config(provider, **section))
    return registry.build_adapter(crm_from_dict(doc), secrets)


@dataclass
class Written:
    """A conversation crm_writer wrote: its ticket, its contact, the messages, and what the sender knows it wrote."""

    ticket_id: str
    contact_id: str
    messages: list[Envelope]

    def own(self, *, texts: bool = True, contacts: tuple[str, ...] = ()) -> OwnWrites:
        return OwnWrites(
            contact_ids=frozenset({self.contact_id, *contacts}),
            message_ids=frozenset(m.id for m in self.messages),
            texts=frozenset(describe_message(m) for m in self.messages) if texts else frozenset(),
        )


def write_conversation(
    crm_adapter: CrmAdapter, texts: tuple[str, ...] = ("My parcel never came", "It is order 4711"), *, n: int = 1
) -> Written:
    conversation = ConversationRef(
        conversation_id=f"events-conv-{n}",
        channel="line",
        account_id=ACCOUNT,
        customer=Customer(id=f"U-events-{n}", name="Taro Yamada"),
        contact_id=None,
        queue="general",
        priority=10,
    )
    messages = [
        make_envelope(
            id=f"line:{ACCOUNT}:events-{n}-{i}",
            account_id=ACCOUNT,
            customer=conversation.customer,
            text=text,
            conversation_id=conversation.conversation_id,
        )
        for i, text in enumerate(texts)
    ]
    contact_id = crm_adapter.upsert_contact(conversation, owner_id=None)
    ticket_id = crm_adapter.open_ticket(conversation, contact_id=contact_id, first_message=messages[0], owner_id=None)
    for message in messages[1:]:
        crm_adapter.append_message(conversation, ticket_id=ticket_id, contact_id=contact_id, message=message, owner_id=None)
    return Written(ticket_id=ticket_id, contact_id=contact_id, messages=messages)


def writes(crm: FakeCrm, provider: str, since: int = 0) -> list[str]:
    """The calls since ``since`` (an index into the log) that wrote anything."""
    return [f"{c.method} {c.path}" for c in crm.calls(provider=provider)[since:] if c.method != "GET"]
