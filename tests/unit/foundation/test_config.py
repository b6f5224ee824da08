"""The configuration file (interface section 3): a valid file becomes Desired objects; every error, with its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from switchboard import channels
from switchboard.config import Desired, Issue, validate

LINE_SECRET = "line-secret-from-env-6f1d"
LINE_TOKEN = "line-token-from-file-93ab"
ZENDESK_TOKEN = "zendesk-literal-token-c0de"
OAUTH_SECRET = "oauth-client-secret-77aa"
ENV = {"LINE_SECRET": LINE_SECRET}


def full_config() -> dict[str, Any]:
    """Interface section 3's file, limited to LINE accounts and the zendesk CRM."""
    return {
        "accounts": [
            {
                "id": "line-tokyo",
                "channel": "line",
                "enabled": True,
                "name": "LINE Tokyo",
                "channel_id": "1656789012",
                "workstream": "social",
                "api_base_url": "https://api.line.me",
                "data_base_url": "https://api-data.line.me",
                "secrets": {"channel_secret": "env:LINE_SECRET", "channel_access_token": "file:secrets/line_token.txt"},
            },
            {
                "id": "line-osaka",
                "channel": "line",
                "enabled": False,
                "workstream": "social",
                "api_base_url": "http://127.0.0.1:8080",
                "attachments": {"max_bytes": 1048576, "extensions": [".JPG", "png"]},
                "secrets": {"channel_secret": "osaka-secret", "channel_access_token": "osaka-token"},
            },
        ],
        "auth_settings": [
            {
                "id": "portal",
                "type": "jwt",
                "public_key_url": "https://portal.example.com/_services/auth/publickey",
                "issuer": "portal.example.com",
            },
            {
                "id": "apple-oidc",
                "type": "oauth2",
                "token_url": "https://idp.example.com/oauth2/token",
                "userinfo_url": "https://idp.example.com/oauth2/userinfo",
                "redirect_url": "https://api.example.com/auth/apple-oidc/callback",
                "client_id": "switchboard",
                "scope": "openid profile",
                "user_id_claim": "sub",
                "token_endpoint_auth": "client_secret_post",
                "expiry_seconds": 3600,
                "secrets": {"client_secret": OAUTH_SECRET},
            },
        ],
        "widgets": [{"id": "web", "auth_setting": "portal", "allow_anonymous": False, "workstream": "chat"}],
        "workstreams": [
            {
                "id": "chat",
                "fallback_queue": "general",
                "close_after_minutes": 1440,
                "rules": [
                    {
                        "name": "anonymous visitors",
                        "when": [{"field": "authenticated", "op": "eq", "value": False}],
                        "queue": "anonymous",
                    },
                    {
                        "name": "VIP",
                        "when": [{"field": "context.msdyn_isvip", "op": "eq", "value": "true"}],
                        "queue": "vip",
                        "priority": 1,
                    },
                    {
                        "name": "big carts",
                        "when": [{"field": "context.msdyn_cartvalue", "op": "gt", "value": 5000}],
                        "queue": "sales",
                        "priority": 2,
                    },
                ],
            },
            {
                "id": "social",
                "fallback_queue": "general",
                "rules": [
                    {
                        "when": [
                            {"field": "channel", "op": "in", "value": ["line", "gbm"]},
                            {"field": "message.text", "op": "contains", "value": "refund"},
                        ],
                        "queue": "billing",
                    }
                ],
            },
        ],
        "crm": {
            "provider": "zendesk",
            "base_url": "https://acme.zendesk.com",
            "email": "admin@acme.com",
            "default_user": {"enabled": True, "always": False},
            "secrets": {"api_token": ZENDESK_TOKEN},
        },
    }


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "line_token.txt").write_text(LINE_TOKEN + "\n", encoding="utf-8")
    return tmp_path


def run(doc: Any, base_dir: Path, env: dict[str, str] | None = None) -> Desired | list[Issue]:
    return validate(doc, env=ENV if env is None else env, base_dir=base_dir)


def errors(doc: Any, base_dir: Path, env: dict[str, str] | None = None) -> list[str]:
    result = run(doc, base_dir, env)
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return [str(issue) for issue in result]


def test_valid_file_gives_every_object(base_dir: Path) -> None:
    result = run(full_config(), base_dir)
    assert isinstance(result, Desired), result
    assert sorted((o.kind, o.id) for o in result.objects) == [
        ("account", "line-osaka"),
        ("account", "line-tokyo"),
        ("auth_setting", "apple-oidc"),
        ("auth_setting", "portal"),
        ("crm", "default"),
        ("widget", "web"),
        ("workstream", "chat"),
        ("workstream", "social"),
    ]
    tokyo = next(o for o in result.of("account") if o.id == "line-tokyo")
    assert tokyo.channel == "line"
    assert tokyo.secrets == {"channel_secret": LINE_SECRET, "channel_access_token": LINE_TOKEN}  # env: and file: resolved
    assert tokyo.doc["secret_keys"] == ["channel_access_token", "channel_secret"]
    assert tokyo.doc["enabled"] is True
    assert tokyo.doc["workstream"] == "social"
    assert tokyo.doc["channel_id"] == "1656789012"
    assert tokyo.doc["attachments"]["max_bytes"] == 25 * 1024 * 1024
    assert "secrets" not in tokyo.doc

    osaka = next(o for o in result.of("account") if o.id == "line-osaka")
    assert osaka.doc["enabled"] is False
    assert osaka.doc["attachments"] == {"max_bytes": 1048576, "extensions": ["jpg", "png"]}
    assert osaka.secrets == {"channel_secret": "osaka-secret", "channel_access_token": "osaka-token"}

    (crm,) = result.of("crm")
    assert crm.secrets == {"api_token": ZENDESK_TOKEN}
    assert crm.doc["default_user"] == {"enabled": True, "always": False}
    assert crm.doc["secret_keys"] == ["api_token"]
    oidc = next(o for o in result.of("auth_setting") if o.id == "apple-oidc")
    assert oidc.secrets == {"client_secret": OAUTH_SECRET}
    portal = next(o for o in result.of("auth_setting") if o.id == "portal")
    assert portal.secrets is None

    # No secret value anywhere in what the settings table would store.
    stored = json.dumps([o.doc for o in result.objects])
    for secret in (LINE_SECRET, LINE_TOKEN, ZENDESK_TOKEN, OAUTH_SECRET, "osaka-secret", "osaka-token"):
        assert secret not in stored
    assert "env:LINE_SECRET" not in stored
    assert "file:secrets" not in stored


def test_crm_none_needs_no_secrets(base_dir: Path) -> None:
    doc = full_config()
    doc["crm"] = {"provider": "none"}
    result = run(doc, base_dir)
    assert isinstance(result, Desired), result
    (crm,) = result.of("crm")
    assert crm.doc["provider"] == "none"
    assert crm.secrets is None
    assert crm.doc["default_user"] == {"enabled": False, "always": False}


def test_empty_file_sections_are_fine(base_dir: Path) -> None:
    result = run({"workstreams": [{"id": "w", "fallback_queue": "q"}]}, base_dir)
    assert isinstance(result, Desired)
    assert [(o.kind, o.id) for o in result.objects] == [("workstream", "w")]


def _broken(doc: dict[str, Any], mutate: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    mutate(doc)
    return doc


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["accounts"][0]["secrets"].pop("channel_secret"),
            "accounts[0].secrets.channel_secret: required",
        ),
        (lambda d: d["accounts"][1].pop("secrets"), "accounts[1].secrets: required"),
        (lambda d: d["accounts"][0].update(colour="blue"), "accounts[0].colour: unknown setting"),
        (lambda d: d["accounts"][0]["secrets"].update(api_key="x"), "accounts[0].secrets.api_key: unknown secret"),
        (lambda d: d.update(extra=1), "(file).extra: unknown setting"),
        (
            lambda d: d["workstreams"][0]["rules"][1]["when"][0].update(op="matches"),
            "workstreams[0].rules[1].when[0].op: must be one of",
        ),
        (
            lambda d: d["workstreams"][0]["rules"][0]["when"][0].update(field="customer.shoe_size"),
            "workstreams[0].rules[0].when[0].field: must be one of",
        ),
        (
            lambda d: d["workstreams"][0]["rules"][2]["when"][0].update(value="lots"),
            "workstreams[0].rules[2].when[0].value: must be a number for op gt",
        ),
        (
            lambda d: d["workstreams"][1]["rules"][0]["when"][0].update(value="line"),
            "workstreams[1].rules[0].when[0].value: must be a list for op in",
        ),
        (lambda d: d["workstreams"][1]["rules"][0].update(when=[]), "workstreams[1].rules[0].when: must be a non-empty list"),
        (lambda d: d["workstreams"][1]["rules"][0].pop("queue"), "workstreams[1].rules[0].queue: required"),
        (lambda d: d["accounts"][0].update(workstream="sales"), "accounts[0].workstream: no workstream with id 'sales'"),
        (lambda d: d["widgets"][0].update(workstream="nope"), "widgets[0].workstream: no workstream with id 'nope'"),
        (lambda d: d["widgets"][0].update(auth_setting="sso"), "widgets[0].auth_setting: no auth setting with id 'sso'"),
        (lambda d: d["accounts"][1].update(id="line-tokyo"), "accounts[1].id: duplicate id 'line-tokyo'"),
        (lambda d: d["workstreams"][1].update(id="chat"), "workstreams[1].id: duplicate id 'chat'"),
        (
            lambda d: d["accounts"][0].update(api_base_url="http://api.line.me"),
            "accounts[0].api_base_url: must be an https URL",
        ),
        (lambda d: d["crm"].update(base_url="http://acme.zendesk.com"), "crm.base_url: must be an https URL"),
        (lambda d: d["crm"].update(provider="hubspot"), "crm.provider: must be one of"),
        (lambda d: d["crm"]["secrets"].pop("api_token"), "crm.secrets.api_token: required"),
        (lambda d: d["accounts"][0].update(channel="telegram"), "accounts[0].channel: must be one of"),
        (lambda d: d["accounts"][0].update(enabled="yes"), "accounts[0].enabled: must be true or false"),
        (lambda d: d["accounts"][0].update(id="bad id!"), "accounts[0].id: must be 1-64 letters"),
        (lambda d: d["workstreams"][0].update(close_after_minutes=0), "workstreams[0].close_after_minutes: must be a positive"),
        (
            lambda d: d["accounts"][0]["secrets"].update(channel_secret="env:NOT_SET_ANYWHERE"),
            "accounts[0].secrets.channel_secret: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            lambda d: d["accounts"][0]["secrets"].update(channel_access_token="file:missing.txt"),
            "accounts[0].secrets.channel_access_token: cannot read missing.txt",
        ),
        (
            lambda d: d["accounts"][0]["secrets"].update(channel_secret=123),
            "accounts[0].secrets.channel_secret: must be a string",
        ),
        (lambda d: d["auth_settings"][1].pop("client_id"), "auth_settings[1].client_id: required"),
        (lambda d: d["auth_settings"][0].update(type="saml"), "auth_settings[0].type: must be one of jwt, oauth2"),
        (lambda d: d.update(accounts={"id": "x"}), "accounts: must be a list"),
    ],
)
def test_each_error_has_its_path(base_dir: Path, mutate: Any, expected: str) -> None:
    found = errors(_broken(full_config(), mutate), base_dir)
    assert any(line.startswith(expected) for line in found), found


@pytest.mark.parametrize(
    ("org_id", "ok"),
    [("00D5g000001abcd", True), ("00D5g000001abcdEAA", True), ("00D5g000001abc", False), ("00D5g000001abcdEA", False)],
)
def test_salesforce_org_id_length(base_dir: Path, org_id: str, ok: bool) -> None:
    doc = full_config()
    doc["crm"] = {
        "provider": "salesforce",
        "login_url": "https://acme.my.salesforce.com",
        "org_id": org_id,
        "secrets": {"client_id": "cid", "client_secret": "cs", "refresh_tokens": ["rt1", "rt2"]},
    }
    result = run(doc, base_dir)
    if ok:
        assert isinstance(result, Desired), result
        (crm,) = result.of("crm")
        assert crm.doc["org_id"] == org_id[:15]  # 18 characters are cut to 15
        assert crm.secrets == {"client_id": "cid", "client_secret": "cs", "refresh_tokens": ["rt1", "rt2"]}
    else:
        # The message is the Salesforce declaration's (its schema's pattern); the place is exact and alone.
        assert isinstance(result, list)
        assert [i.path for i in result] == ["crm.org_id"], [str(i) for i in result]
        assert result[0].message.startswith("must")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9000/zd", "http://[::1]:8000"])
def test_http_allowed_only_on_loopback(base_dir: Path, url: str) -> None:
    doc = full_config()
    doc["crm"]["base_url"] = url
    assert isinstance(run(doc, base_dir), Desired)


@pytest.mark.parametrize("url", ["http://10.0.0.5", "http://example.com", "ftp://127.0.0.1", "https://", 42])
def test_non_loopback_http_and_junk_urls_refused(base_dir: Path, url: Any) -> None:
    doc = full_config()
    doc["crm"]["base_url"] = url
    assert any(line.startswith("crm.base_url: must be") for line in errors(doc, base_dir))


def test_all_errors_come_back_at_once(base_dir: Path) -> None:
    doc = full_config()
    doc["accounts"][0]["secrets"].pop("channel_secret")
    doc["accounts"][0]["colour"] = "blue"
    doc["accounts"][1]["workstream"] = "missing"
    doc["workstreams"][0]["rules"][1]["when"][0]["op"] = "like"
    doc["widgets"].append({"id": "web", "workstream": "chat"})
    doc["crm"]["base_url"] = "http://acme.zendesk.com"
    found = errors(doc, base_dir)
    expected_prefixes = [
        "accounts[0].secrets.channel_secret: required",
        "accounts[0].colour: unknown setting",
        "accounts[1].workstream: no workstream with id 'missing'",
        "workstreams[0].rules[1].when[0].op: must be one of",
        "widgets[1].id: duplicate id 'web'",
        "crm.base_url: must be an https URL",
    ]
    for prefix in expected_prefixes:
        assert any(line.startswith(prefix) for line in found), (prefix, found)
    assert len(found) == len(expected_prefixes), found


def test_error_messages_never_carry_secret_values(base_dir: Path) -> None:
    doc = full_config()
    doc["accounts"][0]["secrets"]["extra_secret"] = "do-not-print-me"
    doc["accounts"][0]["colour"] = "blue"
    found = errors(doc, base_dir)
    joined = "\n".join(found)
    assert "accounts[0].secrets.extra_secret: unknown secret" in found
    for secret in ("do-not-print-me", LINE_SECRET, LINE_TOKEN, ZENDESK_TOKEN, OAUTH_SECRET):
        assert secret not in joined


def test_not_a_mapping() -> None:
    result = validate(["accounts"], env={}, base_dir=Path())
    assert isinstance(result, list)
    assert str(result[0]).startswith("(file): must be a mapping")


# -- empty secrets, file: secrets, link_minutes ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("", {}, "empty"),
        ("   ", {}, "empty"),
        ("env:EMPTY_ONE", {"EMPTY_ONE": ""}, "empty (environment variable EMPTY_ONE is empty or blank)"),
        ("env:BLANK_ONE", {"BLANK_ONE": "\t \n"}, "empty (environment variable BLANK_ONE is empty or blank)"),
        ("env:", {}, "env: needs a variable name"),
    ],
)
def test_empty_or_blank_secret_is_refused(base_dir: Path, value: str, env: dict[str, str], expected: str) -> None:
    doc = full_config()
    doc["accounts"][1]["secrets"]["channel_secret"] = value
    assert errors(doc, base_dir, {**ENV, **env}) == [f"accounts[1].secrets.channel_secret: {expected}"]


def test_every_secrets_map_refuses_an_empty_value(base_dir: Path) -> None:
    doc = full_config()
    doc["auth_settings"][1]["secrets"]["client_secret"] = ""
    doc["crm"]["secrets"]["api_token"] = " "
    (base_dir / "secrets" / "empty.txt").write_text("\n")
    doc["accounts"][0]["secrets"]["channel_access_token"] = "file:secrets/empty.txt"
    assert errors(doc, base_dir) == [
        "accounts[0].secrets.channel_access_token: empty (file secrets/empty.txt is empty or blank)",
        "auth_settings[1].secrets.client_secret: empty",
        "crm.secrets.api_token: empty",
    ]


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    """The configuration's folder, with a file beside it (outside) that must stay unreadable."""
    folder = tmp_path / "conf"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "line_token.txt").write_text(LINE_TOKEN + "\n", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("outside-secret-value\n", encoding="utf-8")
    return folder


def _token_from(conf_dir: Path, value: str) -> list[str] | Desired:
    doc = full_config()
    doc["accounts"][0]["secrets"]["channel_access_token"] = value
    result = run(doc, conf_dir)
    return [str(i) for i in result] if isinstance(result, list) else result


def test_file_secret_inside_the_folder_is_read_relative_or_absolute(conf_dir: Path) -> None:
    for value in (
        "file:secrets/line_token.txt",
        f"file:{conf_dir / 'secrets' / 'line_token.txt'}",
        "file:./secrets/../secrets/line_token.txt",
    ):
        result = _token_from(conf_dir, value)
        assert isinstance(result, Desired), (value, result)
        tokyo = next(o for o in result.of("account") if o.id == "line-tokyo")
        assert tokyo.secrets == {"channel_secret": LINE_SECRET, "channel_access_token": LINE_TOKEN}


@pytest.mark.parametrize(
    "value",
    ["file:../outside.txt", "file:secrets/../../outside.txt", "file:/etc/passwd", "file:../../../../etc/passwd"],
)
def test_file_secret_outside_the_folder_is_refused(conf_dir: Path, value: str) -> None:
    given = value[5:]
    assert _token_from(conf_dir, value) == [
        f"accounts[0].secrets.channel_access_token: cannot read {given}: it is outside the configuration file's folder"
    ]


def test_file_secret_through_a_symlink_to_outside_is_refused(conf_dir: Path) -> None:
    (conf_dir / "secrets" / "link.txt").symlink_to(conf_dir.parent / "outside.txt")
    (conf_dir / "escape").symlink_to(conf_dir.parent)
    for value in ("file:secrets/link.txt", "file:escape/outside.txt"):
        assert _token_from(conf_dir, value) == [
            f"accounts[0].secrets.channel_access_token: cannot read {value[5:]}: it is outside the configuration file's folder"
        ]


@pytest.mark.parametrize("device", ["/dev/zero", "/proc/self/environ", "/dev/stdin"])
def test_file_secret_from_a_device_or_proc_is_refused(conf_dir: Path, device: str) -> None:
    found = _token_from(conf_dir, f"file:{device}")
    assert isinstance(found, list) and len(found) == 1
    assert found[0].startswith(f"accounts[0].secrets.channel_access_token: cannot read {device}: it is")


def test_devices_and_proc_are_never_secret_files_even_from_a_folder_inside_them() -> None:
    """Even a configuration kept in /dev's own tree would not read a device: /proc, /sys and /dev are never secret files."""
    from switchboard.config import SecretFileError, read_secret_file

    with pytest.raises(SecretFileError, match="not a regular file"):
        read_secret_file(Path("/dev"), "zero")
    with pytest.raises(SecretFileError, match="not a regular file"):
        read_secret_file(Path("/proc/self"), "environ")


def test_file_secret_from_a_fifo_is_refused_without_waiting_for_a_writer(conf_dir: Path) -> None:
    import os
    import threading

    fifo = conf_dir / "secrets" / "pipe"
    os.mkfifo(fifo)
    found: list[Any] = []
    worker = threading.Thread(target=lambda: found.append(_token_from(conf_dir, "file:secrets/pipe")), daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # the bug: open() waits for a writer; be the writer so the thread can end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail("reading a FIFO secret blocked")
    assert found == [["accounts[0].secrets.channel_access_token: cannot read secrets/pipe: it is not a regular file"]]


def test_file_secret_over_the_size_cap_is_refused(conf_dir: Path) -> None:
    from switchboard.config import MAX_SECRET_FILE_BYTES

    (conf_dir / "secrets" / "big.json").write_bytes(b"a" * (MAX_SECRET_FILE_BYTES + 1))
    (conf_dir / "secrets" / "fits.json").write_bytes(b"b" * MAX_SECRET_FILE_BYTES)
    assert _token_from(conf_dir, "file:secrets/big.json") == [
        "accounts[0].secrets.channel_access_token: cannot read secrets/big.json: it is larger than 64 KiB"
    ]
    fits = _token_from(conf_dir, "file:secrets/fits.json")
    assert isinstance(fits, Desired)
    tokyo = next(o for o in fits.of("account") if o.id == "line-tokyo")
    assert tokyo.secrets is not None
    assert tokyo.secrets["channel_access_token"] == "b" * MAX_SECRET_FILE_BYTES


def test_file_secret_that_is_not_utf8_is_refused(conf_dir: Path) -> None:
    (conf_dir / "secrets" / "binary.bin").write_bytes(b"\xff\xfe\x00secret")
    assert _token_from(conf_dir, "file:secrets/binary.bin") == [
        "accounts[0].secrets.channel_access_token: cannot read secrets/binary.bin: it is not UTF-8 text"
    ]


@pytest.mark.parametrize("minutes", [1, 15, 1440])
def test_oauth2_link_minutes_is_accepted(base_dir: Path, minutes: int) -> None:
    doc = full_config()
    doc["auth_settings"][1]["link_minutes"] = minutes
    result = run(doc, base_dir)
    assert isinstance(result, Desired), result
    oidc = next(o for o in result.of("auth_setting") if o.id == "apple-oidc")
    assert oidc.doc["link_minutes"] == minutes


@pytest.mark.parametrize("minutes", [0, -5, 1441, "15", 1.5, True, [15]])
def test_oauth2_link_minutes_out_of_range_or_not_whole_is_refused(base_dir: Path, minutes: Any) -> None:
    doc = full_config()
    doc["auth_settings"][1]["link_minutes"] = minutes
    assert errors(doc, base_dir) == ["auth_settings[1].link_minutes: must be a whole number from 1 to 1440"]


def test_link_minutes_is_an_oauth2_option_only(base_dir: Path) -> None:
    doc = full_config()
    doc["auth_settings"][0]["link_minutes"] = 15
    assert errors(doc, base_dir) == ["auth_settings[0].link_minutes: unknown setting"]


@pytest.mark.parametrize("bad_id", ["tokyo\n", "a" * 65, "-dash", "has space", ""])
def test_an_account_id_the_webhook_path_could_never_match_is_refused(base_dir: Path, bad_id: str) -> None:
    # The edge answers 404 for any id outside the pattern (fullmatch); apply must not store one it would refuse.
    doc = full_config()
    doc["accounts"][0]["id"] = bad_id
    assert any(e.startswith("accounts[0].id:") for e in errors(doc, base_dir)), errors(doc, base_dir)


# -- settings the channels declare together ----------------------------------------------------------


def _with_account(account: dict[str, Any]) -> dict[str, Any]:
    doc = full_config()
    doc["accounts"].append({"workstream": "social", **account})
    return doc


GBM = {"id": "gbm-a", "channel": "gbm", "brand_id": "b-1", "agent_id": "a-1", "secrets": {"client_token": "CLIENTTOKEN"}}
FACEBOOK = {
    "id": "fb-a",
    "channel": "facebook",
    "page_id": "104123456789012",
    "secrets": {"app_secret": "as", "verify_token": "vt", "page_access_token": "pat"},
}


def test_gbm_signing_with_the_partner_key_needs_the_partner_key(base_dir: Path) -> None:
    doc = _with_account({**GBM, "signing_key": "partner_key"})
    assert errors(doc, base_dir) == ["accounts[2].secrets.partner_key: required"]
    doc["accounts"][2]["secrets"]["partner_key"] = "pk"
    assert isinstance(run(doc, base_dir), Desired)
    assert isinstance(run(_with_account({**GBM, "signing_key": "client_token"}), base_dir), Desired)


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ({**GBM, "signing_key": "service_account_json"}, "accounts[2].signing_key: must be one of client_token, partner_key"),
        ({**GBM, "brand_id": "  "}, "accounts[2].brand_id: must be a non-empty string"),
        ({k: v for k, v in GBM.items() if k != "agent_id"}, "accounts[2].agent_id: required"),
        ({**FACEBOOK, "page_id": 104123456789012}, "accounts[2].page_id: must be a non-empty string"),
        ({k: v for k, v in FACEBOOK.items() if k != "page_id"}, "accounts[2].page_id: required"),
        ({**FACEBOOK, "allow_sha1": "no"}, "accounts[2].allow_sha1: must be true or false"),
        ({**FACEBOOK, "api_base_url": "https://graph.facebook.com"}, "accounts[2].api_base_url: unknown setting"),
    ],
)
def test_channel_settings_are_checked_by_their_declarations(base_dir: Path, account: dict[str, Any], expected: str) -> None:
    assert errors(_with_account(account), base_dir) == [expected]


def test_an_invalid_channel_is_the_accounts_only_error(base_dir: Path) -> None:
    """Without a known channel there is no telling which settings are unknown: one error, not one per setting."""
    assert errors(_with_account({**FACEBOOK, "channel": "telegram"}), base_dir) == [
        f"accounts[2].channel: must be one of {', '.join(channels.names())}"
    ]


def test_errors_come_in_the_files_order(base_dir: Path) -> None:
    doc = full_config()
    doc["crm"]["base_url"] = "ftp://acme"
    doc["workstreams"][1]["rules"][0]["queue"] = ""
    doc["accounts"][1]["secrets"]["channel_secret"] = ""
    doc["accounts"][0].pop("workstream")
    assert errors(doc, base_dir) == [
        "accounts[0].workstream: required",
        "accounts[1].secrets.channel_secret: empty",
        "workstreams[1].rules[0].queue: must be a non-empty string",
        "crm.base_url: must be an https URL (http only for 127.0.0.1 or localhost, for tests and sandboxes)",
    ]


def test_a_number_as_a_key_is_named_as_written_and_never_resolved(base_dir: Path) -> None:
    """YAML keys may be numbers: ``1: x`` is an unknown setting called 1, not a list position."""
    doc = full_config()
    doc[1] = "x"
    doc["accounts"][0]["secrets"][2] = "env:NOT_SET_ANYWHERE"
    assert errors(doc, base_dir) == ["accounts[0].secrets.2: unknown secret", "(file).1: unknown setting"]
