"""The `switchboard` command's tests: a private moto account holding template.yaml's tables, queues and bucket."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from infra.admin import cli
from infra.admin.resources import Resources
from infra.local.template import create_resources, plan

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def resources(aws: None, monkeypatch: pytest.MonkeyPatch) -> Resources:
    """The stack's resources, created empty; every command of ``cli.main`` targets them."""
    p = plan(ROOT / "template.yaml", stack="unit", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=30)
    create_resources(p)
    target = Resources.from_outputs(p.outputs, api_url="", endpoint_url=None, region=None)
    monkeypatch.setattr(cli, "_target", lambda args: target)
    return target


def stored_everything(resources: Resources) -> tuple[list[dict[str, object]], list[str]]:
    """Every settings item and every secret's name: what `apply` would have written."""
    items = boto3.client("dynamodb").scan(TableName=resources.settings_table)["Items"]
    names = [s["Name"] for s in boto3.client("secretsmanager").list_secrets()["SecretList"]]
    return items, names
