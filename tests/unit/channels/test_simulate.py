"""Every registered channel forges its own deliveries (``simulate``), and they pass its own verify and parse.

``switchboard send <channel>`` posts exactly this, so what the command sends is what the platform
would: signed over the raw body with the account's stored secret, for the account's own page or
agent, and recognised as the same delivery when replayed with its event id.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from switchboard import channels, config_schema
from switchboard.errors import SecretMissing
from switchboard.settings import account_from_dict
from switchboard.web import WebhookRequest

SAMPLES: list[Any] = ["sample-1", "sample_name", "https://example.com", True, 1]


def stored_account(name: str, **settings: Any) -> dict[str, Any]:
    """An account as the settings table holds it: the channel's required settings sampled from its schema."""
    cls = channels.adapter_class(name)
    defs = config_schema.schema()["$defs"]
    doc: dict[str, Any] = {"id": "acct-1", "channel": name, "workstream": "w", "enabled": True}
    for key in cls.required_settings:
        schema = {**cls.settings_schema[key], "$defs": defs}
        doc[key] = next(v for v in SAMPLES if Draft202012Validator(schema).is_valid(v))
    return {**doc, **settings}


def all_secrets(name: str) -> dict[str, str]:
    cls = channels.adapter_class(name)
    return {secret: f"{name}-{secret}-value" for secret in (*cls.required_secrets, *cls.optional_secrets)}


def deliver(name: str, doc: dict[str, Any], secrets: dict[str, str], **kwargs: Any) -> Any:
    adapter = channels.adapter(name)
    sent = adapter.simulate(doc, secrets, **{"text": "hello from the command", "user": None, "event_id": None, **kwargs})
    request = WebhookRequest(
        "POST", sent.path, {"account_id": doc["id"]}, {}, {k.lower(): v for k, v in sent.headers.items()}, sent.body, "r-1"
    )
    account = account_from_dict(doc)
    adapter.verify(request, account, secrets)
    return sent, adapter.parse(request, account, received_at=1, correlation_id="c-1")


@pytest.mark.parametrize("name", channels.names())
def test_a_simulated_delivery_verifies_and_parses_as_one_message(name: str) -> None:
    sent, result = deliver(name, stored_account(name), all_secrets(name))
    assert sent.path == f"/webhooks/{name}/acct-1"
    (envelope,) = result.envelopes
    assert (envelope.channel, envelope.account_id, envelope.kind, envelope.text) == (
        name,
        "acct-1",
        "text",
        "hello from the command",
    )


@pytest.mark.parametrize("name", channels.names())
def test_the_demo_customer_is_stable_and_user_names_another(name: str) -> None:
    doc, secrets = stored_account(name), all_secrets(name)
    first = deliver(name, doc, secrets)[1].envelopes[0].customer.id
    assert deliver(name, doc, secrets)[1].envelopes[0].customer.id == first
    other = deliver(name, doc, secrets, user="customer-42")[1].envelopes[0].customer.id
    assert other == "customer-42" != first


@pytest.mark.parametrize("name", channels.names())
def test_a_replay_with_the_event_id_is_the_same_envelope(name: str) -> None:
    doc, secrets = stored_account(name), all_secrets(name)
    first = deliver(name, doc, secrets, event_id="1001")[1].envelopes[0].id
    again = deliver(name, doc, secrets, event_id="1001")[1].envelopes[0].id
    fresh = deliver(name, doc, secrets)[1].envelopes[0].id
    assert first == again != fresh


@pytest.mark.parametrize("name", channels.names())
def test_a_missing_signing_secret_is_named_never_a_key_error(name: str) -> None:
    adapter, doc = channels.adapter(name), stored_account(name)
    named = []
    for secret in channels.adapter_class(name).required_secrets:
        partial = {k: v for k, v in all_secrets(name).items() if k != secret}
        try:
            adapter.simulate(doc, partial, text="hi", user=None, event_id=None)
        except SecretMissing as exc:  # a KeyError would escape the test and fail it
            assert exc.message == f"no stored {secret}"
            named.append(secret)
    assert named, "the channel signs with one of its required secrets"


def test_gbm_signs_with_the_key_the_account_names() -> None:
    secrets = all_secrets("gbm")
    deliver("gbm", stored_account("gbm", signing_key="partner_key"), secrets)
    with pytest.raises(SecretMissing, match="no stored partner_key"):
        deliver("gbm", stored_account("gbm", signing_key="partner_key"), {"client_token": secrets["client_token"]})


@pytest.mark.parametrize("name", channels.names())
def test_info_is_the_declaration(name: str) -> None:
    cls = channels.adapter_class(name)
    assert channels.info(name) == channels.ChannelInfo(label=cls.label, medium=cls.medium)
    assert cls.channel == name


def test_an_unknown_channel_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(channels.UnknownChannel, match="known: line, facebook, gbm"):
        channels.info("telegram")
    with pytest.raises(KeyError):
        channels.adapter("telegram")
