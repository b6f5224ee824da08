"""Messenger Send API replies against the fake platform (protocols.md 8.2): shape, windows, Graph's refusals."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
from fakes.platform import FakePlatform

from switchboard import outbound_http
from switchboard.channels.base import Reply, SendRefused, SendRetryable, Sent
from switchboard.channels.facebook import GRAPH_VERSION, FacebookAdapter
from switchboard.settings import Account

TOKEN = "page-token-very-secret"
APP_SECRET = "app-secret-very-secret"
PSID = "1234567890"
PATH = f"/{GRAPH_VERSION}/me/messages"
HOUR = 3600 * 1000


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.page_token(TOKEN, APP_SECRET)
        yield fake


def now() -> int:
    return int(time.time() * 1000)


def reply(age_ms: int | None = 0, text: str = "hello") -> Reply:
    last = None if age_ms is None else now() - age_ms
    return Reply(id="r-1", conversation_id="c-1", customer_id=PSID, text=text, last_customer_message_at=last)


def send(platform: FakePlatform, r: Reply, secrets: dict[str, str] | None = None) -> Sent:
    platform.messenger_customer(PSID, r.last_customer_message_at or 0)
    account = Account(id="fb", channel="facebook", workstream="w", options={"page_id": "1", "graph_base_url": platform.url})
    given = {"page_access_token": TOKEN, "app_secret": APP_SECRET} if secrets is None else secrets
    return FacebookAdapter().send(r, account, given, outbound_http.Client(outbound_http.LOCAL))


def test_within_24_hours_a_response_with_the_documented_shape(platform: FakePlatform) -> None:
    sent = send(platform, reply(HOUR))
    [request] = platform.requests(PATH)
    assert request.method == "POST"
    assert request.query["access_token"] == TOKEN
    assert request.query["appsecret_proof"] == hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert json.loads(request.body) == {"recipient": {"id": PSID}, "message": {"text": "hello"}, "messaging_type": "RESPONSE"}
    [message] = platform.messenger_sent()
    assert sent.platform_id == message.message_id


def test_up_to_seven_days_a_human_agent_tag(platform: FakePlatform) -> None:
    send(platform, reply(3 * 24 * HOUR))
    [message] = platform.messenger_sent()
    assert (message.messaging_type, message.tag) == ("MESSAGE_TAG", "HUMAN_AGENT")


@pytest.mark.parametrize("age", [8 * 24 * HOUR, None])
def test_later_or_unknown_is_refused_without_a_call(platform: FakePlatform, age: int | None) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(age))
    assert caught.value.code == "outside_messaging_window"
    assert platform.requests(PATH) == []


def test_graphs_window_refusal_is_outside_messaging_window(platform: FakePlatform) -> None:
    platform.now_ms = now() + 2 * 24 * HOUR  # Graph's clock says the 24 h window closed meanwhile
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(23 * HOUR))
    assert caught.value.code == "outside_messaging_window"


def test_a_blocked_user_is_final(platform: FakePlatform) -> None:
    platform.messenger_block(PSID)
    with pytest.raises(SendRefused) as caught:
        send(platform, reply())
    assert caught.value.code == "blocked"


def test_a_permission_error_is_final(platform: FakePlatform) -> None:
    platform.fail(PATH, 403, body={"error": {"message": "(#200) Requires pages_messaging permission", "code": 200}})
    with pytest.raises(SendRefused) as caught:
        send(platform, reply())
    assert caught.value.code == "not_permitted"


@pytest.mark.parametrize("code", [613, 4, 17, 32])
def test_rate_limits_are_retryable(platform: FakePlatform, code: int) -> None:
    platform.fail(PATH, 400, body={"error": {"message": "Calls to this api have exceeded the rate limit.", "code": code}})
    with pytest.raises(SendRetryable):
        send(platform, reply())


def test_a_5xx_is_retryable(platform: FakePlatform) -> None:
    platform.fail(PATH, 500, body={"error": {"message": "An unexpected error has occurred.", "code": 2}})
    with pytest.raises(SendRetryable):
        send(platform, reply())


def test_other_errors_are_final_with_graphs_message(platform: FakePlatform) -> None:
    platform.fail(PATH, 400, body={"error": {"message": "(#100) Param message[text] must be non-empty.", "code": 100}})
    with pytest.raises(SendRefused) as caught:
        send(platform, reply())
    assert caught.value.code == "refused"
    assert "must be non-empty" in str(caught.value)


def test_a_missing_token_is_not_configured(platform: FakePlatform) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(), {"app_secret": APP_SECRET})
    assert caught.value.code == "not_configured"
    assert "page_access_token" in str(caught.value)
    assert platform.requests(PATH) == []


def test_no_secret_in_an_error(platform: FakePlatform) -> None:
    platform.fail(PATH, 400, body={"error": {"message": f"bad token {TOKEN} proof {APP_SECRET}", "code": 190}})
    with pytest.raises(SendRefused) as caught:
        send(platform, reply())
    assert TOKEN not in str(caught.value)
    assert APP_SECRET not in str(caught.value)
