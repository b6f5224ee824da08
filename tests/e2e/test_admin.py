"""The `switchboard` command against the local stack: apply (invalid and repeated), export, health, 501 routes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
import yaml

from ._stack import CONFIG, Stack

pytestmark = pytest.mark.e2e


def secret_values(stack: Stack) -> list[str]:
    return [str(v) for account in stack.config["accounts"] for v in account["secrets"].values()]


def test_healthz(stack: Stack) -> None:
    answer = requests.get(f"{stack.url}/healthz", timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_export_masks_secrets(stack: Stack) -> None:
    text = stack.cli("export").stdout
    exported = yaml.safe_load(text)
    accounts = {a["id"]: a for a in exported["accounts"]}
    assert set(accounts) == {"e2e-line-a", "e2e-line-b", "e2e-line-dlq"}
    for account in accounts.values():
        assert account["secrets"] == {"channel_secret": "<set>", "channel_access_token": "<set>"}
    assert accounts["e2e-line-a"]["workstream"] == "social"
    assert {w["id"] for w in exported["workstreams"]} >= {"social", "support"}
    assert exported["crm"]["provider"] == "none"
    as_json = stack.cli("export", "--json").stdout
    for secret in secret_values(stack):
        assert secret not in text
        assert secret not in as_json


def test_facebook_webhook_is_still_501(stack: Stack) -> None:
    answer = requests.post(f"{stack.url}/webhooks/facebook/x", data=b'{"object":"page","entry":[]}', timeout=5)
    assert answer.status_code == 501
    payload = answer.json()
    assert set(payload) == {"error", "message"}
    assert payload["error"] == "not_implemented"


def _invalid_copy(tmp_path: Path) -> Path:
    doc = yaml.safe_load(CONFIG.read_text())
    doc["workstreams"][0]["fallback_queue"] = "would-change"  # a valid change that must not be written
    doc["accounts"][1]["secrets"]["channel_access_token"] = "a-new-token-that-must-not-be-stored"
    del doc["accounts"][0]["secrets"]["channel_secret"]
    doc["accounts"][1]["colour"] = "blue"
    doc["workstreams"][1]["rules"][0]["when"][0]["op"] = "resembles"
    doc["accounts"][2]["workstream"] = "nowhere"
    path = tmp_path / "invalid.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_apply_of_an_invalid_file_lists_every_error_and_changes_nothing(stack: Stack, tmp_path: Path) -> None:
    before = stack.cli("export", "--json").stdout
    done = stack.cli("apply", str(_invalid_copy(tmp_path)), check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    for prefix in (
        "accounts[0].secrets.channel_secret: required",
        "accounts[1].colour: unknown setting",
        "accounts[2].workstream: no workstream with id 'nowhere'",
        "workstreams[1].rules[0].when[0].op: must be one of",
    ):
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)
    assert lines[-1] == "4 error(s): nothing was applied"
    assert "a-new-token-that-must-not-be-stored" not in done.stderr
    assert stack.cli("export", "--json").stdout == before
    # The secret was not written either: the stored one still signs.
    answer = stack.post_line("e2e-line-b", b'{"destination":"U123","events":[]}')
    assert answer.status_code == 200


def test_second_apply_of_a_valid_file_is_unchanged(stack: Stack) -> None:
    stack.cli("apply", str(CONFIG))  # whatever an earlier test did, this puts the file back
    done = stack.cli("apply", str(CONFIG))
    report = [re.split(r"\s+", line.strip()) for line in done.stdout.splitlines()]
    assert sorted((kind, object_id) for _, kind, object_id in report) == [
        ("account", "e2e-line-a"),
        ("account", "e2e-line-b"),
        ("account", "e2e-line-dlq"),
        ("crm", "default"),
        ("workstream", "quarantine"),
        ("workstream", "social"),
        ("workstream", "support"),
    ]
    assert {status for status, _, _ in report} == {"unchanged"}, done.stdout
    as_json = stack.cli_json("apply", str(CONFIG))
    assert {r["status"] for r in as_json} == {"unchanged"}
    assert len(as_json) == 7
