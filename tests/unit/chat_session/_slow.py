"""A handler that can hold a request, for the local runtime's environment count (test_chat_function_handler)."""

from __future__ import annotations

import threading
from typing import Any

HOLD = threading.Event()


def handler(event: dict[str, Any], context: Any) -> str:
    if event.get("hold"):
        event["started"].set()
        HOLD.wait(5)
        return "held"
    return "quick"
