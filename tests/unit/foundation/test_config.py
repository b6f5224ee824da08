"""The configuration file (interface section 3): a valid file becomes Desired objects; every error, with its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

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
        assert isinstance(result, list)
        assert [str(i) for i in result] == [f"crm.org_id: must be 15 or 18 characters (got {len(org_id)})"]


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
