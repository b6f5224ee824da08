"""The stage-to-stage envelope: lossless JSON round trip; unreadable bodies raise EnvelopeError."""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchboard.envelope import ENVELOPE_VERSION, Attachment, Customer, Envelope, EnvelopeError, Identity, Routing


def full_envelope() -> Envelope:
    return Envelope(
        id="line:line-tokyo:01HC7D3ADBCXZMD5GZMVTYCPAJ",
        channel="line",
        account_id="line-tokyo",
        customer=Customer(id="U4df6a2535fcae2dc9277c39aec86ca66", name="Taro", locale="ja", email="taro@example.com"),
        kind="image",
        sent_at=1696760702895,
        received_at=1696760703001,
        correlation_id="corr-1",
        text="こんにちは",
        attachments=(
            Attachment(type="image", content_id="476354485175451954"),
            Attachment(type="file", url="https://example.com/f.pdf", name="f.pdf", size=2138, stored_key="k/1", error=None),
        ),
        data={"event": "message", "imageSet": {"id": "E005", "index": 2, "total": 2}},
        identity=Identity(authenticated=True, contact_id="c-1", context={"cart": "10000", "vip": True}, expires_at=1700000000),
        conversation_id="0190aabbccdd1122334455667788",
        routing=Routing(workstream="social", queue="billing", priority=2, rule="refunds"),
    )


def minimal_doc() -> dict[str, Any]:
    return {
        "v": ENVELOPE_VERSION,
        "id": "line:a:1",
        "channel": "line",
        "account_id": "a",
        "customer": {"id": "U1"},
        "kind": "text",
        "sent_at": 1,
        "received_at": 2,
        "correlation_id": "c",
    }


def test_round_trip_keeps_everything() -> None:
    original = full_envelope()
    raw = original.to_json()
    assert isinstance(raw, str)
    assert "こんにちは" in raw  # not escaped
    again = Envelope.from_json(raw)
    assert again == original
    assert Envelope.from_json(raw.encode("utf-8")) == original
    assert again.to_json() == raw


def test_minimal_document_fills_defaults() -> None:
    envelope = Envelope.from_dict(minimal_doc())
    assert envelope.text is None
    assert envelope.attachments == ()
    assert envelope.identity == Identity()
    assert envelope.routing is None
    assert envelope.conversation_key == "line:a:U1"
    assert len(envelope.dedupe_id) == 64
    assert envelope.dedupe_id == Envelope.from_dict({**minimal_doc(), "text": "other"}).dedupe_id


@pytest.mark.parametrize("version", [None, 0, 2, "1"])
def test_unsupported_version_raises(version: Any) -> None:
    doc = minimal_doc()
    if version is None:
        doc.pop("v")
    else:
        doc["v"] = version
    with pytest.raises(EnvelopeError, match="version"):
        Envelope.from_dict(doc)


@pytest.mark.parametrize(
    "missing", ["id", "channel", "account_id", "customer", "kind", "sent_at", "received_at", "correlation_id"]
)
def test_missing_field_raises(missing: str) -> None:
    doc = minimal_doc()
    doc.pop(missing)
    with pytest.raises(EnvelopeError, match=missing):
        Envelope.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        "null",
        json.dumps({**minimal_doc(), "kind": "hologram"}),
        json.dumps({**minimal_doc(), "customer": {"id": "U1", "shoe": 42}}),
        json.dumps({**minimal_doc(), "customer": {}}),
    ],
)
def test_unreadable_bodies_raise(raw: str) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.from_json(raw)


@pytest.mark.parametrize(
    "patch",
    [
        {"sent_at": "yesterday"},  # int("yesterday") raises a bare ValueError today
        {"received_at": "soon"},
        {"data": "ab"},  # dict("ab") raises a bare ValueError today
    ],
)
def test_malformed_field_values_raise_envelope_error(patch: dict[str, Any]) -> None:
    """The stages dead-letter an unreadable envelope at once only when it raises EnvelopeError (sqs_stage.is_permanent)."""
    with pytest.raises(EnvelopeError):
        Envelope.from_dict({**minimal_doc(), **patch})
