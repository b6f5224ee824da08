"""Small builders the foundation tests share; the in-memory ports come from tests/fakes/ports.py."""

from __future__ import annotations

import json
from typing import Any

from switchboard.channels.line import sign
from switchboard.envelope import Customer, Envelope

PREFIX = "switchboard/test"
LINE_SECRET = "s3cr3t-line-channel-9f8e7d"
LINE_TOKEN = "t0k3n-line-access-1a2b3c"


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
