"""docs/extending.md's CRM example is real: its module, registered by its one line, is a working CRM.

The test takes the guide's code as printed (the "Adding a CRM" section), registers it the way the
guide says, and checks what the guide promises: the configuration accepts the section and refuses a
wrong setting with the message shown, the adapter builds from stored settings with its declared
defaults, and the guide's own recorded-exchange tests pass against the guide's recording.
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crm_support
import pytest
import requests
import responses
import yaml

from switchboard import config_schema
from switchboard.crm import registry
from switchboard.crm.base import ConversationRef, CrmConfigError
from switchboard.envelope import Envelope
from switchboard.settings import crm_from_dict

ROOT = Path(__file__).resolve().parents[3]
GUIDE = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
SECTION = GUIDE[GUIDE.index("## Adding a CRM") :]
MODULE = "switchboard.crm.helpline"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", SECTION, re.M | re.S)


def _clear_caches() -> None:
    registry.adapter_class.cache_clear()
    config_schema._cached.cache_clear()
    config_schema._validator.cache_clear()


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Any]]:
    module = types.ModuleType(MODULE)
    exec(compile(blocks("python")[0], "docs/extending.md", "exec"), module.__dict__)  # noqa: S102 - our own guide
    monkeypatch.setitem(sys.modules, MODULE, module)
    monkeypatch.setitem(registry.PROVIDERS, "helpline", "switchboard.crm.helpline:HelplineAdapter")
    _clear_caches()
    yield module.HelplineAdapter
    monkeypatch.undo()
    _clear_caches()


def _section() -> dict[str, Any]:
    (plain,) = re.findall(r"^```\n(crm:\n.*?)^```", SECTION, re.M | re.S)
    doc: dict[str, Any] = yaml.safe_load(plain)
    return doc


def test_the_guide_registers_the_module_with_one_line() -> None:
    assert '"helpline": "switchboard.crm.helpline:HelplineAdapter",' in blocks("python")[1]


def test_the_guides_section_applies_and_a_wrong_setting_is_refused(
    registered: type[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELPLINE_API_KEY", "hl-key")
    section = _section()
    assert config_schema.check(section) == []
    wrong = {"crm": {**section["crm"], "priority": "urgent"}}
    assert config_schema.check(wrong) == [(("crm", "priority"), "must be one of low, normal, high")]
    assert config_schema.check({"crm": {**section["crm"], "colour": "red"}}) == [(("crm", "colour"), "unknown setting")]


def test_the_adapter_builds_from_stored_settings(registered: type[Any]) -> None:
    stored = {"provider": "helpline", "base_url": "https://acme.helpline.example"}
    adapter = registry.build_adapter(crm_from_dict(stored), {"api_key": "hl-key"})
    assert isinstance(adapter, registered) and adapter.priority == "normal"  # the declared default
    with pytest.raises(CrmConfigError, match=r"crm \(helpline\) is missing: secrets.api_key"):
        registry.build_adapter(crm_from_dict(stored), {})


def test_the_guides_recorded_exchanges_pass(
    registered: type[Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    session: requests.Session,
    conversation: ConversationRef,
    first_message: Envelope,
) -> None:
    (recording,) = blocks("json")
    (tmp_path / "helpline.json").write_text(json.dumps(json.loads(recording)))
    monkeypatch.setattr(crm_support, "RECORDINGS", tmp_path)
    suite: dict[str, Any] = {}
    exec(compile(blocks("python")[-1], "docs/extending.md", "exec"), suite)  # noqa: S102 - our own guide
    tests = {name: fn for name, fn in suite.items() if name.startswith("test_")}
    assert len(tests) == 3
    for name, test in tests.items():
        adapter = suite["adapter"].__wrapped__(session)
        with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
            arguments = {"rsps": rsps, "adapter": adapter, "conversation": conversation, "first_message": first_message}
            test(**{key: arguments[key] for key in test.__code__.co_varnames[: test.__code__.co_argcount]})
            assert len(rsps.calls) == 1, name  # the guide's answer was asked for (and only it)
