"""Fixtures for the web chat session tests (interface section 7)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._chat_stack import ChatStack, Clock, build


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stack(aws: None, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatStack]:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    yield build(clock, monkeypatch)
