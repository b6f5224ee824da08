"""A process that dies at one AWS call: the crash points the exactly-once proofs walk through.

:func:`crash_at` makes the core's shared boto3 session raise :class:`Crash` either just *before*
the n-th AWS operation is sent (so it never happens) or just *after* its answer came back (so it
happened, but the code never learns so). Between them, every call boundary of a stage is a place
where a Lambda environment can die; the tests run a stage once with each, then deliver the same
envelope again, and check what the two attempts together left.

``Crash`` is a ``BaseException``, as a dead runtime is: nothing in the stage may catch it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from switchboard.aws import clients

When = Literal["before", "after"]


class Crash(BaseException):
    """The execution environment died here."""


@dataclass
class Calls:
    """What was called, in order, and where the crash (if any) landed."""

    made: list[str] = field(default_factory=list)
    crashed_at: str | None = None


@contextlib.contextmanager
def crash_at(n: int | None, when: When = "after") -> Iterator[Calls]:
    """Crash at the n-th AWS operation (1-based) made inside the block; ``None`` only records the calls."""
    calls = Calls()

    def before(model: Any = None, **_: Any) -> None:
        if model is None:
            return
        calls.made.append(model.name)
        if when == "before" and len(calls.made) == n:
            calls.crashed_at = f"before {model.name}"
            raise Crash(calls.crashed_at)

    def after(model: Any = None, **_: Any) -> None:
        if model is not None and when == "after" and len(calls.made) == n:
            calls.crashed_at = f"after {model.name}"
            raise Crash(calls.crashed_at)

    events = clients._session().events
    events.register("before-call", before, unique_id="crash-before")
    events.register("after-call", after, unique_id="crash-after")
    clients.client.cache_clear()  # a client copies the session's hooks when it is made
    try:
        yield calls
    finally:
        events.unregister("before-call", unique_id="crash-before")
        events.unregister("after-call", unique_id="crash-after")
        clients.client.cache_clear()
