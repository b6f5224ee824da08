"""moto-backed fixtures for the foundation tests: the conversations table exactly as template.yaml declares it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra.local.template import plan
from switchboard.aws import clients
from switchboard.aws.conversation_store import DynamoConversations

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A private moto account; the core's cached boto3 clients are rebuilt inside it."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients.client.cache_clear()
    with mock_aws():
        yield
    clients.client.cache_clear()


@pytest.fixture
def conversations(aws: None) -> DynamoConversations:
    tables = plan(ROOT / "template.yaml", stack="unit", endpoint="http://127.0.0.1:1", visibility_timeout=2).tables
    create = tables["ConversationsTable"]["create"]
    boto3.client("dynamodb").create_table(**create)
    return DynamoConversations(create["TableName"])
