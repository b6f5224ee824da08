"""`switchboard apply` and the CRM's events (interface section 6): the events URL printed, Zendesk's webhook
and trigger made once with the signing secret kept where the events function reads it, nothing made when the
file gives ``secrets.events_secret``, and a clear warning when a CRM's events would be refused."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from fakes.crm import EVENTS_SECRETS, FakeCrm

from infra.admin.apply import apply_file
from infra.admin.resources import Resources

API = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod"


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
    yield Resources.from_outputs(outputs, api_url=API, endpoint_url=None, region=None)
    boto3.client("dynamodb").delete_item(TableName=aws["SETTINGS_TABLE"], Key={"pk": {"S": "crm"}, "sk": {"S": "default"}})
    sm = boto3.client("secretsmanager")
    for suffix in ("crm", "crm-events"):
        with contextlib.suppress(sm.exceptions.ResourceNotFoundException):
            sm.delete_secret(SecretId=f"{aws['SECRETS_PREFIX']}/{suffix}", ForceDeleteWithoutRecovery=True)


def apply(resources: Resources, tmp_path: Path, section: dict[str, Any], **options: Any) -> tuple[int, list[str]]:
    path = tmp_path / f"crm-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump({"crm": section, "workstreams": [{"id": "ws", "fallback_queue": "q"}]}))
    return apply_file(path, resources, dry_run=options.get("dry_run", False))


def events_secret(aws: dict[str, str]) -> dict[str, Any] | None:
    sm = boto3.client("secretsmanager")
    try:
        value: dict[str, Any] = json.loads(sm.get_secret_value(SecretId=f"{aws['SECRETS_PREFIX']}/crm-events")["SecretString"])
    except sm.exceptions.ResourceNotFoundException:
        return None
    return value


def test_zendesk_gets_its_webhook_and_trigger_and_the_signing_secret_is_kept(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path
) -> None:
    code, lines = apply(resources, tmp_path, fake_crm.config("zendesk"))
    assert code == 0, lines
    assert f"events    crm default: the CRM's events go to {API}/crm/zendesk/events" in lines
    (hook,), (trigger,) = fake_crm.zendesk_hooks()
    assert hook["endpoint"] == f"{API}/crm/zendesk/events" and trigger["actions"][0]["value"][0] == hook["id"]
    stored = events_secret(aws)
    assert stored is not None and stored["events_secret"] == fake_crm.zendesk_signing_secret(hook["id"])
    assert not any(stored["events_secret"] in line for line in lines)  # never printed
    assert not any(line.startswith("warning") for line in lines)

    calls = len(fake_crm.log)
    code, lines = apply(resources, tmp_path, fake_crm.config("zendesk"))  # the same file again
    assert code == 0 and "unchanged crm default" in lines
    assert len(fake_crm.log) == calls  # no call at all: nothing to check, nothing to set up
    assert f"events    crm default: the CRM's events go to {API}/crm/zendesk/events" in lines
    assert events_secret(aws) == stored


def test_zendesk_with_events_secret_in_the_file_makes_nothing(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path
) -> None:
    secret = "hand-made-webhook-signing-secret"
    code, lines = apply(resources, tmp_path, fake_crm.config("zendesk", secrets={"events_secret": secret}))
    assert code == 0, lines
    assert fake_crm.zendesk_hooks() == ([], [])
    assert [c for c in fake_crm.calls(provider="zendesk") if "webhooks" in c.path or "triggers" in c.path] == []
    assert events_secret(aws) == {"events_secret": secret, "provider": "zendesk"}


@pytest.mark.parametrize("provider", ["salesforce", "dynamics", "kustomer"])
def test_a_crm_without_zero_click_set_up_stores_the_files_secret_and_prints_the_url(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path, provider: str
) -> None:
    code, lines = apply(resources, tmp_path, fake_crm.config(provider, secrets={"events_secret": EVENTS_SECRETS[provider]}))
    assert code == 0, lines
    assert f"events    crm default: the CRM's events go to {API}/crm/{provider}/events" in lines
    assert events_secret(aws) == {"events_secret": EVENTS_SECRETS[provider], "provider": provider}
    assert not any(line.startswith("warning") for line in lines)


@pytest.mark.parametrize("provider", ["salesforce", "dynamics", "kustomer"])
def test_without_events_secret_apply_warns_unless_replies_are_off(
    aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path, provider: str
) -> None:
    code, lines = apply(resources, tmp_path, fake_crm.config(provider))
    assert code == 0, lines
    (warning,) = [line for line in lines if line.startswith("warning")]
    assert "secrets.events_secret is not set" in warning and "replies will not reach customers" in warning
    assert events_secret(aws) is None

    code, lines = apply(resources, tmp_path, fake_crm.config(provider, replies=False))
    assert code == 0 and not any(line.startswith("warning") for line in lines), lines


def test_a_dry_run_sets_nothing_up(aws: dict[str, str], resources: Resources, fake_crm: FakeCrm, tmp_path: Path) -> None:
    code, lines = apply(resources, tmp_path, fake_crm.config("zendesk"), dry_run=True)
    assert code == 0, lines
    assert fake_crm.zendesk_hooks() == ([], []) and events_secret(aws) is None
