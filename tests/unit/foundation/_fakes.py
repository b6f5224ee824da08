"""In-memory stand-ins for the ports (switchboard.ports) and small builders the foundation tests share."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from switchboard.channels.line import sign
from switchboard.envelope import Customer, Envelope
from switchboard.errors import SecretMissing, StoreUnavailable
from switchboard.settings import NO_CRM, Account, AuthSetting, CrmSettings, Widget, Workstream

PREFIX = "switchboard/test"
LINE_SECRET = "s3cr3t-line-channel-9f8e7d"
LINE_TOKEN = "t0k3n-line-access-1a2b3c"


@dataclass
class FakeSettings:
    accounts: dict[str, Account] = field(default_factory=dict)
    workstreams: dict[str, Workstream] = field(default_factory=dict)
    widgets: dict[str, Widget] = field(default_factory=dict)
    auth_settings: dict[str, AuthSetting] = field(default_factory=dict)
    crm_settings: CrmSettings = NO_CRM

    def account(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def workstream(self, workstream_id: str) -> Workstream | None:
        return self.workstreams.get(workstream_id)

    def widget(self, widget_id: str) -> Widget | None:
        return self.widgets.get(widget_id)

    def auth_setting(self, auth_setting_id: str) -> AuthSetting | None:
        return self.auth_settings.get(auth_setting_id)

    def crm(self) -> CrmSettings:
        return self.crm_settings


@dataclass
class FakeSecrets:
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def get(self, name: str) -> Mapping[str, Any]:
        self.reads.append(name)
        if name not in self.values:
            raise SecretMissing(f"secret {name} could not be read")
        return self.values[name]


@dataclass
class RecordingPublisher:
    published: list[Envelope] = field(default_factory=list)
    calls: int = 0

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls += 1
        self.published.extend(envelopes)


class RefusingPublisher:
    def __init__(self) -> None:
        self.calls = 0

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls += 1
        raise StoreUnavailable("queue refused the batch: EndpointConnectionError")


def line_event(
    text: str, user: str, event_id: str, *, timestamp: int = 1_700_000_000_000, redelivery: bool = False
) -> dict[str, Any]:
    return {
        "type": "message",
        "mode": "active",
        "timestamp": timestamp,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": redelivery},
        "replyToken": "r" * 32,
        "message": {"id": "4763544851", "type": "text", "text": text, "quoteToken": "q"},
    }


def line_body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"destination": "U" + "0" * 32, "events": list(events)}, separators=(",", ":")).encode()


def signed_headers(body: bytes, secret: str = LINE_SECRET) -> dict[str, str]:
    return {"X-Line-Signature": sign(secret, body), "Content-Type": "application/json"}


def envelope(
    text: str = "hello",
    *,
    event_id: str = "01A",
    account_id: str = "line-tokyo",
    user: str = "U1",
    sent_at: int = 1_700_000_000_000,
    received_at: int | None = None,
    kind: str = "text",
) -> Envelope:
    return Envelope(
        id=f"line:{account_id}:{event_id}",
        channel="line",
        account_id=account_id,
        customer=Customer(id=user),
        kind=kind,
        text=text,
        sent_at=sent_at,
        received_at=sent_at + 50 if received_at is None else received_at,
        correlation_id=f"corr-{event_id}",
        data={"event": "message"},
    )
