"""One local stack for the whole e2e session (see _stack.py)."""

from __future__ import annotations

from ._stack import stack

__all__ = ["stack"]
