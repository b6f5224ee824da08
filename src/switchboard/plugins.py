"""Lazy loading of the plug-in tables (channels, CRMs): a name maps to ``"module:Class"``.

Both registries keep their table as strings so that a process imports only the one platform or CRM
it serves (an edge function's cold start loads LINE's code, not Facebook's and four CRMs'). The
look-up lives here once so that the two tables cannot drift in how they import or what they raise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def load_class(table: Mapping[str, str], name: str, unknown: Callable[[str], Exception]) -> Any:
    """The class ``table`` registers under ``name``, imported now; ``unknown(name)`` raised for a name it lacks.

    Typed ``Any``: each registry annotates the class with its own base, which an abstract class
    cannot be passed as (mypy's type-abstract).
    """
    try:
        target = table[name]
    except KeyError:
        raise unknown(name) from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
