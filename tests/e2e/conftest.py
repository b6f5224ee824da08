"""One local stack for the whole e2e session (see _stack.py)."""

from __future__ import annotations

import pytest

from ._hygiene import record_requests, track_fakes
from ._stack import stack


@pytest.fixture(scope="session", autouse=True)
def secrets_hygiene() -> None:
    """Before any fake or stack starts: what the secrets check (run as each stack stops) needs to know."""
    record_requests()  # error bodies and bearer tokens of every request to a stack
    track_fakes()  # the tokens and client secrets the fake IdP and CRM hand out


__all__ = ["stack"]
