"""Fixtures for the chat auth tests; the helpers themselves live in ``_support``."""

from __future__ import annotations

import sys

import pytest

from switchboard.chat_auth import KeyStore

from ._support import Clock, FakeGetter, KeyPair, new_pair


@pytest.fixture(scope="session")
def pair_a() -> KeyPair:
    return new_pair()


@pytest.fixture(scope="session")
def pair_b() -> KeyPair:
    return new_pair()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def getter() -> FakeGetter:
    return FakeGetter()


@pytest.fixture
def store(getter: FakeGetter, clock: Clock) -> KeyStore:
    return KeyStore(getter=getter, clock=clock)


class _CurrentStdout:
    """Whatever ``sys.stdout`` is when a line is written (pytest swaps it between set-up and the test)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> pytest.CaptureFixture[str]:
    """Powertools' JSON log lines, captured: its handler keeps the stream it was created with."""
    from switchboard.observability import logger

    monkeypatch.setattr(logger.registered_handler, "stream", _CurrentStdout())
    return capsys
