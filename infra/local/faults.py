"""Local-only fault hooks for the load and fault run (``make load``); no deployed code reads them.

``SWITCHBOARD_LOCAL_CRASH`` (read here, by the local runtime only) makes stage invocations die
part-way through their batch, the way a Lambda environment dies (out of memory, a segfault, the
runtime exiting): ``RouteFunction:3,CrmWriterFunction:3`` crashes three invocations of each. A
crash lands in an invocation whose batch holds at least two records, just after the second record
was processed (its writes made, its forward sent) and before the runtime could report the batch.
So it leaves behind what a real crash leaves at the worst moment for exactly once: two records
whose work is done but which SQS still holds, and a batch the event source mapping gets back whole
(``infra/local/workers.py``), so every record of it is delivered again. It never lands inside a CRM
call, so it cannot split an append from its mark-written.

The crash is a ``BaseException``: Powertools' batch processor catches ``Exception`` per record, and
must not be able to turn a dead environment into a tidy per-record failure.
:func:`invocation` turns it back into an ordinary error at the runtime boundary, as Lambda reports
``Runtime.ExitError`` to the event source mapping.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ENV = "SWITCHBOARD_LOCAL_CRASH"
EVERY = 4  # crash every fourth eligible invocation, so crashes spread over the run instead of its first seconds


class LambdaCrash(BaseException):
    """The execution environment died; nothing in the handler may catch this."""


class RuntimeExit(RuntimeError):
    """What the event source mapping sees of a crashed invocation (Lambda's ``Runtime.ExitError``)."""


@dataclass
class _Plan:
    remaining: dict[str, int]
    eligible: dict[str, int] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)  # "<function> <message id>" of each record done when a crash hit
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Current:
    function: str
    message_ids: list[str]
    armed: bool
    records: int = 0


_installed: list[_Plan] = []  # at most one: the plan read from the environment
_local = threading.local()


def _plan() -> _Plan | None:
    return _installed[0] if _installed else None


def parse(spec: str) -> dict[str, int]:
    """``Function:count,...`` -> {function logical id: crashes}."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        out[name.strip()] = int(count or 1)
    return out


def install() -> None:
    """Read the environment once; with nothing asked for, leave the stage runner untouched."""
    spec = os.environ.get(ENV, "")
    if not spec or _installed:
        return
    plan = _Plan(remaining=parse(spec))
    _installed.append(plan)
    from switchboard.aws.sqs_stage import SqsStage

    original = SqsStage._apply

    def apply(self: Any, *args: Any, **kwargs: Any) -> Any:
        outcome = original(self, *args, **kwargs)
        current: _Current | None = getattr(_local, "current", None)
        if current is None or not current.armed:
            return outcome
        current.records += 1
        if current.records == 2:
            with plan.lock:
                plan.crashes.append(f"{current.function} {current.message_ids[1]}")
            raise LambdaCrash(f"injected crash in {current.function} after its batch's second record")
        return outcome

    SqsStage._apply = apply  # type: ignore[method-assign]


def crashes() -> list[str]:
    """Each injected crash: the function and the message id it had just processed."""
    plan = _plan()
    if plan is None:
        return []
    with plan.lock:
        return list(plan.crashes)


@contextlib.contextmanager
def invocation(function: str, event: Any) -> Iterator[None]:
    """Arm a crash for this invocation if the plan asks for one; report a crash as the runtime would."""
    plan = _plan()
    if plan is None:
        yield
        return
    records = event.get("Records") if isinstance(event, dict) else None
    armed = False
    ids: list[str] = []
    if isinstance(records, list) and len(records) >= 2:
        ids = [str(r.get("messageId")) for r in records]
        with plan.lock:
            if plan.remaining.get(function, 0) > 0:
                seen = plan.eligible[function] = plan.eligible.get(function, 0) + 1
                if seen % EVERY == 0:
                    plan.remaining[function] -= 1
                    armed = True
    _local.current = _Current(function, ids, armed)
    try:
        yield
    except LambdaCrash as crash:
        raise RuntimeExit(f"Runtime.ExitError: {crash}") from None
    finally:
        _local.current = None
