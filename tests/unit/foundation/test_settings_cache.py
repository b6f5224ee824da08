"""The settings store's per-process cache is bounded, and ids no configuration holds never reach DynamoDB.

Found by posting 3,000 requests with made-up account ids: every miss was cached for good, so a warm
container's memory grew with each one. Misses are still cached (for the TTL) but the cache keeps
at most ``CACHE_SIZE`` entries, least recently used out first.
"""

from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest

from infra.local.template import plan
from switchboard.aws import clients
from switchboard.aws.settings_store import CACHE_SIZE, DynamoSettings

from .conftest import ROOT

ACCOUNT = {"id": "line-tokyo", "channel": "line", "workstream": "social"}


@pytest.fixture
def table(aws: None) -> str:
    create = plan(ROOT / "template.yaml", stack="unit", endpoint="http://127.0.0.1:1", visibility_timeout=2).tables[
        "SettingsTable"
    ]["create"]
    boto3.client("dynamodb").create_table(**create)
    return str(create["TableName"])


@pytest.fixture
def get_items(aws: None) -> list[str]:
    """The sort keys of every GetItem the store sends."""
    calls: list[str] = []

    def record(params: dict[str, object], **_: object) -> None:
        key = params["Key"]
        assert isinstance(key, dict)
        calls.append(key["sk"]["S"])

    clients.client("dynamodb").meta.events.register("provide-client-params.dynamodb.GetItem", record)
    return calls


def test_the_cache_never_holds_more_than_its_size(table: str, get_items: list[str]) -> None:
    assert DynamoSettings(table).cache_size == CACHE_SIZE == 256
    store = DynamoSettings(table, ttl_seconds=60, cache_size=20)
    for n in range(60):
        assert store.account(f"unknown-{n}") is None
    assert len(store._cache) == 20
    assert len(get_items) == 60


def test_misses_are_still_cached_within_the_ttl(table: str, get_items: list[str]) -> None:
    store = DynamoSettings(table, ttl_seconds=60)
    for _ in range(5):
        assert store.account("nobody") is None
    assert get_items == ["nobody"]


def test_the_least_recently_used_entry_goes_first(table: str, get_items: list[str]) -> None:
    DynamoSettings(table, ttl_seconds=0).put("account", "line-tokyo", ACCOUNT)
    store = DynamoSettings(table, ttl_seconds=60, cache_size=3)
    store.account("line-tokyo")
    store.account("a1")
    store.account("a2")
    store.account("line-tokyo")  # used again: now the most recent
    store.account("a3")  # evicts a1, the least recently used
    get_items.clear()
    assert store.account("line-tokyo") is not None
    store.account("a2")
    store.account("a3")
    assert get_items == []
    store.account("a1")
    assert get_items == ["a1"]


def test_entries_expire_after_the_ttl(table: str, get_items: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("switchboard.aws.settings_store.time.monotonic", lambda: now[0])
    store = DynamoSettings(table, ttl_seconds=5)
    store.account("nobody")
    now[0] += 4.9
    store.account("nobody")
    assert get_items == ["nobody"]
    now[0] += 0.2
    store.account("nobody")
    assert get_items == ["nobody", "nobody"]


def test_put_drops_the_cached_entry(table: str) -> None:
    store = DynamoSettings(table, ttl_seconds=60)
    assert store.account("line-tokyo") is None
    store.put("account", "line-tokyo", ACCOUNT)
    account = store.account("line-tokyo")
    assert account is not None
    assert account.channel == "line"


@pytest.mark.parametrize("read", [DynamoSettings.account, DynamoSettings.widget, DynamoSettings.auth_setting])
@pytest.mark.parametrize("object_id", ["x" * 3000, "a" * 65, "", "-x", "a b", "tokyo\n", "ラ"])
def test_an_id_no_configuration_holds_is_none_without_a_read_or_a_cache_entry(
    table: str, get_items: list[str], read: Callable[[DynamoSettings, str], object], object_id: str
) -> None:
    store = DynamoSettings(table, ttl_seconds=60)
    assert read(store, object_id) is None
    assert get_items == []
    assert len(store._cache) == 0
