"""The `switchboard` command against the local stack: apply (invalid and repeated), export, health."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from ._stack import CONFIG, NOWHERE, ROOT, SWITCHBOARD, Stack, new_user

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


def _switchboard(stack: Stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command with extra environment (Stack.cli takes none); the file's secrets are env: references."""
    return subprocess.run(
        [str(SWITCHBOARD), *args],
        capture_output=True,
        text=True,
        env={**stack.env(), **(env or {})},
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_apply_refuses_an_empty_environment_secret_and_writes_nothing(stack: Stack, tmp_path: Path) -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    doc["workstreams"][0]["fallback_queue"] = "would-change"  # a valid change that must not be written
    doc["accounts"][1]["secrets"]["channel_secret"] = "env:E2E_UNDEFINED_IN_CI"
    path = tmp_path / "empty-secret.yaml"
    path.write_text(yaml.safe_dump(doc))
    before = stack.cli("export", "--json").stdout
    for dry_run in ([], ["--dry-run"]):
        done = _switchboard(stack, "apply", str(path), *dry_run, env={"E2E_UNDEFINED_IN_CI": ""})
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.splitlines() == [
            "accounts[1].secrets.channel_secret: empty (environment variable E2E_UNDEFINED_IN_CI is empty or blank)",
            "1 error(s): nothing was applied",
        ]
    assert stack.cli("export", "--json").stdout == before
    # The stored secret still signs: an empty one was not written over it.
    assert stack.post_line("e2e-line-b", b'{"destination":"U123","events":[]}').status_code == 200


def test_apply_refuses_an_alias_bomb_and_a_syntax_error_by_position_only(stack: Stack, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    levels = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text(
        "workstreams:\n  - id: social\n    fallback_queue: general\n    rules:\n      - queue: q\n"
        f"        when: [{{field: message.text, op: in, value: [{', '.join(levels)}]}}]\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text('accounts:\n  - id: e2e-line-a\n    secrets: {channel_secret: "planted-e2e-neighbour-0f0f\n')
    before = stack.cli("export", "--json").stdout
    started = time.monotonic()
    done = _switchboard(stack, "apply", str(bomb))  # not stack.cli: its secrets registry would walk the bomb
    assert time.monotonic() - started < 30
    assert done.returncode == 2
    assert "an alias to a mapping or list is not accepted" in done.stderr
    done = _switchboard(stack, "apply", str(broken), "--dry-run")
    assert done.returncode == 2
    assert done.stderr == f"{broken}: not valid YAML at line 4, column 1: found unexpected end of stream\n"
    assert stack.cli("export", "--json").stdout == before


def test_conversations_show_escapes_what_the_customer_typed(stack: Stack) -> None:
    user = new_user()
    text = "hello \x1b]0;pwned\x07\x1b[2J\u202eevil"
    stack.send_text("e2e-line-a", user, text)
    view = stack.wait_conversation("e2e-line-a", user)
    assert view["messages"][0]["text"] == text  # --json keeps every character
    shown = stack.cli("conversations", "show", view["conversation_id"]).stdout
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "hello \\x1b]0;pwned\\x07\\x1b[2J\\u202eevil" in shown
    assert f"customer: {user}" in shown


def test_send_to_a_gateway_that_is_not_there_is_one_line(stack: Stack, tmp_path: Path) -> None:
    state = {**stack.state(), "api_url": NOWHERE}
    (tmp_path / "local.json").write_text(json.dumps(state))
    done = _switchboard(stack, "send", "line", "--account", "e2e-line-a", "--text", "hi", env={"SWITCHBOARD_HOME": str(tmp_path)})
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"switchboard: cannot reach {NOWHERE}: Connection refused\n"
