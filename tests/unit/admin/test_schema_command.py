"""`switchboard schema` prints the configuration's JSON Schema; `apply --dry-run` takes every setting the adapters read.

The settings below used to be refused by `apply` although the CRM adapters read them: the validator
had its own list of settings, apart from the adapters. Now both read the adapters' declarations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from infra.admin import cli, crm_check
from infra.admin.resources import Resources
from switchboard import config_schema
from switchboard.crm.registry import build_adapter
from switchboard.settings import crm_from_dict

ROOT = Path(__file__).resolve().parents[3]
CRM_SETTINGS_ADAPTERS_READ = [
    pytest.param(
        {"provider": "kustomer", "base_url": "https://acme.api.kustomerapp.com", "channel_map": {"line": "chat"}},
        {"api_key": "k-1"},
        id="kustomer-channel_map",
    ),
    pytest.param(
        {
            "provider": "salesforce",
            "login_url": "https://acme.my.salesforce.com",
            "org_id": "00D5g000001abcd",
            "case_origin": "Phone",
        },
        {"client_id": "cid", "client_secret": "cs", "refresh_tokens": ["rt-1"]},
        id="salesforce-case_origin",
    ),
    pytest.param(
        {
            "provider": "dynamics",
            "org_url": "https://acme.crm.dynamics.com",
            "tenant_id": "contoso.onmicrosoft.com",
            "case_origin_code": 3,
            "return_representation": True,
        },
        {"client_id": "cid", "client_secret": "cs"},
        id="dynamics-case_origin_code-return_representation",
    ),
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_schema_prints_the_configuration_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "schema")
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed == config_schema.schema()
    Draft202012Validator.check_schema(printed)
    demo = yaml.safe_load((ROOT / "infra" / "local" / "demo.yaml").read_text())
    Draft202012Validator(printed).validate(demo)  # what an editor or a CI step does with it
    assert not Draft202012Validator(printed).is_valid({**demo, "acounts": []})


@pytest.fixture
def crm_accepts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The CRM says yes without a call, once the adapter was built from the stored settings."""
    built: list[Any] = []

    def check(doc: dict[str, Any], secrets: dict[str, Any], *, session: Any = None) -> crm_check.Verdict:
        built.append(build_adapter(crm_from_dict(dict(doc)), secrets))
        return crm_check.Verdict(obj=None, checked=True)

    monkeypatch.setattr(crm_check, "check_credentials", check)
    return built


@pytest.mark.parametrize(("crm", "secrets"), CRM_SETTINGS_ADAPTERS_READ)
def test_dry_run_accepts_every_crm_setting_the_adapter_reads(
    resources: Resources,
    crm_accepts: list[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    crm: dict[str, Any],
    secrets: dict[str, Any],
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"crm": {**crm, "secrets": secrets}}), encoding="utf-8")
    code, out, err = run(capsys, "apply", str(path), "--dry-run")
    assert (code, err) == (0, ""), (out, err)
    assert out.split()[-2:] == ["crm", "default"], out
    assert len(crm_accepts) == 1


@pytest.mark.parametrize(("crm", "secrets"), CRM_SETTINGS_ADAPTERS_READ)
def test_dry_run_still_refuses_an_unknown_crm_setting(
    resources: Resources,
    crm_accepts: list[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    crm: dict[str, Any],
    secrets: dict[str, Any],
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"crm": {**crm, "case_orign": "Web", "secrets": secrets}}), encoding="utf-8")
    code, _, err = run(capsys, "apply", str(path), "--dry-run")
    assert code == 2
    assert "crm.case_orign: unknown setting" in err
