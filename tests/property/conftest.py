"""Prints how many forgery cases each target tried (what `make fuzz` reports), and holds the fuzz run to its goal."""

from __future__ import annotations

import pytest

from ._support import FUZZ, FUZZ_GOAL, SECONDS, TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if not TALLY:  # an xdist controller runs no cases itself
        return
    total = sum(TALLY.values())
    terminalreporter.section("forgery cases tried")
    for target in sorted(TALLY):
        seconds = SECONDS[target]
        terminalreporter.write_line(f"{target:<9} {TALLY[target]:>7} cases  {seconds:6.1f} s in the properties' bodies")
    goal = f"  (fuzz goal >= {FUZZ_GOAL})" if FUZZ else ""
    terminalreporter.write_line(f"{'total':<9} {total:>7} cases{goal}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A fuzz run that quietly tried fewer cases than promised (a strategy that ran dry) is a failed run.
    whole_run = not session.config.getoption("keyword") and not session.config.getoption("markexpr")
    if FUZZ and whole_run and TALLY and sum(TALLY.values()) < FUZZ_GOAL and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
