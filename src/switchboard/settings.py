"""Typed views of the stored settings (interface section 3).

The configuration file is validated by :mod:`switchboard.config`; what is stored in the settings
table is the validated object minus its secret values. These classes are what the stages read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

# Every id in the configuration, and every id a URL path names (interface section 2): anything else is
# refused before a look-up, so a path cannot fill caches or logs, or exceed DynamoDB's key size.
ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_CLOSE_AFTER_MINUTES = 1440
DEFAULT_PRIORITY = 10
DEFAULT_SESSION_MINUTES = 60  # a web chat visitor's session token (interface section 7)
SESSION_MINUTES_RANGE: Final = (5, 1440)
DEFAULT_CLIENT_FUNCTION = "auth.getAuthenticationToken"  # the page function a jwt widget asks for the token


@dataclass(frozen=True)
class Account:
    """One messaging account: a LINE channel, a Facebook page, a GBM agent."""

    id: str
    channel: str
    workstream: str
    enabled: bool = True
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # channel-specific, non-secret fields
    secret_keys: tuple[str, ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Rule:
    queue: str
    when: tuple[Condition, ...]
    name: str | None = None
    priority: int = DEFAULT_PRIORITY


@dataclass(frozen=True)
class Workstream:
    id: str
    fallback_queue: str
    rules: tuple[Rule, ...] = ()
    close_after_minutes: int = DEFAULT_CLOSE_AFTER_MINUTES


@dataclass(frozen=True)
class Widget:
    id: str
    workstream: str
    auth_setting: str | None = None
    allow_anonymous: bool = False
    enabled: bool = True
    # Web chat sessions (interface section 7): the pages that may call the chat from a browser, how long a
    # visitor's session token lasts, and whether an anonymous visitor is asked for a name and an e-mail.
    allowed_origins: tuple[str, ...] = ()
    session_minutes: int = DEFAULT_SESSION_MINUTES
    ask_contact: bool = True


@dataclass(frozen=True)
class AuthSetting:
    id: str
    type: str  # jwt | oauth2
    options: dict[str, Any] = field(default_factory=dict)
    secret_keys: tuple[str, ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class DefaultUser:
    enabled: bool = False
    always: bool = False


@dataclass(frozen=True)
class CrmSettings:
    provider: str  # zendesk | salesforce | dynamics | kustomer | none
    options: dict[str, Any] = field(default_factory=dict)
    default_user: DefaultUser = field(default_factory=DefaultUser)
    secret_keys: tuple[str, ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


NO_CRM = CrmSettings(provider="none")


def is_valid_id(value: object) -> bool:
    """Whether ``value`` could name a configured object (account, widget, auth setting, workstream)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def workstream_from_dict(data: dict[str, Any]) -> Workstream:
    rules = tuple(
        Rule(
            queue=r["queue"],
            name=r.get("name"),
            priority=int(r.get("priority", DEFAULT_PRIORITY)),
            when=tuple(Condition(c["field"], c["op"], c.get("value")) for c in r.get("when", ())),
        )
        for r in data.get("rules", ())
    )
    return Workstream(
        id=data["id"],
        fallback_queue=data["fallback_queue"],
        rules=rules,
        close_after_minutes=int(data.get("close_after_minutes", DEFAULT_CLOSE_AFTER_MINUTES)),
    )


_ACCOUNT_FIELDS = {"id", "channel", "enabled", "name", "workstream", "secrets", "secret_keys"}


def account_from_dict(data: dict[str, Any]) -> Account:
    return Account(
        id=data["id"],
        channel=data["channel"],
        workstream=data["workstream"],
        enabled=bool(data.get("enabled", True)),
        name=data.get("name"),
        options={k: v for k, v in data.items() if k not in _ACCOUNT_FIELDS},
        secret_keys=tuple(data.get("secret_keys", ())),
    )


def widget_from_dict(data: dict[str, Any]) -> Widget:
    return Widget(
        id=data["id"],
        workstream=data["workstream"],
        auth_setting=data.get("auth_setting"),
        allow_anonymous=bool(data.get("allow_anonymous", False)),
        enabled=bool(data.get("enabled", True)),
        allowed_origins=tuple(str(o).rstrip("/") for o in data.get("allowed_origins") or ()),
        session_minutes=int(data.get("session_minutes", DEFAULT_SESSION_MINUTES)),
        ask_contact=bool(data.get("ask_contact", True)),
    )


def auth_setting_from_dict(data: dict[str, Any]) -> AuthSetting:
    return AuthSetting(
        id=data["id"],
        type=data["type"],
        options={k: v for k, v in data.items() if k not in {"id", "type", "secrets", "secret_keys"}},
        secret_keys=tuple(data.get("secret_keys", ())),
    )


def crm_from_dict(data: dict[str, Any]) -> CrmSettings:
    du = data.get("default_user") or {}
    return CrmSettings(
        provider=data["provider"],
        options={k: v for k, v in data.items() if k not in {"provider", "default_user", "secrets", "secret_keys"}},
        default_user=DefaultUser(enabled=bool(du.get("enabled", False)), always=bool(du.get("always", False))),
        secret_keys=tuple(data.get("secret_keys", ())),
    )
