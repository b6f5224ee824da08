"""The chat function's dependencies, built from the environment the template (or the local stack) sets.

Apart from :mod:`switchboard.aws.wiring` on purpose: that module loads every store the other functions
use (secrets among them), and the chat function reads no secret. Keeping its imports to what it calls
keeps its cold start short and its IAM policy (derived from reachable code, tests/unit/test_iam.py) exact.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from switchboard.aws.clients import client, env

if TYPE_CHECKING:
    from switchboard.chat_session import SessionDeps


def session_deps() -> SessionDeps:
    """The settings, the sessions and transcripts (in the conversations table), the inbound queue, and the
    widget's script as packaged beside the core (read once per container, on first use)."""
    from switchboard.aws.chat_store import DynamoChatSessions
    from switchboard.aws.publisher import SqsPublisher, by_conversation_key
    from switchboard.aws.settings_store import DynamoSettings
    from switchboard.chat_session import SessionDeps
    from switchboard.chat_widget_file import widget_script

    deps = SessionDeps(
        settings=DynamoSettings(env("SETTINGS_TABLE")),
        sessions=DynamoChatSessions(env("CONVERSATIONS_TABLE")),
        publisher=SqsPublisher(env("INBOUND_QUEUE_URL"), by_conversation_key),
        widget_script=widget_script,
    )
    if os.environ.get("SWITCHBOARD_LAZY_CLIENTS") != "1":  # created during init, off the request's path
        client("dynamodb")
        client("sqs")
    return deps
