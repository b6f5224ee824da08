"""Channel adapters: one module per messaging platform, each implementing :class:`ChannelAdapter`.

Adapters are found by name here, imported only when asked for, so an edge function loads exactly
one platform's code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switchboard.channels.base import ChannelAdapter

ADAPTERS: dict[str, str] = {
    "line": "switchboard.channels.line:LineAdapter",
    "facebook": "switchboard.channels.facebook:FacebookAdapter",
    "gbm": "switchboard.channels.gbm:GbmAdapter",
}


def adapter(channel: str) -> ChannelAdapter:
    module_name, _, class_name = ADAPTERS[channel].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    instance: ChannelAdapter = cls()
    return instance
