"""Channel adapters: one module per messaging platform, each implementing :class:`ChannelAdapter`.

This table is the one place a channel is registered: the configuration schema, ``switchboard send``,
the local gateway's routes and the tests read it, so adding a channel is its module plus one line
here. Adapters are imported only when asked for, so an edge function loads exactly one platform's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Final

from switchboard import plugins

if TYPE_CHECKING:
    from switchboard.channels.base import ChannelAdapter

ADAPTERS: dict[str, str] = {
    "line": "switchboard.channels.line:LineAdapter",
    "facebook": "switchboard.channels.facebook:FacebookAdapter",
    "gbm": "switchboard.channels.gbm:GbmAdapter",
    "whatsapp": "switchboard.channels.whatsapp:WhatsAppAdapter",
    "instagram": "switchboard.channels.instagram:InstagramAdapter",
}


class UnknownChannel(KeyError):
    """A channel name no module registers. A KeyError, so ``name in ADAPTERS`` checks and look-ups agree."""

    def __str__(self) -> str:
        return f"unknown channel {self.args[0]!r}; known: {', '.join(names())}"


@dataclass(frozen=True)
class ChannelInfo:
    """What code outside a channel (CRM adapters above all) may know of it, without naming it."""

    label: str  # how people and CRMs name it: "LINE", "Facebook Messenger"
    medium: str  # the generic medium a CRM maps from: "chat", "facebook", ...


def names() -> list[str]:
    """Every registered channel, in registration order."""
    return list(ADAPTERS)


@cache
def adapter_class(channel: str) -> type[ChannelAdapter]:
    """The adapter class registered under ``channel``, imported on first use."""
    cls: type[ChannelAdapter] = plugins.load_class(ADAPTERS, channel, UnknownChannel)
    return cls


def adapter(channel: str) -> ChannelAdapter:
    """A fresh adapter for ``channel`` (adapters are stateless and cheap to construct)."""
    return adapter_class(channel)()


# Web chat is served by the chat functions (switchboard.chat_start), not by a webhook adapter, so its
# declaration stands here until it is a channel module of its own.
WEB_CHAT: Final = "chat"
_SERVED_ELSEWHERE: Final = {WEB_CHAT: ChannelInfo(label="web chat", medium="chat")}


def info(channel: str) -> ChannelInfo:
    """The channel's label and medium, as its module declares them."""
    if channel in _SERVED_ELSEWHERE:
        return _SERVED_ELSEWHERE[channel]
    cls = adapter_class(channel)
    return ChannelInfo(label=cls.label, medium=cls.medium)
