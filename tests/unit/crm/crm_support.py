"""Helpers for the CRM adapter tests: recorded vendor answers served by ``responses``, test secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import responses

from switchboard.envelope import Customer, Envelope

RECORDINGS = Path(__file__).parent / "recordings"

# Secret values: distinctive so a leak into a message or a log line is unmistakable.
ZENDESK_API_TOKEN = "zdTok-6wQ2pL9xV4sK7mN3rT8yB1cF5hJ0gD"
SF_CLIENT_ID = "3MVG9sfClientIdPublicButStillConfigured"
SF_CLIENT_SECRET = "sfSecret-9F8E7D6C5B4A39281706F5E4D3C2B1A0"
SF_REFRESH_1 = "5Aep861sfRefreshTokenOne_QmN2vX8zR4tY7uI0oP"
SF_REFRESH_2 = "5Aep861sfRefreshTokenTwo_LkJ3hG6fD9sA2wE5rT"
DYN_CLIENT_ID = "0b6e8f3a-2d4c-4f1e-9a7b-5c3d2e1f0a9b"
DYN_CLIENT_SECRET = "dynSecret~Qx7.Yb3_Vn9-Wm2Pk5Lr8Ts1Hz4"
DYN_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
KUSTOMER_API_KEY = "kusKey.eyJvcmciOiI1ZjBjIiwidXNlciI6IjY0YjcifQ.s1gn4tur3"

ALL_SECRETS = (ZENDESK_API_TOKEN, SF_CLIENT_SECRET, SF_REFRESH_1, SF_REFRESH_2, DYN_CLIENT_SECRET, KUSTOMER_API_KEY)

IDENTITY = "line:line-tokyo:U4af4980629c0f8a1e2b3"


def load(vendor: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDINGS / f"{vendor}.json").read_text(encoding="utf-8"))
    return data


def serve(
    rsps: responses.RequestsMock,
    vendor: str,
    name: str,
    *,
    url: str | None = None,
    method: str | None = None,
    fill: dict[str, str] | None = None,
    **extra: Any,
) -> None:
    """Register one recorded answer; ``fill`` substitutes ``{placeholders}`` in the recording."""
    recorded = load(vendor)[name]
    if fill:
        text = json.dumps(recorded)
        for key, value in fill.items():
            text = text.replace("{" + key + "}", value)
        recorded = json.loads(text)
    kwargs: dict[str, Any] = {
        "method": method or recorded["method"],
        "url": url or recorded["url"],
        "status": recorded["status"],
        "headers": recorded.get("headers", {}),
    }
    content_type = kwargs["headers"].pop("Content-Type", None)
    if "json" in recorded:
        kwargs["body"] = json.dumps(recorded["json"])
        kwargs["content_type"] = content_type or "application/json"
    else:
        kwargs["body"] = recorded.get("body", "")
        if content_type:
            kwargs["content_type"] = content_type
    kwargs.update(extra)
    rsps.add(**kwargs)


def body_of(call: Any) -> Any:
    raw = call.request.body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def form_of(call: Any) -> dict[str, str]:
    from urllib.parse import parse_qsl

    raw = call.request.body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return dict(parse_qsl(raw))


def make_envelope(**changes: Any) -> Envelope:
    base = Envelope(
        id="line:line-tokyo:msg-100",
        channel="line",
        account_id="line-tokyo",
        customer=Customer(id="U4af4980629c0f8a1e2b3", name="Taro Yamada", locale="ja"),
        kind="text",
        sent_at=1751339045000,
        received_at=1751339045300,
        correlation_id="corr-1",
        text="I need a refund for order 1234",
        conversation_id="conv-0001",
    )
    return base.with_(**changes)


def split_section(section: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config file's crm section -> (settings document as stored, secrets)."""
    doc = dict(section)
    secrets = doc.pop("secrets")
    doc.setdefault("default_user", {"enabled": False, "always": False})
    return doc, secrets
