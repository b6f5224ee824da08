"""Puts tests/ on the import path once, for every suite: `fakes.*` (ports, platform, CRM, IdP) is
importable from any test module whatever the collection order."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A private moto account for one test; the core's cached boto3 clients are rebuilt inside it."""
    from moto import mock_aws

    from switchboard.aws import clients

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients.client.cache_clear()
    with mock_aws():
        yield
    clients.client.cache_clear()
