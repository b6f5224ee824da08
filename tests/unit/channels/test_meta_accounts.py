"""One Meta app, several accounts (interface section 2): every entry of a verified body is recorded under
the account it names, among the channel's accounts that verify with the same app secret.

Meta posts the events of all an app's pages (Instagram accounts) to the app's one callback URL, so
the body that reaches one account's URL may hold another's entries. They used to be skipped with a
200, and Meta never sends them again: lost for good.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from fakes.ports import FakeSecrets, FakeSettings, RecordingPublisher

from infra.local.template import plan
from switchboard import apigw, edge
from switchboard.aws.settings_store import DynamoSettings
from switchboard.channels.facebook import FacebookAdapter
from switchboard.channels.instagram import InstagramAdapter
from switchboard.channels.meta import MetaAdapter, sign_sha256
from switchboard.edge import EdgeDeps
from switchboard.errors import StoreUnavailable
from switchboard.secret_names import secret_name
from switchboard.settings import Account
from switchboard.web import WebhookRequest

ROOT = Path(__file__).resolve().parents[3]

PREFIX = "switchboard/unit"
APP_SECRET = "app-secret-of-the-one-app-1a2b"
OTHER_APP_SECRET = "app-secret-of-another-app-3c4d"
NOW = 1_800_000_000.0


@dataclass(frozen=True)
class Channel:
    adapter: MetaAdapter
    object_name: str

    @property
    def name(self) -> str:
        return self.adapter.channel

    @property
    def key(self) -> str:
        return self.adapter.account_key


CHANNELS = [Channel(FacebookAdapter(), "page"), Channel(InstagramAdapter(), "instagram")]


def body(channel: Channel, *entries: tuple[str, str]) -> bytes:
    """One text message per (account key, message id), each in its own entry, as Meta batches them."""
    doc = {
        "object": channel.object_name,
        "entry": [
            {
                "id": key,
                "time": 1_800_000_000_000,
                "messaging": [
                    {
                        "sender": {"id": "customer-" + mid},
                        "recipient": {"id": key},
                        "timestamp": 1_800_000_000_000,
                        "message": {"mid": mid, "text": "hello " + mid},
                    }
                ],
            }
            for key, mid in entries
        ],
    }
    return json.dumps(doc).encode()


def account(channel: Channel, account_id: str, key: str, *, enabled: bool = True) -> Account:
    return Account(id=account_id, channel=channel.name, workstream="social", enabled=enabled, options={channel.key: key})


def secrets_of(app_secret: str) -> dict[str, str]:
    return {"app_secret": app_secret, "verify_token": "verify-5e6f", "page_access_token": "token-7a8b"}


def deps_for(channel: Channel, accounts: list[tuple[Account, dict[str, str] | None]]) -> EdgeDeps:
    values = {secret_name(PREFIX, "account", a.id, a.channel): s for a, s in accounts if s is not None}
    return EdgeDeps(
        settings=FakeSettings(accounts={a.id: a for a, _ in accounts}),
        secrets=FakeSecrets(values),
        publisher=RecordingPublisher(),
        secrets_prefix=PREFIX,
        clock=lambda: NOW,
    )


def post(channel: Channel, deps: EdgeDeps, account_id: str, raw: bytes, app_secret: str = APP_SECRET) -> tuple[int, str]:
    event = {
        "resource": f"/webhooks/{channel.name}/{{account_id}}",
        "path": f"/webhooks/{channel.name}/{account_id}",
        "httpMethod": "POST",
        "headers": {"X-Hub-Signature-256": sign_sha256(app_secret, raw), "Content-Type": "application/json"},
        "pathParameters": {"account_id": account_id},
        "queryStringParameters": None,
        "requestContext": {"requestId": "req-1"},
        "body": raw.decode(),
        "isBase64Encoded": False,
    }
    answer = edge.receive(channel.adapter, apigw.request(event), deps)
    return answer.status, answer.body.decode() if isinstance(answer.body, bytes) else str(answer.body)


def recorded(deps: EdgeDeps) -> list[tuple[str, str]]:
    publisher = deps.publisher
    assert isinstance(publisher, RecordingPublisher)
    return [(e.account_id, e.id) for e in publisher.published]


@pytest.fixture(params=CHANNELS, ids=lambda c: c.name)
def channel(request: pytest.FixtureRequest) -> Channel:
    value: Channel = request.param
    return value


def test_each_entry_is_recorded_under_the_account_it_names(channel: Channel) -> None:
    deps = deps_for(
        channel,
        [
            (account(channel, "first", "1001"), secrets_of(APP_SECRET)),
            (account(channel, "second", "1002"), secrets_of(APP_SECRET)),
        ],
    )
    raw = body(channel, ("1001", "m1"), ("1002", "m2"), ("1001", "m3"))
    assert post(channel, deps, "first", raw) == (200, "EVENT_RECEIVED")
    c = channel.name
    assert recorded(deps) == [("first", f"{c}:first:m1"), ("second", f"{c}:second:m2"), ("first", f"{c}:first:m3")]


def test_the_same_entry_is_the_same_envelope_whichever_accounts_url_received_it(channel: Channel) -> None:
    """Ids are scoped by the entry's account, not the URL's: a redelivery to the other URL dedupes."""
    accounts = [
        (account(channel, "first", "1001"), secrets_of(APP_SECRET)),
        (account(channel, "second", "1002"), secrets_of(APP_SECRET)),
    ]
    raw = body(channel, ("1002", "m2"))
    via_first, via_second = deps_for(channel, accounts), deps_for(channel, accounts)
    assert post(channel, via_first, "first", raw)[0] == 200
    assert post(channel, via_second, "second", raw)[0] == 200
    assert recorded(via_first) == recorded(via_second) == [("second", f"{channel.name}:second:m2")]


@pytest.mark.parametrize(
    ("sibling", "sibling_secrets"),
    [
        pytest.param("other-app", secrets_of(OTHER_APP_SECRET), id="another-apps-secret"),
        pytest.param("disabled", secrets_of(APP_SECRET), id="disabled"),
        pytest.param("no-secret", None, id="secret-missing"),
        pytest.param("blank-secret", secrets_of("   "), id="secret-blank"),
        pytest.param("prefix-secret", secrets_of(APP_SECRET[:-1]), id="secret-a-prefix-of-ours"),
        pytest.param("unknown", secrets_of(APP_SECRET), id="no-account-has-the-key"),
    ],
)
def test_an_entry_for_no_account_sharing_the_secret_is_left_out_and_the_answer_stays_200(
    channel: Channel, sibling: str, sibling_secrets: dict[str, str] | None
) -> None:
    others = [
        (account(channel, "first", "1001"), secrets_of(APP_SECRET)),
        (account(channel, "disabled", "1002", enabled=False), secrets_of(APP_SECRET)),
    ]
    if sibling not in ("disabled", "unknown"):
        others.append((account(channel, sibling, "1002"), sibling_secrets))
    deps = deps_for(channel, others)
    raw = body(channel, ("1001", "m1"), ("1002" if sibling != "unknown" else "9999", "m2"))
    assert post(channel, deps, "first", raw) == (200, "EVENT_RECEIVED")
    assert recorded(deps) == [("first", f"{channel.name}:first:m1")]


def test_an_account_of_another_channel_with_the_same_key_is_never_a_sibling(channel: Channel) -> None:
    other = next(c for c in CHANNELS if c.name != channel.name)
    stranger = Account(id="stranger", channel=other.name, workstream="social", options={channel.key: "1002"})
    deps = deps_for(channel, [(account(channel, "first", "1001"), secrets_of(APP_SECRET)), (stranger, secrets_of(APP_SECRET))])
    assert post(channel, deps, "first", body(channel, ("1002", "m2")))[0] == 200
    assert recorded(deps) == []


def test_a_body_of_the_accounts_own_entries_reads_no_other_settings_or_secrets(channel: Channel) -> None:
    deps = deps_for(channel, [(account(channel, "first", "1001"), secrets_of(APP_SECRET))])
    assert post(channel, deps, "first", body(channel, ("1001", "m1"), ("1001", "m2")))[0] == 200
    assert isinstance(deps.settings, FakeSettings) and isinstance(deps.secrets, FakeSecrets)
    assert deps.settings.lookups == ["first"]
    assert deps.secrets.reads == [secret_name(PREFIX, "account", "first", channel.name)]


def test_each_other_key_is_looked_up_once_per_body(channel: Channel) -> None:
    deps = deps_for(
        channel,
        [
            (account(channel, "first", "1001"), secrets_of(APP_SECRET)),
            (account(channel, "second", "1002"), secrets_of(APP_SECRET)),
        ],
    )
    raw = body(channel, ("1002", "m1"), ("1002", "m2"), ("1003", "m3"), ("1003", "m4"))
    assert post(channel, deps, "first", raw)[0] == 200
    assert isinstance(deps.settings, FakeSettings) and isinstance(deps.secrets, FakeSecrets)
    assert deps.settings.lookups == ["first", f"{channel.name}.{channel.key}=1002", f"{channel.name}.{channel.key}=1003"]
    assert deps.secrets.reads.count(secret_name(PREFIX, "account", "second", channel.name)) == 1
    assert [a for a, _ in recorded(deps)] == ["second", "second"]


def test_a_forged_body_naming_a_sibling_is_refused_before_any_look_up(channel: Channel) -> None:
    deps = deps_for(
        channel,
        [
            (account(channel, "first", "1001"), secrets_of(APP_SECRET)),
            (account(channel, "second", "1002"), secrets_of(APP_SECRET)),
        ],
    )
    status, _ = post(channel, deps, "first", body(channel, ("1002", "m2")), app_secret=OTHER_APP_SECRET)
    assert status == 401
    assert recorded(deps) == []
    assert isinstance(deps.settings, FakeSettings)
    assert deps.settings.lookups == ["first"]


def test_a_secret_store_that_does_not_answer_for_a_sibling_is_503_and_records_nothing(channel: Channel) -> None:
    deps = deps_for(
        channel,
        [
            (account(channel, "first", "1001"), secrets_of(APP_SECRET)),
            (account(channel, "second", "1002"), secrets_of(APP_SECRET)),
        ],
    )
    store = deps.secrets
    assert isinstance(store, FakeSecrets)
    first_secret = secret_name(PREFIX, "account", "first", channel.name)

    class Flaky(FakeSecrets):
        def get(self, name: str) -> Any:
            if name != first_secret:
                raise StoreUnavailable("secrets manager throttled")
            return super().get(name)

    deps.secrets = Flaky(store.values)
    assert post(channel, deps, "first", body(channel, ("1001", "m1"), ("1002", "m2")))[0] == 503
    assert recorded(deps) == []


def test_parse_shared_says_why_an_entry_was_left_out(channel: Channel) -> None:
    own = account(channel, "first", "1001")
    lookup: Callable[[str], Account | None] = lambda key: None  # noqa: E731
    raw = body(channel, ("1001", "m1"), ("4242", "m2"))
    request = WebhookRequest(method="POST", path="/", path_params={}, query={}, headers={}, body=raw, request_id="r")
    result = channel.adapter.parse_shared(request, own, accounts=lookup, received_at=1, correlation_id="c")
    assert [e.id for e in result.envelopes] == [f"{channel.name}:first:m1"]
    assert result.skipped == [
        f"entry[1] is for {channel.adapter.account_noun} '4242', which no account sharing this app secret has"
    ]


# -- the settings store's side: accounts found by a setting, from DynamoDB -----------------------------


@pytest.fixture
def table(aws: None) -> str:
    create = plan(ROOT / "template.yaml", stack="unit", endpoint="http://127.0.0.1:1", visibility_timeout=2).tables[
        "SettingsTable"
    ]["create"]
    boto3.client("dynamodb").create_table(**create)
    return str(create["TableName"])


def _put(store: DynamoSettings, doc: dict[str, Any]) -> None:
    store.put("account", doc["id"], doc)


def test_the_store_finds_a_channels_accounts_by_a_setting(table: str) -> None:
    store = DynamoSettings(table, ttl_seconds=60)
    _put(store, {"id": "b", "channel": "facebook", "workstream": "w", "page_id": "1002"})
    _put(store, {"id": "a", "channel": "facebook", "workstream": "w", "page_id": "1002", "enabled": False})
    _put(store, {"id": "c", "channel": "instagram", "workstream": "w", "page_id": "1002"})
    _put(store, {"id": "d", "channel": "facebook", "workstream": "w", "page_id": "1003"})
    store.put("workstream", "w", {"id": "w", "fallback_queue": "q", "rules": []})
    found = store.accounts_with("facebook", "page_id", "1002")
    assert [(a.id, a.enabled) for a in found] == [("a", False), ("b", True)]
    assert store.accounts_with("facebook", "page_id", "9999") == []
    assert store.accounts_with("facebook", "instagram_id", "1002") == []


def test_the_stores_listing_is_cached_and_a_put_refreshes_it(table: str) -> None:
    queries: list[str] = []
    from switchboard.aws import clients

    clients.client("dynamodb").meta.events.register(
        "provide-client-params.dynamodb.Query", lambda params, **_: queries.append("q")
    )
    store = DynamoSettings(table, ttl_seconds=60)
    _put(store, {"id": "b", "channel": "facebook", "workstream": "w", "page_id": "1002"})
    assert [a.id for a in store.accounts_with("facebook", "page_id", "1002")] == ["b"]
    assert [a.id for a in store.accounts_with("facebook", "page_id", "1002")] == ["b"]
    assert len(queries) == 1
    _put(store, {"id": "e", "channel": "facebook", "workstream": "w", "page_id": "1002"})
    assert [a.id for a in store.accounts_with("facebook", "page_id", "1002")] == ["b", "e"]
    assert len(queries) == 2
