"""Settings in DynamoDB: one item per object, keyed (kind, id), the validated object as a JSON document.

Reads are cached for a few seconds per process: the edge reads the account on every request and
a warm Lambda should not pay a DynamoDB round trip each time, while a change made by
``switchboard apply`` still takes effect within seconds.

The cache holds misses too (an unknown id asked for again within the TTL costs nothing), so it is
bounded: least recently used entries go first past :data:`CACHE_SIZE`, and an id that no
configuration could contain (:func:`switchboard.settings.is_valid_id`) is answered None without a
look-up or a cache entry. Otherwise every distinct id a caller made up would stay in memory for the
container's life, and one over DynamoDB's key size would fail the read as if the table were down.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, TypeVar

from switchboard.aws.clients import client
from switchboard.errors import StoreUnavailable
from switchboard.settings import (
    NO_CRM,
    Account,
    AuthSetting,
    CrmSettings,
    Widget,
    Workstream,
    account_from_dict,
    auth_setting_from_dict,
    crm_from_dict,
    is_valid_id,
    widget_from_dict,
    workstream_from_dict,
)

KINDS = ("account", "workstream", "widget", "auth_setting", "crm")
CRM_ID = "default"
T = TypeVar("T")
# A warm container serves a handful of accounts; 256 keeps every real one and caps what made-up ids can take.
CACHE_SIZE: Final = 256


class DynamoSettings:
    def __init__(self, table: str, *, ttl_seconds: float | None = None, cache_size: int = CACHE_SIZE) -> None:
        self.table = table
        self.ttl = float(os.environ.get("SWITCHBOARD_SETTINGS_TTL", "5")) if ttl_seconds is None else ttl_seconds
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], tuple[float, dict[str, Any] | None]] = OrderedDict()
        self._lock = threading.Lock()  # OrderedDict's reordering is not atomic; readers may share a store across threads
        self._listing: tuple[float, list[dict[str, Any]]] | None = None  # every account's document, for accounts_with

    def _doc(self, kind: str, object_id: str) -> dict[str, Any] | None:
        if not is_valid_id(object_id):
            return None  # no configuration holds it: nothing to look up, nothing to remember
        key = (kind, object_id)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                self._cache.move_to_end(key)
                return hit[1]
        try:
            item = client("dynamodb").get_item(TableName=self.table, Key={"pk": {"S": kind}, "sk": {"S": object_id}}).get("Item")
        except Exception as exc:  # botocore errors: the caller turns this into a 5xx / retry
            raise StoreUnavailable(f"settings table unavailable: {type(exc).__name__}") from exc
        doc = json.loads(item["doc"]["S"]) if item else None
        with self._lock:
            self._cache[key] = (now, doc)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return doc

    def _read(self, kind: str, object_id: str, from_dict: Callable[[dict[str, Any]], T]) -> T | None:
        """The stored object of ``kind`` read into its type, or None when there is none."""
        doc = self._doc(kind, object_id)
        return from_dict(doc) if doc else None

    def account(self, account_id: str) -> Account | None:
        return self._read("account", account_id, account_from_dict)

    def accounts_with(self, channel: str, setting: str, value: str) -> list[Account]:
        """The accounts of ``channel`` whose ``setting`` is ``value`` (a Meta app's other pages, by page id).

        Nothing keys accounts by a setting, so this reads every account (one Query of their
        partition) and keeps the list for the TTL: the edge asks only when a verified body holds an
        entry for another account than the URL's, and a few accounts' documents are small.
        """
        docs = self._accounts()
        found = [d for d in docs if d.get("channel") == channel and _text(d.get(setting)) == value]
        return [account_from_dict(d) for d in sorted(found, key=lambda d: str(d.get("id")))]

    def _accounts(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            listed = self._listing
            if listed is not None and now - listed[0] < self.ttl:
                return listed[1]
        docs: list[dict[str, Any]] = []
        try:
            paginator = client("dynamodb").get_paginator("query")
            for page in paginator.paginate(
                TableName=self.table, KeyConditionExpression="pk = :k", ExpressionAttributeValues={":k": {"S": "account"}}
            ):
                docs.extend(json.loads(item["doc"]["S"]) for item in page["Items"])
        except Exception as exc:  # botocore errors: the caller turns this into a 5xx / retry
            raise StoreUnavailable(f"settings table unavailable: {type(exc).__name__}") from exc
        with self._lock:
            self._listing = (now, docs)
        return docs

    def workstream(self, workstream_id: str) -> Workstream | None:
        return self._read("workstream", workstream_id, workstream_from_dict)

    def widget(self, widget_id: str) -> Widget | None:
        return self._read("widget", widget_id, widget_from_dict)

    def auth_setting(self, auth_setting_id: str) -> AuthSetting | None:
        return self._read("auth_setting", auth_setting_id, auth_setting_from_dict)

    def crm(self) -> CrmSettings:
        doc = self._doc("crm", CRM_ID)
        return crm_from_dict(doc) if doc else NO_CRM

    # -- used by ``switchboard apply`` / ``export`` ------------------------------------------------
    def all(self, kind: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        paginator = client("dynamodb").get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :k",
            ExpressionAttributeValues={":k": {"S": kind}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                out[item["sk"]["S"]] = json.loads(item["doc"]["S"])
        return out

    def put(self, kind: str, object_id: str, doc: dict[str, Any]) -> None:
        client("dynamodb").put_item(
            TableName=self.table,
            Item={"pk": {"S": kind}, "sk": {"S": object_id}, "doc": {"S": json.dumps(doc, sort_keys=True)}},
        )
        with self._lock:
            self._cache.pop((kind, object_id), None)
            if kind == "account":
                self._listing = None


def _text(value: Any) -> str | None:
    """A setting as the key it is compared as: ids are strings, though YAML may have read one as a number."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    return str(value)
