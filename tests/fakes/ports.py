"""In-memory stand-ins for the ports (switchboard.ports): the one set every unit and property test uses.

Each records what it was asked, so a test can prove that a refused request looked nothing up, read
no secret or enqueued nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from switchboard.envelope import Envelope
from switchboard.errors import SecretMissing, StoreUnavailable
from switchboard.settings import NO_CRM, Account, AuthSetting, CrmSettings, Widget, Workstream


@dataclass
class FakeSettings:
    accounts: dict[str, Account] = field(default_factory=dict)
    workstreams: dict[str, Workstream] = field(default_factory=dict)
    widgets: dict[str, Widget] = field(default_factory=dict)
    auth_settings: dict[str, AuthSetting] = field(default_factory=dict)
    # None: the code under test must never read the CRM settings (the edge, token_validate).
    crm_settings: CrmSettings | None = NO_CRM
    lookups: list[str] = field(default_factory=list)  # every id asked for, of any kind

    def account(self, account_id: str) -> Account | None:
        self.lookups.append(account_id)
        return self.accounts.get(account_id)

    def accounts_with(self, channel: str, setting: str, value: str) -> list[Account]:
        self.lookups.append(f"{channel}.{setting}={value}")
        found = [a for a in self.accounts.values() if a.channel == channel and str(a.option(setting)) == value]
        return sorted(found, key=lambda a: a.id)

    def workstream(self, workstream_id: str) -> Workstream | None:
        self.lookups.append(workstream_id)
        return self.workstreams.get(workstream_id)

    def widget(self, widget_id: str) -> Widget | None:
        self.lookups.append(widget_id)
        return self.widgets.get(widget_id)

    def auth_setting(self, auth_setting_id: str) -> AuthSetting | None:
        self.lookups.append(auth_setting_id)
        return self.auth_settings.get(auth_setting_id)

    def crm(self) -> CrmSettings:
        if self.crm_settings is None:
            raise AssertionError("this code never reads the CRM settings")
        return self.crm_settings


@dataclass
class FakeSecrets:
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def get(self, name: str) -> Mapping[str, Any]:
        self.reads.append(name)
        if name not in self.values:
            raise SecretMissing(f"secret {name} could not be read")
        return self.values[name]


@dataclass
class RecordingPublisher:
    published: list[Envelope] = field(default_factory=list)
    calls: int = 0
    refuse: bool = False  # answer as a queue that is down: StoreUnavailable, nothing kept

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls += 1
        if self.refuse:
            raise StoreUnavailable("queue refused the batch: EndpointConnectionError")
        self.published.extend(envelopes)


@dataclass
class RefusingPublisher(RecordingPublisher):
    refuse: bool = True
