"""moto-backed fixtures for the foundation tests: the conversations table exactly as template.yaml declares it."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from infra.local.template import plan
from switchboard.aws.conversation_store import DynamoConversations

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def conversations(aws: None) -> DynamoConversations:
    tables = plan(ROOT / "template.yaml", stack="unit", endpoint="http://127.0.0.1:1", visibility_timeout=2).tables
    create = tables["ConversationsTable"]["create"]
    boto3.client("dynamodb").create_table(**create)
    return DynamoConversations(create["TableName"])
