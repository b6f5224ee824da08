"""Code outside a channel names it only through its declaration (``channels.info``): the sign-in page's words.

The page a customer sees after signing in says which conversation they signed in to. The channel's
name there is the label the channel declares, so a new channel is named correctly without a change
to the chat code, and the chat code names no platform.
"""

from __future__ import annotations

import pytest

from switchboard import channels
from switchboard.chat_start import _signed_in_text
from switchboard.conversations import Conversation
from switchboard.envelope import Customer


def conversation(channel: str) -> Conversation:
    return Conversation(
        conversation_id="c-1",
        channel=channel,
        account_id="a-1",
        customer=Customer(id="u-1"),
        workstream="w",
        queue="q",
        priority=10,
        created_at=1_700_000_000_000,
        updated_at=1_700_000_000_000,
        last_message_at=1_700_000_000_000,
        close_after_minutes=1440,
    )


@pytest.mark.parametrize("name", channels.names())
def test_the_sign_in_page_names_a_platform_by_its_declared_label(name: str) -> None:
    assert _signed_in_text(conversation(name)).startswith(f"You are signed in to your {channels.info(name).label} conversation")


@pytest.mark.parametrize(("channel", "shown"), [("chat", "web chat"), ("retired-channel", "retired-channel")])
def test_web_chat_and_an_unregistered_channel(channel: str, shown: str) -> None:
    assert _signed_in_text(conversation(channel)).startswith(f"You are signed in to your {shown} conversation")
