"""`switchboard apply` with a crm section asks the CRM first (interface section 3, infra/admin/crm_check.py).

Accepted credentials are stored; refused ones leave the stored section and secret as they were,
turn the default user off, apply the rest of the file and exit 3; an unchanged section costs no call.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from fakes.crm import SF_REFRESH_TOKENS, WRONG_SECRETS, FakeCrm

from infra.admin.apply import apply_file
from infra.admin.resources import Resources
from switchboard.crm import registry
from switchboard.crm.factory import AdapterCache, fingerprint
from switchboard.crm.registry import CrmConfigError, build_adapter
from switchboard.crm.salesforce import SalesforceAdapter
from switchboard.errors import SecretMissing
from switchboard.settings import CrmSettings, crm_from_dict

WRONG = WRONG_SECRETS


@pytest.fixture
def resources(aws: dict[str, str]) -> Iterator[Resources]:
    outputs = {
        "SettingsTableName": aws["SETTINGS_TABLE"],
        "ConversationsTableName": aws["CONVERSATIONS_TABLE"],
        "InboundQueueUrl": aws["CRM_QUEUE_URL"],
        "InboundDeadLetterQueueUrl": aws["CRM_DLQ_URL"],
        "CrmQueueUrl": aws["CRM_QUEUE_URL"],
        "CrmDeadLetterQueueUrl": aws["CRM_DLQ_URL"],
        "AttachmentsBucketName": "unused",
        "SecretsPrefix": aws["SECRETS_PREFIX"],
    }
    yield Resources.from_outputs(outputs, api_url="", endpoint_url=None, region=None)
    # Every test starts without a stored CRM section or secret.
    boto3.client("dynamodb").delete_item(TableName=aws["SETTINGS_TABLE"], Key={"pk": {"S": "crm"}, "sk": {"S": "default"}})
    sm = boto3.client("secretsmanager")
    with contextlib.suppress(sm.exceptions.ResourceNotFoundException):
        sm.delete_secret(SecretId=f"{aws['SECRETS_PREFIX']}/crm", ForceDeleteWithoutRecovery=True)


def apply(resources: Resources, tmp_path: Path, section: dict[str, Any], **options: Any) -> tuple[int, list[str]]:
    path = tmp_path / f"crm-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump({"crm": section, "workstreams": [{"id": "ws", "fallback_queue": "q"}]}))
    return apply_file(path, resources, dry_run=options.get("dry_run", False), as_json=options.get("as_json", False))


def stored(aws: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    item = boto3.client("dynamodb").get_item(TableName=aws["SETTINGS_TABLE"], Key={"pk": {"S": "crm"}, "sk": {"S": "default"}})
    doc = json.loads(item["Item"]["doc"]["S"]) if "Item" in item else None
    sm = boto3.client("secretsmanager")
    try:
        secret = json.loads(sm.get_secret_value(SecretId=f"{aws['SECRETS_PREFIX']}/crm")["SecretString"])
    except sm.exceptions.ResourceNotFoundException:
        secret = None
    return doc, secret


@pytest.mark.parametrize("provider", registry.names())
def test_refused_credentials_keep_what_was_stored_and_turn_the_default_user_off(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path, provider: str
) -> None:
    good = fake_crm.config(provider, default_user={"enabled": True})
    code, lines = apply(resources, tmp_path, good)
    assert code == 0 and "created   crm default" in lines, lines
    before_doc, before_secret = stored(aws)
    assert before_doc is not None and before_doc["default_user"]["enabled"] is True

    code, lines = apply(resources, tmp_path, fake_crm.config(provider, default_user={"enabled": True}, secrets=WRONG[provider]))
    assert code == 3, lines
    (refused,) = [line for line in lines if line.startswith("refused")]
    assert refused.startswith("refused   crm default: ") and ("HTTP 40" in refused or "refused" in refused[10:]), refused
    assert "updated   crm default" in lines  # only the default user changed: off
    assert "unchanged workstream ws" in lines or "created   workstream ws" in lines  # the rest of the file applies
    text = "\n".join(lines)
    for value in WRONG[provider].values():
        for secret in [value] if isinstance(value, str) else value:
            assert secret not in text
    after_doc, after_secret = stored(aws)
    assert after_secret == before_secret
    assert {**after_doc, "default_user": None} == {**before_doc, "default_user": None}  # type: ignore[dict-item]
    assert after_doc is not None and after_doc["default_user"] == {"enabled": False, "always": False}

    code, lines = apply(resources, tmp_path, good)  # valid credentials again: the default user comes back
    assert code == 0 and "updated   crm default" in lines
    assert stored(aws)[0]["default_user"]["enabled"] is True  # type: ignore[index]


def test_refused_with_nothing_stored_stores_nothing(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path
) -> None:
    code, lines = apply(resources, tmp_path, fake_crm.config("kustomer", secrets=WRONG["kustomer"]))
    assert code == 3
    assert [line for line in lines if "crm" in line] == [
        "refused   crm default: kustomer GET /kustomer/v1/auth/tokens/current: HTTP 401: unauthorized: invalid token"
    ]
    assert stored(aws) == (None, None)


def test_unchanged_section_is_not_checked_again(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path
) -> None:
    section = fake_crm.config("dynamics")
    assert apply(resources, tmp_path, section)[0] == 0
    calls = len(fake_crm.log)
    code, lines = apply(resources, tmp_path, section)
    assert (code, "unchanged crm default" in lines) == (0, True)
    assert len(fake_crm.log) == calls


def test_dry_run_checks_and_writes_nothing(aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path) -> None:
    code, lines = apply(resources, tmp_path, fake_crm.config("zendesk", secrets=WRONG["zendesk"]), dry_run=True)
    assert code == 3 and any(line.startswith("would be refused   crm default") for line in lines), lines
    code, lines = apply(resources, tmp_path, fake_crm.config("zendesk"), dry_run=True)
    assert code == 0 and "would be created   crm default" in lines
    assert stored(aws) == (None, None)


def test_salesforce_failover_at_apply_is_reported(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path
) -> None:
    fake_crm.revoke_refresh_token(SF_REFRESH_TOKENS[0])
    code, lines = apply(resources, tmp_path, fake_crm.config("salesforce"), as_json=True)
    assert code == 0
    rows = json.loads(lines[0])
    (notice,) = [r for r in rows if r["status"] == "notice"]
    assert "refresh token #1 of 2 (invalid_grant" in notice["message"] and "failing over to #2" in notice["message"]
    assert {"kind": "crm", "id": "default", "status": "created"} in rows
    assert SF_REFRESH_TOKENS[0] not in lines[0]


def test_zendesk_without_an_email_is_refused(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path
) -> None:
    """The adapter cannot work without the agent's email: refused (by the schema, or at the check), nothing stored."""
    section = fake_crm.config("zendesk")
    del section["email"]
    code, lines = apply(resources, tmp_path, section)
    assert code in (2, 3), lines
    assert any("email" in line for line in lines if "crm" in line), lines
    assert not any(line.startswith(("created", "updated")) and "crm" in line for line in lines), lines
    assert stored(aws) == (None, None)


# -- the adapter cache crm_writer builds from the stored section and secret ------------------------


class Secrets:
    def __init__(self, value: dict[str, Any] | None) -> None:
        self.value = value
        self.reads = 0

    def get(self, name: str) -> dict[str, Any]:
        self.reads += 1
        if self.value is None:
            raise SecretMissing(name)
        return self.value


def test_adapter_cache_rebuilds_when_settings_or_secret_change(fake_crm: FakeCrm) -> None:
    section = fake_crm.config("salesforce")
    secrets = Secrets(section.pop("secrets"))
    cache = AdapterCache(secrets, "switchboard/x/crm")
    settings = crm_from_dict(section)
    first = cache.adapter_for(settings)
    assert isinstance(first, SalesforceAdapter)
    assert cache.adapter_for(crm_from_dict(dict(section))) is first  # equal settings: the same adapter, its token kept
    assert cache.adapter_for(crm_from_dict({**section, "api_version": "60.0"})) is not first
    assert secrets.value is not None
    secrets.value = {**secrets.value, "client_secret": "rotated"}
    rebuilt = cache.adapter_for(crm_from_dict({**section, "api_version": "60.0"}))
    assert cache.builds == 3 and rebuilt is not first


def test_adapter_cache_names_a_missing_secret_without_values() -> None:
    cache = AdapterCache(Secrets(None), "switchboard/x/crm")
    with pytest.raises(CrmConfigError, match=r"crm \(kustomer\) secret switchboard/x/crm could not be read"):
        cache.adapter_for(CrmSettings("kustomer", {"base_url": "https://acme.api.kustomerapp.com"}))


def test_fingerprint_never_holds_a_secret_in_clear() -> None:
    digest = fingerprint(CrmSettings("kustomer"), {"api_key": "very-secret-key"})
    assert "very-secret-key" not in digest and len(digest) == 64


def test_salesforce_external_id_fields_come_from_the_configuration_names(fake_crm: FakeCrm) -> None:
    section = fake_crm.config(
        "salesforce", contact_external_id_field="Line_Identity__c", case_external_id_field="Omni_Conversation_Id__c"
    )
    secrets = section.pop("secrets")
    adapter = build_adapter(crm_from_dict(section), secrets)
    assert isinstance(adapter, SalesforceAdapter)
    assert (adapter.contact_id_field, adapter.case_id_field) == ("Line_Identity__c", "Omni_Conversation_Id__c")
