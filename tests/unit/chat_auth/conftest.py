"""Fixtures for the chat auth tests; the helpers themselves live in ``_support``."""

from __future__ import annotations

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
