from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests
import responses
from crm_support import (
    ALL_SECRETS,
    DYN_CLIENT_ID,
    DYN_CLIENT_SECRET,
    DYN_TENANT,
    KUSTOMER_API_KEY,
    SF_CLIENT_ID,
    SF_CLIENT_SECRET,
    SF_REFRESH_1,
    SF_REFRESH_2,
    ZENDESK_API_TOKEN,
    load,
    serve,
)

from switchboard.crm import registry
from switchboard.crm.base import ConversationRef, CrmAdapter, CrmError
from switchboard.crm.dynamics import DynamicsAdapter
from switchboard.crm.kustomer import KustomerAdapter
from switchboard.crm.registry import CrmConfigError, UnknownProvider, build_adapter
from switchboard.crm.salesforce import SalesforceAdapter
from switchboard.crm.zendesk import ZendeskAdapter
from switchboard.envelope import Envelope
from switchboard.settings import CrmSettings, DefaultUser

SF_ACCESS = load("salesforce")["token"]["json"]["access_token"]
DYN_ACCESS = load("dynamics")["token"]["json"]["access_token"]
ZD_BASIC = base64.b64encode(f"admin@acme.com/token:{ZENDESK_API_TOKEN}".encode()).decode()

SETTINGS = {
    "zendesk": (
        CrmSettings("zendesk", {"base_url": "https://acme.zendesk.com", "email": "admin@acme.com"}, DefaultUser(enabled=True)),
        {"api_token": ZENDESK_API_TOKEN},
        ZendeskAdapter,
    ),
    "salesforce": (
        CrmSettings(
            "salesforce",
            {"login_url": "https://acme.my.salesforce.com", "org_id": "00D5g000004Jj18EAC", "api_version": "60.0"},
        ),
        {"client_id": SF_CLIENT_ID, "client_secret": SF_CLIENT_SECRET, "refresh_tokens": [SF_REFRESH_1, SF_REFRESH_2]},
        SalesforceAdapter,
    ),
    "dynamics": (
        CrmSettings("dynamics", {"org_url": "https://acme.crm.dynamics.com", "tenant_id": DYN_TENANT}),
        {"client_id": DYN_CLIENT_ID, "client_secret": DYN_CLIENT_SECRET},
        DynamicsAdapter,
    ),
    "kustomer": (
        CrmSettings("kustomer", {"base_url": "https://acme.api.kustomerapp.com", "channel_map": {"gbm": "sms"}}),
        {"api_key": KUSTOMER_API_KEY},
        KustomerAdapter,
    ),
}


def test_declared_secrets() -> None:
    assert registry.adapter_class("salesforce").required_secrets == ("client_id", "client_secret", "refresh_tokens")
    assert registry.adapter_class("salesforce").list_secrets == ("refresh_tokens",)
    assert registry.adapter_class("zendesk").required_secrets == ("api_token",)
    assert registry.adapter_class("dynamics").required_secrets == ("client_id", "client_secret")
    assert registry.adapter_class("kustomer").required_secrets == ("api_key",)


@pytest.mark.parametrize(
    ("provider", "setting"),
    [
        ("kustomer", "channel_map"),
        ("salesforce", "case_origin"),
        ("salesforce", "contact_external_id_field"),
        ("salesforce", "case_external_id_field"),
        ("dynamics", "case_origin_code"),
        ("dynamics", "return_representation"),
    ],
)
def test_settings_the_adapters_read_are_declared(provider: str, setting: str) -> None:
    """These four were read by the adapters but missing from the table `apply` validated against."""
    schema = registry.adapter_class(provider).settings_schema[setting]
    assert schema["description"]


@pytest.mark.parametrize("provider", ["line", "none", "Zendesk", ""])
def test_an_unknown_provider_is_an_error_never_another_crm(provider: str) -> None:
    kustomer_settings = {"base_url": "https://acme.api.kustomerapp.com"}
    with pytest.raises(UnknownProvider, match=f"no CRM adapter for provider {provider!r}"):
        build_adapter(CrmSettings(provider, kustomer_settings), {"api_key": KUSTOMER_API_KEY})


def test_stored_settings_keep_one_spelling_of_the_org_id() -> None:
    """`apply` asks the CRM how to store its settings instead of knowing that Salesforce ids come in two lengths."""
    salesforce = registry.adapter_class("salesforce")
    stored = salesforce.stored_settings({"login_url": "https://x.my.salesforce.com", "org_id": "00D5G000004JJ18EAC"})
    assert stored == {"login_url": "https://x.my.salesforce.com", "org_id": "00D5g000004Jj18"}  # case rebuilt from the checksum
    kustomer = {"base_url": "https://acme.api.kustomerapp.com", "channel_map": {"gbm": "sms"}}
    assert registry.adapter_class("kustomer").stored_settings(kustomer) == kustomer


def test_declared_defaults_reach_the_adapter() -> None:
    salesforce = build_adapter(
        CrmSettings("salesforce", {"login_url": "https://acme.my.salesforce.com", "org_id": "00D5g000004Jj18"}),
        {"client_id": SF_CLIENT_ID, "client_secret": SF_CLIENT_SECRET, "refresh_tokens": [SF_REFRESH_1]},
    )
    assert isinstance(salesforce, SalesforceAdapter)
    assert (salesforce.api_version, salesforce.case_origin) == ("59.0", "Web")
    assert salesforce.contact_id_field == "Switchboard_Identity__c"
    no_origin = build_adapter(
        CrmSettings("salesforce", {"login_url": "https://x.my.salesforce.com", "org_id": "00D5g000004Jj18", "case_origin": None}),
        {"client_id": SF_CLIENT_ID, "client_secret": SF_CLIENT_SECRET, "refresh_tokens": SF_REFRESH_1},
    )
    assert isinstance(no_origin, SalesforceAdapter) and no_origin.case_origin is None
    dynamics = build_adapter(
        CrmSettings("dynamics", {"org_url": "https://acme.crm.dynamics.com", "tenant_id": DYN_TENANT, "case_origin_code": 3}),
        {"client_id": DYN_CLIENT_ID, "client_secret": DYN_CLIENT_SECRET},
    )
    assert isinstance(dynamics, DynamicsAdapter)
    assert (dynamics.case_origin_code, dynamics.return_representation) == (3, False)


def test_a_stored_setting_of_the_wrong_type_is_refused_by_name() -> None:
    settings = CrmSettings("kustomer", {"base_url": "https://acme.api.kustomerapp.com", "channel_map": ["gbm", "sms"]})
    with pytest.raises(CrmConfigError, match="channel_map must be of type object"):
        build_adapter(settings, {"api_key": KUSTOMER_API_KEY})
    with pytest.raises(CrmConfigError, match="org_id") as info:
        build_adapter(
            CrmSettings("salesforce", {"login_url": "https://x.my.salesforce.com", "org_id": "00D-5g000004Jj1"}),
            {"client_id": SF_CLIENT_ID, "client_secret": SF_CLIENT_SECRET, "refresh_tokens": [SF_REFRESH_1]},
        )
    assert SF_CLIENT_SECRET not in str(info.value)


@pytest.mark.parametrize("provider", sorted(SETTINGS))
def test_build_adapter(provider: str, session: requests.Session) -> None:
    settings, secrets, cls = SETTINGS[provider]
    adapter = build_adapter(settings, secrets, session=session)
    assert isinstance(adapter, cls)
    assert adapter.provider == provider
    assert adapter.http.session is session  # type: ignore[attr-defined]


def test_build_adapter_passes_options() -> None:
    settings, secrets, _ = SETTINGS["salesforce"]
    adapter = build_adapter(settings, secrets)
    assert isinstance(adapter, SalesforceAdapter)
    assert adapter.api_version == "60.0" and adapter.org_id == "00D5g000004Jj18"
    kustomer = build_adapter(*SETTINGS["kustomer"][:2])
    assert isinstance(kustomer, KustomerAdapter) and kustomer.channel_map["gbm"] == "sms"
    dynamics = build_adapter(*SETTINGS["dynamics"][:2])
    assert isinstance(dynamics, DynamicsAdapter)
    assert dynamics.token_url == f"https://login.microsoftonline.com/{DYN_TENANT}/oauth2/v2.0/token"


def test_build_adapter_names_what_is_missing_never_the_values() -> None:
    settings = CrmSettings("salesforce", {"login_url": "https://acme.my.salesforce.com"})
    with pytest.raises(CrmConfigError) as info:
        build_adapter(settings, {"client_id": SF_CLIENT_ID, "client_secret": SF_CLIENT_SECRET, "refresh_tokens": []})
    assert str(info.value) == "crm (salesforce) is missing: secrets.refresh_tokens, org_id"
    with pytest.raises(CrmConfigError, match="no CRM adapter for provider 'none'"):
        build_adapter(CrmSettings("none"), {})
    with pytest.raises(CrmConfigError) as zendesk:
        build_adapter(CrmSettings("zendesk", {"base_url": "https://acme.zendesk.com"}), {"api_token": ZENDESK_API_TOKEN})
    assert str(zendesk.value) == "crm (zendesk) is missing: email"


# -- no secret in any error message or log line ----------------------------------------------------

Scenario = Callable[[responses.RequestsMock, requests.Session, ConversationRef, Envelope], Any]


def _zendesk_echo(rsps: responses.RequestsMock, session: requests.Session, ref: ConversationRef, msg: Envelope) -> Any:
    adapter = build_adapter(*SETTINGS["zendesk"][:2], session=session)
    rsps.add(
        responses.POST,
        "https://acme.zendesk.com/api/v2/tickets.json",
        status=400,
        json={"error": "InvalidHeader", "description": f"Authorization: Basic {ZD_BASIC} (token {ZENDESK_API_TOKEN})"},
    )
    return adapter, lambda: adapter.open_ticket(ref, contact_id="1", first_message=msg, owner_id=None)


def _zendesk_401(rsps: responses.RequestsMock, session: requests.Session, ref: ConversationRef, msg: Envelope) -> Any:
    adapter = build_adapter(*SETTINGS["zendesk"][:2], session=session)
    serve(rsps, "zendesk", "unauthorized")
    return adapter, adapter.whoami


def _salesforce_all_refused(rsps: responses.RequestsMock, session: requests.Session, ref: ConversationRef, msg: Envelope) -> Any:
    adapter = build_adapter(*SETTINGS["salesforce"][:2], session=session)
    for token in (SF_REFRESH_1, SF_REFRESH_2):
        rsps.add(
            responses.POST,
            "https://acme.my.salesforce.com/services/oauth2/token",
            status=400,
            json={"error": "invalid_grant", "error_description": f"refresh token {token} expired; secret {SF_CLIENT_SECRET}"},
        )
    return adapter, adapter.whoami


def _salesforce_401_twice(rsps: responses.RequestsMock, session: requests.Session, ref: ConversationRef, msg: Envelope) -> Any:
    adapter = build_adapter(*SETTINGS["salesforce"][:2], session=session)
    url = "https://acme.my.salesforce.com/services/data/v60.0/sobjects/CaseComment"
    for _ in range(2):
        serve(rsps, "salesforce", "token")
        rsps.add(
            responses.POST, url, status=401, json=[{"message": f"Session {SF_ACCESS} expired", "errorCode": "INVALID_SESSION_ID"}]
        )
    return adapter, lambda: adapter.append_message(ref, ticket_id="500", contact_id="003", message=msg, owner_id=None)


def _dynamics_refused(rsps: responses.RequestsMock, session: requests.Session, ref: ConversationRef, msg: Envelope) -> Any:
    adapter = build_adapter(*SETTINGS["dynamics"][:2], session=session)
    rsps.add(
        responses.POST,
        f"https://login.microsoftonline.com/{DYN_TENANT}/oauth2/v2.0/token",
        status=401,
        json={
            "error": "invalid_client",
            "error_description": f"AADSTS7000215: Invalid client secret provided: {DYN_CLIENT_SECRET}",
        },
    )
    return adapter, adapter.whoami


def _dynamics_echo(rsps: responses.RequestsMock, session: requests.Session, ref: ConversationRef, msg: Envelope) -> Any:
    adapter = build_adapter(*SETTINGS["dynamics"][:2], session=session)
    serve(rsps, "dynamics", "token")
    rsps.add(
        responses.GET,
        "https://acme.crm.dynamics.com/api/data/v9.2/WhoAmI",
        status=403,
        json={"error": {"code": "0x80040220", "message": f"Principal with token {DYN_ACCESS} is missing prvReadUser"}},
    )
    return adapter, adapter.whoami


def _kustomer_echo(rsps: responses.RequestsMock, session: requests.Session, ref: ConversationRef, msg: Envelope) -> Any:
    adapter = build_adapter(*SETTINGS["kustomer"][:2], session=session)
    rsps.add(
        responses.GET,
        "https://acme.api.kustomerapp.com/v1/auth/tokens/current",
        status=401,
        json={"errors": [{"code": "unauthorized", "message": f"token Bearer {KUSTOMER_API_KEY} revoked"}]},
    )
    return adapter, adapter.whoami


def _kustomer_timeout(rsps: responses.RequestsMock, session: requests.Session, ref: ConversationRef, msg: Envelope) -> Any:
    adapter = build_adapter(*SETTINGS["kustomer"][:2], session=session)
    rsps.add(
        responses.GET,
        "https://acme.api.kustomerapp.com/v1/auth/tokens/current",
        body=requests.exceptions.ReadTimeout(f"Authorization: Bearer {KUSTOMER_API_KEY}"),
    )
    return adapter, adapter.whoami


SCENARIOS: dict[str, Scenario] = {
    "zendesk vendor echo": _zendesk_echo,
    "zendesk 401": _zendesk_401,
    "salesforce all tokens refused": _salesforce_all_refused,
    "salesforce 401 twice": _salesforce_401_twice,
    "dynamics secret refused": _dynamics_refused,
    "dynamics vendor echo": _dynamics_echo,
    "kustomer vendor echo": _kustomer_echo,
    "kustomer timeout": _kustomer_timeout,
}


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_no_secret_in_errors_notices_or_logs(
    name: str,
    *,
    rsps: responses.RequestsMock,
    session: requests.Session,
    conversation: ConversationRef,
    first_message: Envelope,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter, call = SCENARIOS[name](rsps, session, conversation, first_message)
    assert isinstance(adapter, CrmAdapter)
    with pytest.raises(CrmError) as info:
        call()
    texts = [caplog.text, info.value.message, repr(info.value.message)]
    texts += [str(e) for e in _chain(info.value)]
    for notice in getattr(adapter, "notices", []):
        texts += [notice.message, repr(notice.detail)]
    leaked = [s for s in (*ALL_SECRETS, SF_ACCESS, DYN_ACCESS, ZD_BASIC) for t in texts if s in t]
    assert leaked == [], f"{name}: secret in {texts}"
    assert info.value.message.startswith(adapter.provider)
