"""Builds each stage's dependencies from the environment the template (or the local stack) sets.

Handlers call these once at init, so clients are created during the Lambda init phase and reused.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from switchboard.aws.clients import client, env
from switchboard.aws.conversation_store import DynamoConversations, DynamoFailureLog, DynamoProfiles, DynamoUsedLinks
from switchboard.aws.publisher import SqsPublisher, by_conversation_id, by_conversation_key
from switchboard.aws.secret_store import PowertoolsSecrets
from switchboard.aws.settings_store import DynamoSettings

if TYPE_CHECKING:
    from switchboard.attachments import AttachmentKeeper
    from switchboard.chat_start import ChatDeps
    from switchboard.crm_events import CrmEventDeps
    from switchboard.edge import EdgeDeps
    from switchboard.names import NameLookup
    from switchboard.sender_stage import SenderDeps


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


def chat_deps() -> ChatDeps:
    """token_validate: the edge's ports plus read access to conversations, the sign-in link ledger (in the
    conversations table) and one key cache per container."""
    from switchboard.aws.chat_store import DynamoChatSessions
    from switchboard.chat_auth import KeyStore
    from switchboard.chat_start import ChatDeps
    from switchboard.outbound_http import local_stack

    allow_http = local_stack()  # SWITCHBOARD_ALLOW_HTTP: only the local stack sets it; deployed, https to public addresses only
    deps = ChatDeps(
        settings=DynamoSettings(env("SETTINGS_TABLE")),
        secrets=PowertoolsSecrets(),
        publisher=SqsPublisher(env("INBOUND_QUEUE_URL"), by_conversation_key),
        conversations=DynamoConversations(env("CONVERSATIONS_TABLE")),
        links=DynamoUsedLinks(env("CONVERSATIONS_TABLE")),
        # An unknown kid refetches the key URL at most once a minute; the local stack shortens it for its tests.
        keys=KeyStore(allow_http=allow_http, refetch_interval=float(os.environ.get("SWITCHBOARD_KEY_REFETCH_SECONDS", "60"))),
        secrets_prefix=env("SECRETS_PREFIX"),
        allow_http=allow_http,
        sessions=DynamoChatSessions(env("CONVERSATIONS_TABLE")),  # writes s#<conversation id> items only
    )
    warm_clients("dynamodb", "sqs", "secretsmanager")
    return deps


def crm_event_deps() -> CrmEventDeps:
    """crm_events: the CRM settings, the events secret alone, the ticket index and the outbound queue."""
    from switchboard.crm_events import CrmEventDeps

    deps = CrmEventDeps(
        settings=DynamoSettings(env("SETTINGS_TABLE")),
        secrets=PowertoolsSecrets(),
        secrets_prefix=env("SECRETS_PREFIX"),
        tickets=DynamoConversations(env("CONVERSATIONS_TABLE")),
        publisher=SqsPublisher(env("OUTBOUND_QUEUE_URL"), by_conversation_id),
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


def outbound_publisher() -> SqsPublisher:
    return SqsPublisher(env("OUTBOUND_QUEUE_URL"), by_conversation_id)


def route_fetching(reader: DynamoSettings, conversations: DynamoConversations) -> tuple[NameLookup, AttachmentKeeper]:
    """What route fetches from the platforms: customer names (cached on the customer item) and attachment bytes
    (into the attachments bucket). One secrets cache and one HTTP session serve both.

    The names read and write the profile through route's own conversation store, which answers from the
    customer item route has just read and writes a looked-up name with that item's next write.
    """
    from switchboard.attachments import AttachmentKeeper
    from switchboard.aws.blob_store import S3BlobStore
    from switchboard.http_fetch import RequestsFetcher
    from switchboard.names import NameLookup
    from switchboard.outbound_http import policy_from_env

    # The same switch as chat_deps: http and loopback for the local stack's platform fakes only.
    secrets, fetcher, prefix = PowertoolsSecrets(), RequestsFetcher(policy=policy_from_env()), env("SECRETS_PREFIX")
    names = NameLookup(settings=reader, secrets=secrets, secrets_prefix=prefix, fetcher=fetcher, profiles=conversations)
    keeper = AttachmentKeeper(
        settings=reader,
        secrets=secrets,
        secrets_prefix=prefix,
        fetcher=fetcher,
        blobs=S3BlobStore(env("ATTACHMENTS_BUCKET")),
    )
    return names, keeper


def sender_deps() -> SenderDeps:
    """sender: the conversations (replies and their delivery), the accounts and their secrets, one outbound HTTP
    client whose address policy is the same switch as the attachment fetcher's (loopback only locally), the CRM
    (read its agents' replies, write a note when one fails; one adapter kept while its settings and secret stay
    the same) and the attachments bucket (agents' files, offered by presigned URL)."""
    from switchboard.aws.blob_store import S3BlobStore
    from switchboard.crm.factory import AdapterCache
    from switchboard.http_fetch import RequestsFetcher
    from switchboard.outbound_http import Client, policy_from_env
    from switchboard.secret_names import secret_name
    from switchboard.sender_stage import SenderDeps

    prefix = env("SECRETS_PREFIX")
    policy = policy_from_env()
    deps = SenderDeps(
        settings=DynamoSettings(env("SETTINGS_TABLE")),
        secrets=PowertoolsSecrets(),
        secrets_prefix=prefix,
        conversations=DynamoConversations(env("CONVERSATIONS_TABLE")),
        http=Client(policy),
        crm_adapter_for=AdapterCache(
            PowertoolsSecrets(max_age=int(os.environ.get("SWITCHBOARD_SECRETS_MAX_AGE", "60"))),
            secret_name(prefix, "crm", "default"),
        ).adapter_for,
        profiles=DynamoProfiles(env("CONVERSATIONS_TABLE")),
        fetcher=RequestsFetcher(policy=policy),
        blobs=S3BlobStore(env("ATTACHMENTS_BUCKET")),
    )
    warm_clients("dynamodb", "sqs", "secretsmanager")
    return deps
