"""The one list of CRMs: provider name -> the adapter class that declares and implements it.

Everything that needs to know which CRMs exist reads this table: the configuration schema (from
each class's ``settings_schema`` and secrets), ``apply``'s credential check, the crm_writer's
adapter cache, the benchmark and the tests. Adding a CRM is its module plus one line here.
Classes are imported on first use, so a process loads only the CRM it is configured for.

"none" is the core's "no CRM" setting, not a plug-in, so it is not listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from switchboard import plugins
from switchboard.crm.base import CrmAdapter, CrmConfigError

if TYPE_CHECKING:
    from switchboard.outbound_http import Session
    from switchboard.settings import CrmSettings

__all__ = ["PROVIDERS", "CrmConfigError", "UnknownProvider", "adapter_class", "build_adapter", "names"]

PROVIDERS: dict[str, str] = {
    "zendesk": "switchboard.crm.zendesk:ZendeskAdapter",
    "salesforce": "switchboard.crm.salesforce:SalesforceAdapter",
    "dynamics": "switchboard.crm.dynamics:DynamicsAdapter",
    "kustomer": "switchboard.crm.kustomer:KustomerAdapter",
}


class UnknownProvider(CrmConfigError):
    """A provider no module registers: an error, never a guess at another CRM."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"no CRM adapter for provider {provider!r} (known: {', '.join(names())})")
        self.provider = provider


def names() -> list[str]:
    """Every registered CRM, in registration order."""
    return list(PROVIDERS)


@cache
def adapter_class(provider: str) -> type[CrmAdapter]:
    """The adapter class registered under ``provider``, imported on first use."""
    cls: type[CrmAdapter] = plugins.load_class(PROVIDERS, provider, UnknownProvider)
    return cls


def build_adapter(settings: CrmSettings, secrets: Mapping[str, Any], *, session: Session | None = None) -> CrmAdapter:
    """The adapter for the stored settings; :class:`CrmConfigError` names what is missing or unknown."""
    return adapter_class(settings.provider).from_settings(settings, secrets, session=session)
