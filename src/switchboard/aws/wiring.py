"""Builds each stage's dependencies from the environment the template (or the local stack) sets.

Handlers call these once at init, so clients are created during the Lambda init phase and reused.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from switchboard.aws.clients import client, env
from switchboard.aws.conversation_store import DynamoConversations, DynamoFailureLog, DynamoProfiles
from switchboard.aws.publisher import SqsPublisher, by_conversation_id, by_conversation_key
from switchboard.aws.secret_store import PowertoolsSecrets
from switchboard.aws.settings_store import DynamoSettings

if TYPE_CHECKING:
    from switchboard.edge import EdgeDeps


def edge_deps() -> EdgeDeps:
    from switchboard.edge import EdgeDeps  # the stages never import the edge

    deps = EdgeDeps(
        settings=DynamoSettings(env("SETTINGS_TABLE")),
        secrets=PowertoolsSecrets(),
        publisher=SqsPublisher(env("INBOUND_QUEUE_URL"), by_conversation_key),
        secrets_prefix=env("SECRETS_PREFIX"),
    )
    warm_clients("dynamodb", "sqs", "secretsmanager")
    return deps


def warm_clients(*services: str) -> None:
    """Create clients during init (billed or not, it is off the request's path)."""
    if os.environ.get("SWITCHBOARD_LAZY_CLIENTS") != "1":
        for service in services:
            client(service)


def conversations() -> DynamoConversations:
    return DynamoConversations(env("CONVERSATIONS_TABLE"))


def profiles() -> DynamoProfiles:
    return DynamoProfiles(env("CONVERSATIONS_TABLE"))


def failure_log() -> DynamoFailureLog:
    return DynamoFailureLog(env("CONVERSATIONS_TABLE"))


def settings() -> DynamoSettings:
    return DynamoSettings(env("SETTINGS_TABLE"))


def crm_publisher() -> SqsPublisher:
    return SqsPublisher(env("CRM_QUEUE_URL"), by_conversation_id)
