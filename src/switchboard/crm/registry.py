"""From stored CRM settings plus their secrets to a ready adapter (interface section 3).

The config validator reads ``REQUIRED_SECRETS``/``REQUIRED_OPTIONS`` so that a file missing a CRM
field is rejected with the field's path before anything is written; ``build_adapter`` re-checks
because settings can also arrive from the table, written by an older version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from switchboard.crm.base import CrmAdapter
from switchboard.crm.dynamics import DEFAULT_AUTHORITY_URL, DynamicsAdapter
from switchboard.crm.kustomer import KustomerAdapter
from switchboard.crm.salesforce import (
    DEFAULT_API_VERSION,
    DEFAULT_CASE_ID_FIELD,
    DEFAULT_CONTACT_ID_FIELD,
    DEFAULT_LOGIN_URL,
    SalesforceAdapter,
)
from switchboard.crm.zendesk import ZendeskAdapter
from switchboard.errors import ConfigurationError
from switchboard.outbound_http import Session
from switchboard.settings import CrmSettings

REQUIRED_SECRETS: dict[str, tuple[str, ...]] = {
    "zendesk": ("api_token",),
    "salesforce": ("client_id", "client_secret", "refresh_tokens"),
    "dynamics": ("client_id", "client_secret"),
    "kustomer": ("api_key",),
}

REQUIRED_OPTIONS: dict[str, tuple[str, ...]] = {
    "zendesk": ("base_url", "email"),
    "salesforce": ("login_url", "org_id"),
    "dynamics": ("org_url", "tenant_id"),
    "kustomer": ("base_url",),
}

# Optional settings and their defaults, for validators and `export` to show.
OPTIONAL_OPTIONS: dict[str, dict[str, Any]] = {
    "zendesk": {},
    "salesforce": {
        "api_version": DEFAULT_API_VERSION,
        "contact_external_id_field": DEFAULT_CONTACT_ID_FIELD,
        "case_external_id_field": DEFAULT_CASE_ID_FIELD,
        "case_origin": "Web",
    },
    "dynamics": {"authority_url": DEFAULT_AUTHORITY_URL, "return_representation": False, "case_origin_code": None},
    "kustomer": {"channel_map": {}},
}


class CrmConfigError(ConfigurationError, ValueError):
    """Settings or secrets that cannot make an adapter; names the missing keys, never their values.

    Retried like any missing setting: `switchboard apply` writes the secret before the settings.
    """


def _missing(provider: str, settings: CrmSettings, secrets: Mapping[str, Any]) -> list[str]:
    missing = [f"secrets.{k}" for k in REQUIRED_SECRETS[provider] if not secrets.get(k)]
    missing += [k for k in REQUIRED_OPTIONS[provider] if not settings.option(k)]
    return missing


def _str(value: Any) -> str:
    return str(value)


def _tokens(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(v) for v in value if v]
    raise CrmConfigError("secrets.refresh_tokens must be a list of strings")


def build_adapter(settings: CrmSettings, secrets: Mapping[str, Any], *, session: Session | None = None) -> CrmAdapter:
    provider = settings.provider
    if provider not in REQUIRED_SECRETS:
        raise CrmConfigError(f"no CRM adapter for provider {provider!r}")
    missing = _missing(provider, settings, secrets)
    if missing:
        raise CrmConfigError(f"crm ({provider}) is missing: {', '.join(missing)}")
    opt = settings.option
    if provider == "zendesk":
        return ZendeskAdapter(
            base_url=_str(opt("base_url")), email=_str(opt("email")), api_token=_str(secrets["api_token"]), session=session
        )
    if provider == "salesforce":
        return SalesforceAdapter(
            client_id=_str(secrets["client_id"]),
            client_secret=_str(secrets["client_secret"]),
            refresh_tokens=_tokens(secrets["refresh_tokens"]),
            login_url=_str(opt("login_url", DEFAULT_LOGIN_URL)),
            api_version=_str(opt("api_version", DEFAULT_API_VERSION)),
            org_id=_str(opt("org_id")) if opt("org_id") else None,
            # The configuration file names them *_external_id_field (config.CRM_PROVIDERS).
            contact_id_field=_str(opt("contact_external_id_field") or DEFAULT_CONTACT_ID_FIELD),
            case_id_field=_str(opt("case_external_id_field") or DEFAULT_CASE_ID_FIELD),
            case_origin=opt("case_origin", OPTIONAL_OPTIONS["salesforce"]["case_origin"]),
            session=session,
        )
    if provider == "dynamics":
        origin = opt("case_origin_code")
        return DynamicsAdapter(
            org_url=_str(opt("org_url")),
            tenant_id=_str(opt("tenant_id")),
            client_id=_str(secrets["client_id"]),
            client_secret=_str(secrets["client_secret"]),
            authority_url=_str(opt("authority_url") or DEFAULT_AUTHORITY_URL),
            return_representation=bool(opt("return_representation", False)),
            case_origin_code=int(origin) if origin is not None else None,
            session=session,
        )
    channel_map = opt("channel_map") or {}
    if not isinstance(channel_map, Mapping):
        raise CrmConfigError("crm.channel_map must be a mapping of channel to Kustomer channel")
    return KustomerAdapter(
        base_url=_str(opt("base_url")),
        api_key=_str(secrets["api_key"]),
        channel_map={str(k): str(v) for k, v in channel_map.items()},
        session=session,
    )
