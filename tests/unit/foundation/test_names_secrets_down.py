"""A name look-up while Secrets Manager is not answering leaves the name empty; the message goes on.

Secrets Manager failing used to reach the name look-up as a KeyError, which it logs and gets past.
It is now StoreUnavailable (so the edge can answer 503 rather than refuse), and the look-up must
still treat it as a missing name, never fail the route stage's message over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fakes.ports import FakeSecrets

from switchboard.aws.conversation_store import DynamoConversations
from switchboard.errors import StoreUnavailable

from ._media import T0
from .test_names import line_text, lookup


class SecretsDown(FakeSecrets):
    def get(self, name: str) -> Mapping[str, Any]:
        self.reads.append(name)
        raise StoreUnavailable(f"secret {name} could not be read: ThrottlingException")


def test_secrets_manager_down_costs_the_name_not_the_message(conversations: DynamoConversations) -> None:
    store = SecretsDown()
    envelope = line_text()
    named = lookup(conversations, store).named(envelope, T0)
    assert store.reads  # the LINE profile request did need the channel access token
    assert named.customer.name is None
    assert named.id == envelope.id
