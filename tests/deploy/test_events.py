"""events/ holds one sample per function, each current with the formats and tests/deploy/config.yaml's secrets
(tests/deploy/test_stack.py drives each through its built function)."""

from __future__ import annotations

from . import _events
from ._rehearsal import ROOT


def test_events_are_current() -> None:
    assert _events.main(["--check"]) == 0, "run .venv/bin/python tests/deploy/_events.py"


def test_every_function_has_a_sample_event() -> None:
    functions = {p.parent.name for p in (ROOT / "functions").glob("*/app.py")}
    samples = {p.stem for p in (ROOT / "events").glob("*.json")}
    assert functions <= samples, functions - samples
