"""JSON from outside, parsed without letting its shape crash or exhaust a handler.

``json.loads`` raises :class:`RecursionError` (not a :class:`ValueError`) on a body nested past the
interpreter's recursion limit, and that escapes every ``except ValueError`` into API Gateway's 502
before any signature was checked. Bodies nested less deeply than that still break later: DynamoDB
refuses documents nested past 32 levels, so a signed body that parses today would be dead-lettered
tomorrow. So every document that comes from a platform, a portal, a token or an identity provider
goes through :func:`loads`, which answers one :class:`ValueError` subclass for all of it.

The depth is checked after the C parser has run (it is fast and bounded by the body's size, already
capped by the caller); the walk is iterative, so it cannot itself recurse too deep.
"""

from __future__ import annotations

import json
from typing import Any, Final

# DynamoDB's own limit on nested attributes is 32; what we store sits at most a few levels below the
# payload's root, so a payload deeper than this can never be stored whole anyway.
MAX_DEPTH: Final = 24


class JsonError(ValueError):
    """Not JSON, or JSON nested deeper than :data:`MAX_DEPTH`. The message names no content."""


def loads(raw: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """The parsed document, or :class:`JsonError` for anything malformed or too deeply nested."""
    try:
        doc = json.loads(raw, **kwargs)
    except RecursionError:
        raise JsonError(f"JSON is nested deeper than {max_depth} levels") from None
    except (ValueError, TypeError):  # JSONDecodeError, UnicodeDecodeError, a constant refused by a hook
        raise JsonError("not valid JSON") from None
    if depth_exceeds(doc, max_depth):
        raise JsonError(f"JSON is nested deeper than {max_depth} levels")
    return doc


def depth_exceeds(doc: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether ``doc`` has a container nested more than ``max_depth`` levels deep (the root is level 1)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
