"""The `switchboard` command against the local stack: apply (invalid and repeated), export, health."""

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
    configured = {a["id"]: a for a in stack.config["accounts"]}
    assert set(accounts) >= set(configured)  # other modules apply accounts of their own to the shared stack
    for account_id, account in accounts.items():
        assert set(account["secrets"].values()) == {"<set>"}, account_id
        if account_id in configured:
            assert account["secrets"] == {name: "<set>" for name in configured[account_id]["secrets"]}
    assert accounts["e2e-line-a"]["workstream"] == "social"
    assert {w["id"] for w in exported["workstreams"]} >= {"social", "support"}
    assert exported["crm"]["provider"] == "none"
    as_json = stack.cli("export", "--json").stdout
    for secret in secret_values(stack):
        assert secret not in text
        assert secret not in as_json


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
    expected = sorted(
        [("account", a["id"]) for a in stack.config["accounts"]]
        + [("crm", "default")]
        + [("workstream", w["id"]) for w in stack.config["workstreams"]]
    )
    assert ("account", "e2e-line-a") in expected and ("workstream", "quarantine") in expected
    assert sorted((kind, object_id) for _, kind, object_id in report) == expected
    assert {status for status, _, _ in report} == {"unchanged"}, done.stdout
    as_json = stack.cli_json("apply", str(CONFIG))
    assert {r["status"] for r in as_json} == {"unchanged"}
    assert len(as_json) == len(expected)
