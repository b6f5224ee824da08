"""The widget's JavaScript as packaged with the core (``switchboard/web_chat/widget.js``, in the layer).

Read on first use and kept for the container's life: the file only changes with a deploy, which
starts new containers. Served as it is; the widget reads its settings from ``GET /chat/{id}/config``
(:mod:`switchboard.chat_session`), so nothing is injected into the script.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

WIDGET_SCRIPT: Final = Path(__file__).resolve().parent / "web_chat" / "widget.js"


@cache
def widget_script() -> str | None:
    """The script's text, or None when the package was built without it."""
    try:
        return WIDGET_SCRIPT.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
