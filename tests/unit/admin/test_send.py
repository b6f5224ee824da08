"""`switchboard send <channel>` for every registered channel: the stored secret signs, the channel's own verify agrees.

The command knows no channel: its choices are the registry's and the delivery is the channel's
``simulate``. What reaches the gateway must be what the platform would post.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from jsonschema import Draft202012Validator

from infra.admin import cli
from infra.admin.apply import apply_file
from infra.admin.resources import Resources
from switchboard import channels, config_schema
from switchboard.settings import account_from_dict
from switchboard.web import WebhookRequest

API = "https://api.example.test/prod"
SAMPLES: list[Any] = ["sample-1", "sample_name", "https://example.com", True, 1]


def account(name: str) -> dict[str, Any]:
    cls = channels.adapter_class(name)
    defs = config_schema.schema()["$defs"]
    doc: dict[str, Any] = {"id": f"{name}-a", "channel": name, "workstream": "social"}
    for key in cls.required_settings:
        doc[key] = next(v for v in SAMPLES if Draft202012Validator({**cls.settings_schema[key], "$defs": defs}).is_valid(v))
    doc["secrets"] = {s: f"{name}-{s}-value" for s in (*cls.required_secrets, *cls.optional_secrets)}
    return doc


@pytest.fixture
def target(resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Resources:
    config = {"workstreams": [{"id": "social", "fallback_queue": "general"}], "accounts": [account(n) for n in channels.names()]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert apply_file(path, resources, dry_run=False)[0] == 0
    with_api = dataclasses.replace(resources, api_url=API)
    monkeypatch.setattr(cli, "_target", lambda args: with_api)
    return with_api


@pytest.mark.parametrize("name", channels.names())
@responses.activate
def test_send_posts_a_delivery_the_channel_itself_accepts(
    target: Resources, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = account(name)
    received: list[Any] = []

    def gateway(request: Any) -> tuple[int, dict[str, str], str]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook = WebhookRequest("POST", request.path_url, {}, {}, headers, request.body, "r-1")
        stored = account_from_dict({k: v for k, v in doc.items() if k != "secrets"})
        channels.adapter(name).verify(webhook, stored, doc["secrets"])  # raises on a wrong signature
        received.append(channels.adapter(name).parse(webhook, stored, received_at=1, correlation_id="c"))
        return 200, {}, "{}"

    responses.add_callback(responses.POST, f"{API}/webhooks/{name}/{name}-a", callback=gateway)
    code = cli.main(["send", name, "--account", f"{name}-a", "--text", "hello caf\u00e9", "--user", "customer-7"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (0, "200 {}\n", "")
    (result,) = received
    (envelope,) = result.envelopes
    assert (envelope.text, envelope.customer.id) == ("hello caf\u00e9", "customer-7")


@pytest.mark.parametrize("name", channels.names())
def test_send_to_an_account_of_another_channel_is_refused(
    target: Resources, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    other = next(n for n in channels.names() if n != name)
    code = cli.main(["send", name, "--account", f"{other}-a", "--text", "hi"])
    assert code == 2
    assert f"no {name} account '{other}-a' is configured" in capsys.readouterr().err


def test_the_channels_to_send_as_are_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["send", "telegram", "--account", "a", "--text", "hi"])
    assert exit_.value.code == 2
    assert "{" + ",".join(channels.names()) + "}" in capsys.readouterr().err
