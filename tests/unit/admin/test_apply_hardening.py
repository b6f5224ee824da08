"""`switchboard apply` refuses what would weaken or exhaust it, with the path or position, exit 2 and nothing written.

An empty secret keys an HMAC anyone can compute; an alias bomb, ``/dev/zero`` or a huge file
exhausts memory; a YAML syntax error must not quote the file's lines, which hold secrets.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.admin import cli
from infra.admin.apply import apply_file
from infra.admin.resources import Resources

from .conftest import stored_everything

NEIGHBOUR_SECRET = "planted-neighbour-secret-5e1f"
MAX_CONFIG_BYTES = 1024 * 1024  # docs/configuration.md: the file itself may be at most 1 MiB


def valid_config() -> dict[str, Any]:
    return {
        "workstreams": [{"id": "social", "fallback_queue": "general"}],
        "accounts": [
            {
                "id": "line-a",
                "channel": "line",
                "workstream": "social",
                "secrets": {"channel_secret": "line-secret-value-1", "channel_access_token": "line-token-value-1"},
            }
        ],
        "auth_settings": [
            {
                "id": "idp",
                "type": "oauth2",
                "token_url": "https://idp.example.com/token",
                "userinfo_url": "https://idp.example.com/userinfo",
                "redirect_url": "https://api.example.com/auth/idp/callback",
                "client_id": "switchboard",
                "secrets": {"client_secret": "oauth-secret-value-1"},
            }
        ],
        "crm": {"provider": "none"},
    }


def write(tmp_path: Path, doc: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_valid_file_is_written(resources: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The baseline the refusals below are measured against: the same file, with secrets, is applied."""
    code, out, _ = run(capsys, "apply", str(write(tmp_path, valid_config())))
    assert code == 0, out
    items, secret_names = stored_everything(resources)
    assert len(items) == 4  # workstream, account, auth setting, crm
    assert len(secret_names) == 3  # the account's, the auth setting's, the stack's state key


def _crm_zendesk(doc: dict[str, Any], token: str) -> None:
    doc["crm"] = {"provider": "zendesk", "base_url": "https://acme.zendesk.com", "email": "a@acme.com"}
    doc["crm"]["secrets"] = {"api_token": token}


def _crm_salesforce(doc: dict[str, Any], tokens: list[str]) -> None:
    doc["crm"] = {"provider": "salesforce", "login_url": "https://acme.my.salesforce.com", "org_id": "00D5g000001abcd"}
    doc["crm"]["secrets"] = {"client_id": "cid", "client_secret": "cs", "refresh_tokens": tokens}


EMPTY_SECRET_CASES = [
    pytest.param(
        lambda d, p: d["accounts"][0]["secrets"].update(channel_secret=""),
        {},
        "accounts[0].secrets.channel_secret: empty",
        id="literal-empty",
    ),
    pytest.param(
        lambda d, p: d["accounts"][0]["secrets"].update(channel_secret="  \t "),
        {},
        "accounts[0].secrets.channel_secret: empty",
        id="literal-blank",
    ),
    pytest.param(
        lambda d, p: d["accounts"][0]["secrets"].update(channel_secret="env:CI_LINE_SECRET"),
        {"CI_LINE_SECRET": ""},
        "accounts[0].secrets.channel_secret: empty (environment variable CI_LINE_SECRET is empty or blank)",
        id="env-empty",
    ),
    pytest.param(
        lambda d, p: d["accounts"][0]["secrets"].update(channel_access_token="env:CI_LINE_TOKEN"),
        {"CI_LINE_TOKEN": " \n"},
        "accounts[0].secrets.channel_access_token: empty (environment variable CI_LINE_TOKEN is empty or blank)",
        id="env-blank",
    ),
    pytest.param(
        lambda d, p: (
            p.joinpath("blank.txt").write_text("  \n\n"),
            d["accounts"][0]["secrets"].update(channel_secret="file:blank.txt"),
        ),
        {},
        "accounts[0].secrets.channel_secret: empty (file blank.txt is empty or blank)",
        id="file-blank",
    ),
    pytest.param(
        lambda d, p: d["auth_settings"][0]["secrets"].update(client_secret=""),
        {},
        "auth_settings[0].secrets.client_secret: empty",
        id="auth-setting",
    ),
    pytest.param(
        lambda d, p: _crm_zendesk(d, "env:CI_ZD"),
        {"CI_ZD": ""},
        "crm.secrets.api_token: empty (environment variable CI_ZD is empty or blank)",
        id="crm",
    ),
    pytest.param(
        lambda d, p: _crm_salesforce(d, ["5Aep861.first", "   "]), {}, "crm.secrets.refresh_tokens[1]: empty", id="crm-list"
    ),
]


@pytest.mark.parametrize("dry_run", [False, True], ids=["apply", "dry-run"])
@pytest.mark.parametrize(("mutate", "env", "expected"), EMPTY_SECRET_CASES)
def test_an_empty_or_blank_secret_is_refused_with_its_path_and_nothing_is_written(
    resources: Resources,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mutate: Any,
    env: dict[str, str],
    expected: str,
    dry_run: bool,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    doc = valid_config()
    mutate(doc, tmp_path)
    code, out, err = run(capsys, "apply", str(write(tmp_path, doc)), *(["--dry-run"] if dry_run else []))
    assert code == 2, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert expected in lines, lines
    assert lines[-1] == "1 error(s): nothing was applied"
    assert stored_everything(resources) == ([], [])


def test_an_empty_secret_is_refused_beside_every_other_error(resources: Resources, tmp_path: Path) -> None:
    doc = valid_config()
    doc["accounts"][0]["secrets"]["channel_secret"] = ""
    doc["auth_settings"][0]["secrets"]["client_secret"] = " "
    doc["accounts"][0]["colour"] = "blue"
    code, lines = apply_file(write(tmp_path, doc), resources, dry_run=False)
    assert code == 2
    assert lines[:-1] == [
        "accounts[0].colour: unknown setting",
        "accounts[0].secrets.channel_secret: empty",
        "auth_settings[0].secrets.client_secret: empty",
    ]
    assert stored_everything(resources) == ([], [])


def _bomb() -> str:
    """About 1 KB of YAML that expands to 10**9 values, inside a rule condition's list, which validation accepts."""
    levels = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        levels.append(f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return (
        "workstreams:\n"
        "  - id: social\n"
        "    fallback_queue: general\n"
        "    rules:\n"
        "      - queue: q\n"
        f"        when: [{{field: message.text, op: in, value: [{', '.join(levels)}]}}]\n"
    )


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "apply"])
def test_an_alias_bomb_is_refused_at_once(
    resources: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(), encoding="utf-8")
    assert path.stat().st_size < 1100
    started = time.monotonic()
    code, out, err = run(capsys, "apply", str(path), *(["--dry-run"] if dry_run else []))
    assert time.monotonic() - started < 5
    assert code == 2, (out, err)
    assert out == ""
    assert err == (
        f"{path}: not valid YAML at line 6, column 115: an alias to a mapping or list is not accepted "
        "(a configuration file needs none: write the values out)\n"
    )
    assert stored_everything(resources) == ([], [])


def test_aliases_to_single_values_still_work(resources: Resources, tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text("workstreams:\n  - {id: a, fallback_queue: &q general}\n  - {id: b, fallback_queue: *q}\n", encoding="utf-8")
    code, lines = apply_file(path, resources, dry_run=True)
    assert code == 0, lines
    assert lines == ["would be created   workstream a", "would be created   workstream b"]


def test_aliases_repeating_a_long_value_are_refused(resources: Resources, tmp_path: Path) -> None:
    """A scalar alias costs three bytes and may stand for a megabyte: together they may not repeat more than the cap."""
    long_name = "x" * (MAX_CONFIG_BYTES // 4)
    lines = [f"workstreams:\n  - {{id: a, fallback_queue: &q {long_name}}}\n"]
    lines += [f"  - {{id: w{i}, fallback_queue: *q}}\n" for i in range(8)]
    path = tmp_path / "repeat.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    code, out = apply_file(path, resources, dry_run=True)
    assert code == 2
    assert out == [f"{path}: not valid YAML at line 7, column 30: aliases repeat more than 1024 KiB of text "
                   "(a configuration file needs none: write the values out)"]  # fmt: skip


def test_a_config_file_over_the_cap_is_refused(resources: Resources, tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("workstreams: [{id: a, fallback_queue: q}]\n" + "#" * MAX_CONFIG_BYTES + "\n", encoding="utf-8")
    code, lines = apply_file(path, resources, dry_run=True)
    assert (code, lines) == (2, [f"{path}: larger than 1024 KiB"])


def test_dev_zero_as_the_config_file_is_refused_without_reading_it_all(resources: Resources) -> None:
    started = time.monotonic()
    code, lines = apply_file(Path("/dev/zero"), resources, dry_run=True)
    assert (code, lines) == (2, ["/dev/zero: larger than 1024 KiB"])
    assert time.monotonic() - started < 5


def test_a_file_secret_from_dev_zero_is_refused_and_nothing_is_written(
    resources: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = valid_config()
    doc["accounts"][0]["secrets"]["channel_secret"] = "file:/dev/zero"
    code, out, err = run(capsys, "apply", str(write(tmp_path, doc)))
    assert code == 2, (out, err)
    assert (
        err.splitlines()[0]
        == "accounts[0].secrets.channel_secret: cannot read /dev/zero: it is outside the configuration file's folder"
    )
    assert stored_everything(resources) == ([], [])


def test_deep_nesting_is_one_error_not_a_crash(resources: Resources, tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("workstreams: " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    code, lines = apply_file(path, resources, dry_run=True)
    assert (code, lines) == (2, [f"{path}: not valid YAML: nested deeper than 24 levels"])


SYNTAX_ERRORS = [
    pytest.param(
        "bad.yaml",
        "accounts:\n"
        "  - id: line-a\n"
        f"    secrets: {{channel_secret: {NEIGHBOUR_SECRET}, channel_access_token: tok\n"
        "  - id: line-b\n",
        "not valid YAML at line 4, column 7: expected ',' or '}', but got ':'",
        id="yaml-flow-mapping",
    ),
    pytest.param(
        "quote.yaml",
        f'accounts:\n  - id: line-a\n    secrets: {{channel_secret: "{NEIGHBOUR_SECRET}\n  - id: line-b\n',
        "not valid YAML at line 5, column 1: found unexpected end of stream",
        id="yaml-unclosed-quote",
    ),
    pytest.param(
        "indent.yaml",
        f"accounts:\n  - id: line-a\n    secrets:\n      channel_secret: {NEIGHBOUR_SECRET}\n     channel_access_token: tok\n",
        "not valid YAML at line 5, column 6: expected <block end>, but found '<block mapping start>'",
        id="yaml-indentation",
    ),
    pytest.param(
        "bad.json",
        f'{{"accounts": [{{"id": "line-a",\n "secrets": {{"channel_secret": "{NEIGHBOUR_SECRET}"}}\n,, }}]}}',
        "not valid JSON at line 3, column 2: Expecting property name enclosed in double quotes",
        id="json",
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), SYNTAX_ERRORS)
def test_a_syntax_error_gives_line_and_column_and_never_the_files_text(
    resources: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "apply", str(path), "--dry-run")
    assert code == 2
    for text_of_the_file in (NEIGHBOUR_SECRET[:12], "line-a", "secrets", "channel_access_token"):
        assert text_of_the_file not in err + out  # PyYAML's own message quotes (part of) these lines
    assert err == f"{path}: {expected}\n"
