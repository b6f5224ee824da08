"""One adapter per CRM configuration, kept across invocations.

Building an adapter is cheap; what it caches is not: an OAuth access token (Salesforce, Dynamics)
and the default user's id (Zendesk ``users/me``, Dynamics ``WhoAmI``, Kustomer's token). A warm
crm_writer therefore reuses its adapter for as long as the stored CRM settings and the secret stay
the same, and builds a new one the moment either changes (``switchboard apply`` took effect).
Settings and the secret are themselves cached by their readers for a few seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from switchboard.crm.base import CrmAdapter, CrmConfigError
from switchboard.errors import SecretMissing
from switchboard.ports import SecretReader
from switchboard.settings import CrmSettings

Builder = Callable[[CrmSettings, Mapping[str, Any]], CrmAdapter]


def _default_builder(settings: CrmSettings, secrets: Mapping[str, Any]) -> CrmAdapter:
    from switchboard.crm.registry import build_adapter  # requests and the adapter: only once a CRM is configured

    return build_adapter(settings, secrets)


def fingerprint(settings: CrmSettings, secrets: Mapping[str, Any]) -> str:
    """A digest of everything an adapter is built from; the secret values never leave this function in clear."""
    material = json.dumps({"settings": asdict(settings), "secrets": dict(secrets)}, sort_keys=True, default=str)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class AdapterCache:
    def __init__(self, secrets: SecretReader, secret_name: str, *, build: Builder = _default_builder) -> None:
        self.secrets = secrets
        self.secret_name = secret_name
        self.build = build
        self._key: str | None = None
        self._adapter: CrmAdapter | None = None
        self.builds = 0

    def adapter_for(self, settings: CrmSettings) -> CrmAdapter:
        try:
            secrets = self.secrets.get(self.secret_name)
        except SecretMissing:
            # Retried by SQS: `apply` writes the secret before the settings, so this is a gap of seconds.
            raise CrmConfigError(
                f"crm ({settings.provider}) secret {self.secret_name} could not be read (run `switchboard apply`)"
            ) from None
        key = fingerprint(settings, secrets)
        if self._adapter is None or key != self._key:
            self._adapter = self.build(settings, secrets)
            self._key = key
            self.builds += 1
        return self._adapter
