"""Customer names: looked up by route per channel, cached on the profile item with a TTL, never blocking."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from fakes.ports import FakeSecrets, RecordingPublisher

from switchboard import route_stage
from switchboard.aws.conversation_store import DynamoConversations, DynamoProfiles
from switchboard.channels.gbm import build_message
from switchboard.envelope import Customer, Envelope
from switchboard.http_fetch import RequestsFetcher
from switchboard.names import DEFAULT_TTL_SECONDS, NameLookup, ttl_ms_from_env
from switchboard.observability import logger
from switchboard.route_stage import RouteDeps

from ._fakes import LINE_TOKEN, PREFIX
from ._media import FB_APP_SECRET, FB_TOKEN, GRAPH, LINE_API, T0, line_message, parse, secrets, settings

USER = "U206d25c2ea6bd87c17655609a1c37cb8"
PSID = "6789012345678901"
HOUR = 3600 * 1000


@pytest.fixture
def http(aws: None) -> Any:
    """After moto's mock (which patches requests too), so these answers win."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@dataclass
class Clock:
    ms: int = T0

    def __call__(self) -> float:
        return self.ms / 1000


def lookup(conversations: DynamoConversations, secret_store: FakeSecrets | None = None) -> NameLookup:
    return NameLookup(
        settings=settings(),
        secrets=secret_store or secrets(),
        secrets_prefix=PREFIX,
        fetcher=RequestsFetcher(),
        profiles=DynamoProfiles(conversations.table),
        ttl_ms=24 * HOUR,
    )


def deps(conversations: DynamoConversations, clock: Clock, names: NameLookup) -> RouteDeps:
    return RouteDeps(settings=settings(), conversations=conversations, crm_queue=RecordingPublisher(), clock=clock, names=names)


def line_text(user: str = USER, event_id: str = "EV1", at: int = T0) -> Envelope:
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": T0,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id,
        "message": {"id": "1", "type": "text", "text": "hello"},
    }
    (envelope,) = parse("line-tokyo", {"destination": "U0", "events": [event]})
    return envelope.with_(sent_at=at, received_at=at)


def fb_text(psid: str = PSID, mid: str = "m_1") -> Envelope:
    body = {
        "object": "page",
        "entry": [
            {
                "id": "104123456789012",
                "time": T0,
                "messaging": [
                    {
                        "sender": {"id": psid},
                        "recipient": {"id": "104123456789012"},
                        "timestamp": T0,
                        "message": {"mid": mid, "text": "hi"},
                    }
                ],
            }
        ],
    }
    (envelope,) = parse("fb-store", body)
    return envelope


def gbm_text(name: str | None) -> Envelope:
    (envelope,) = parse("gbm-agent", json.loads(build_message("conv-1", "hi", display_name=name, now_ms=T0)))
    return envelope


# -- per channel -------------------------------------------------------------------------------------


def test_line_name_comes_from_the_profile_api_with_the_channel_token(http: Any, conversations: DynamoConversations) -> None:
    http.get(f"{LINE_API}/v2/bot/profile/{USER}", json={"displayName": "Aiko Tanaka", "userId": USER, "language": "ja"})
    d = deps(conversations, Clock(), lookup(conversations))
    outcome = route_stage.process(line_text(), d)

    conversation = conversations.get(outcome["conversation_id"])
    assert conversation is not None and conversation.customer.name == "Aiko Tanaka"
    assert isinstance(d.crm_queue, RecordingPublisher)
    assert d.crm_queue.published[0].customer.name == "Aiko Tanaka"
    (call,) = http.calls
    assert call.request.headers["Authorization"] == f"Bearer {LINE_TOKEN}"


def test_facebook_name_is_first_and_last_from_the_user_profile_api(http: Any, conversations: DynamoConversations) -> None:
    http.get(f"{GRAPH}/{PSID}", json={"first_name": "Peter", "last_name": "Chang", "id": PSID})
    d = deps(conversations, Clock(), lookup(conversations))
    outcome = route_stage.process(fb_text(), d)

    conversation = conversations.get(outcome["conversation_id"])
    assert conversation is not None and conversation.customer.name == "Peter Chang"
    (call,) = http.calls
    parts = urlsplit(call.request.url)
    assert parts.path == f"/v19.0/{PSID}"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["fields"] == "first_name,last_name"
    assert query["access_token"] == FB_TOKEN
    assert query["appsecret_proof"] == hmac.new(FB_APP_SECRET.encode(), FB_TOKEN.encode(), hashlib.sha256).hexdigest()


def test_gbm_name_comes_with_the_message_and_needs_no_lookup(http: Any, conversations: DynamoConversations) -> None:
    store = secrets()
    d = deps(conversations, Clock(), lookup(conversations, store))
    outcome = route_stage.process(gbm_text("Kevin Neubert"), d)
    conversation = conversations.get(outcome["conversation_id"])
    assert conversation is not None and conversation.customer.name == "Kevin Neubert"
    assert len(http.calls) == 0
    assert store.reads == []

    unnamed = gbm_text(None).with_(customer=Customer(id="conv-2"))
    outcome = route_stage.process(unnamed, d)
    conversation = conversations.get(outcome["conversation_id"])
    assert conversation is not None and conversation.customer.name is None
    assert len(http.calls) == 0


@pytest.mark.parametrize(
    ("envelope", "why"),
    [
        (line_message("image", "external").with_(data={"source_type": "room"}), "a LINE room has no profile"),
        (line_text(user="Cgroup0000"), "a LINE group id is not a user"),
        (fb_text().with_(data={"customer_ref_type": "user_ref"}), "a chat-plugin user_ref is not a PSID"),
    ],
    ids=["line room", "line group id", "facebook user_ref"],
)
def test_no_lookup_for_customers_that_are_not_people(
    http: Any, conversations: DynamoConversations, envelope: Envelope, why: str
) -> None:
    named = lookup(conversations).named(envelope, T0)
    assert named.customer.name is None, why
    assert len(http.calls) == 0, why


# -- cache -------------------------------------------------------------------------------------------


def test_the_name_is_cached_across_conversations_until_the_ttl_passes(http: Any, conversations: DynamoConversations) -> None:
    http.get(f"{LINE_API}/v2/bot/profile/{USER}", json={"displayName": "Aiko Tanaka"})
    clock = Clock()
    d = deps(conversations, clock, lookup(conversations))
    first = route_stage.process(line_text(event_id="EV1"), d)["conversation_id"]

    clock.ms = T0 + 2 * HOUR  # the workstream closes a conversation after 60 quiet minutes
    second = route_stage.process(line_text(event_id="EV2", at=clock.ms), d)["conversation_id"]
    assert second != first
    assert len(http.calls) == 1
    conversation = conversations.get(second)
    assert conversation is not None and conversation.customer.name == "Aiko Tanaka"

    http.replace(responses.GET, f"{LINE_API}/v2/bot/profile/{USER}", json={"displayName": "Aiko T."})
    clock.ms = T0 + 25 * HOUR
    third = route_stage.process(line_text(event_id="EV3", at=clock.ms), d)["conversation_id"]
    assert len(http.calls) == 2
    conversation = conversations.get(third)
    assert conversation is not None and conversation.customer.name == "Aiko T."


def test_a_later_message_in_the_conversation_takes_the_name_without_a_new_lookup(
    http: Any, conversations: DynamoConversations
) -> None:
    http.get(f"{LINE_API}/v2/bot/profile/{USER}", json={"displayName": "Aiko Tanaka"})
    clock = Clock()
    d = deps(conversations, clock, lookup(conversations))
    first = route_stage.process(line_text(event_id="EV1"), d)["conversation_id"]
    clock.ms += 1000
    assert route_stage.process(line_text(event_id="EV2"), d)["conversation_id"] == first
    assert len(http.calls) == 1
    assert [m.customer.name for m in conversations.messages(first)] == ["Aiko Tanaka", "Aiko Tanaka"]


# -- failures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "json": {"message": "boom"}},
        {"status": 404, "json": {"message": "Not found"}},
        {"status": 200, "body": "<html>not json</html>"},
        {"status": 200, "json": {"userId": USER}},
        {"status": 200, "body": "[" * 60000, "content_type": "application/json"},  # RecursionError in json.loads
    ],
    ids=["5xx", "404", "not json", "no displayName", "nested too deep"],
)
def test_a_failed_lookup_leaves_the_name_empty_blocks_nothing_and_is_not_repeated_within_the_ttl(
    http: Any, conversations: DynamoConversations, answer: dict[str, Any]
) -> None:
    http.get(f"{LINE_API}/v2/bot/profile/{USER}", **answer)
    clock = Clock()
    d = deps(conversations, clock, lookup(conversations))
    outcome = route_stage.process(line_text(event_id="EV1"), d)

    conversation = conversations.get(outcome["conversation_id"])
    assert conversation is not None and conversation.customer.name is None
    assert len(conversations.messages(outcome["conversation_id"])) == 1
    profile = DynamoProfiles(conversations.table).profile(f"line:line-tokyo:{USER}")
    assert profile is not None and profile.name is None and profile.name_checked_at == T0

    clock.ms += 5 * 60 * 1000
    route_stage.process(line_text(event_id="EV2"), d)
    assert len(http.calls) == 1


def test_a_failed_refresh_keeps_the_name_known_before(http: Any, conversations: DynamoConversations) -> None:
    profiles = DynamoProfiles(conversations.table)
    profiles.set_name(f"line:line-tokyo:{USER}", "Aiko Tanaka", checked_at=T0 - 48 * HOUR)
    http.get(f"{LINE_API}/v2/bot/profile/{USER}", status=503)
    named = lookup(conversations).named(line_text(), T0)
    assert named.customer.name == "Aiko Tanaka"
    assert len(http.calls) == 1
    profile = profiles.profile(f"line:line-tokyo:{USER}")
    assert profile is not None and (profile.name, profile.name_checked_at) == ("Aiko Tanaka", T0)


def test_a_missing_secret_leaves_the_name_empty(http: Any, conversations: DynamoConversations) -> None:
    named = lookup(conversations, FakeSecrets(values={})).named(line_text(), T0)
    assert named.customer.name is None
    assert len(http.calls) == 0


def test_ttl_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_NAME_TTL_SECONDS", raising=False)
    assert ttl_ms_from_env() == DEFAULT_TTL_SECONDS * 1000 == 24 * HOUR
    monkeypatch.setenv("SWITCHBOARD_NAME_TTL_SECONDS", "60")
    assert ttl_ms_from_env() == 60_000
    monkeypatch.setenv("SWITCHBOARD_NAME_TTL_SECONDS", "soon")
    assert ttl_ms_from_env() == DEFAULT_TTL_SECONDS * 1000


def test_no_token_in_logs_when_lookups_fail(
    http: Any, conversations: DynamoConversations, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logger.registered_handler, "stream", sys.stdout)
    http.get(f"{GRAPH}/{PSID}", status=400, json={"error": {"message": "Invalid OAuth access token.", "code": 190}})
    http.get(f"{LINE_API}/v2/bot/profile/{USER}", status=401, json={"message": "Authentication failed"})
    names = lookup(conversations)
    assert names.named(fb_text(), T0).customer.name is None
    assert names.named(line_text(), T0).customer.name is None
    assert len(http.calls) == 2

    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    failures = [json.loads(line) for line in lines if json.loads(line)["message"] == "name look-up failed"]
    assert [f["error"] for f in failures] == [
        f"FetchFailed: {GRAPH}/{PSID}: HTTP 400",
        f"FetchFailed: {LINE_API}/v2/bot/profile/{USER}: HTTP 401",
    ]
    for line in lines:
        assert FB_TOKEN not in line and FB_APP_SECRET not in line and LINE_TOKEN not in line
