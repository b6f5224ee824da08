"""Business Messages replies against the fake platform (protocols.md 8.3): JWT grant, messageId, 409, refusals."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from fakes.platform import FakePlatform

from switchboard import outbound_http
from switchboard.channels import gbm
from switchboard.channels.base import Reply, SendRefused, SendRetryable, Sent
from switchboard.channels.gbm import GbmAdapter
from switchboard.settings import Account

CONVERSATION = "c0ffee00-0000-4000-8000-000000000001"
PATH = f"/v1/conversations/{CONVERSATION}/messages"


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    gbm._TOKENS.clear()
    with FakePlatform() as fake:
        yield fake


def reply(author: str | None = "Ann") -> Reply:
    return Reply(id="r-1", conversation_id="c-1", customer_id=CONVERSATION, text="hello", author=author)


def send(platform: FakePlatform, r: Reply, secrets: dict[str, str]) -> Sent:
    account = Account(id="g", channel="gbm", workstream="w", options={"api_base_url": platform.url})
    return GbmAdapter().send(r, account, secrets, outbound_http.Client(outbound_http.LOCAL))


def secrets_for(platform: FakePlatform) -> dict[str, str]:
    return {"client_token": "x", "service_account_json": json.dumps(platform.gbm_service_account())}


def test_a_message_has_the_documented_shape_and_a_derived_id(platform: FakePlatform) -> None:
    sent = send(platform, reply(), secrets_for(platform))
    [message] = platform.gbm_sent()
    assert message.conversation_id == CONVERSATION
    assert message.text == "hello"
    assert message.representative == {"representativeType": "HUMAN", "displayName": "Ann"}
    assert message.message_id == sent.platform_id
    uuid.UUID(message.message_id)
    [request] = platform.requests(PATH)
    assert request.headers["authorization"].startswith("Bearer ya29.")


def test_no_author_no_display_name(platform: FakePlatform) -> None:
    send(platform, reply(author=None), secrets_for(platform))
    assert platform.gbm_sent()[0].representative == {"representativeType": "HUMAN"}


def test_a_retry_repeats_the_message_id_and_409_counts_as_sent(platform: FakePlatform) -> None:
    secrets = secrets_for(platform)
    platform.fail(PATH, 503, after=True)
    with pytest.raises(SendRetryable):
        send(platform, reply(), secrets)
    sent = send(platform, reply(), secrets)
    first, second = platform.requests(PATH)
    assert json.loads(first.body)["messageId"] == json.loads(second.body)["messageId"] == sent.platform_id
    assert len(platform.gbm_sent()) == 1


def test_the_token_is_cached(platform: FakePlatform) -> None:
    secrets = secrets_for(platform)
    send(platform, reply(), secrets)
    send(platform, Reply(id="r-2", conversation_id="c-1", customer_id=CONVERSATION, text="again"), secrets)
    assert len(platform.requests("/token")) == 1


def test_a_missing_service_account_is_not_configured(platform: FakePlatform) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(), {"client_token": "x"})
    assert caught.value.code == "not_configured"
    assert "service_account_json" in str(caught.value)


def test_a_rejected_grant_is_refused_and_names_no_key(platform: FakePlatform) -> None:
    info = platform.gbm_service_account()
    info["client_email"] = "stranger@example.com"
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(), {"service_account_json": json.dumps(info)})
    assert caught.value.code == "not_authorized"
    assert info["private_key"] not in str(caught.value)
    assert platform.requests(PATH) == []


def test_a_5xx_is_retryable_and_a_4xx_refused(platform: FakePlatform) -> None:
    secrets = secrets_for(platform)
    platform.fail(PATH, 500)
    with pytest.raises(SendRetryable):
        send(platform, reply(), secrets)
    platform.fail(PATH, 400, body={"error": {"code": 400, "message": "Conversation not found", "status": "INVALID_ARGUMENT"}})
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(), secrets)
    assert caught.value.code == "refused"
    assert "Conversation not found" in str(caught.value)


def test_no_token_in_an_error(platform: FakePlatform) -> None:
    secrets = secrets_for(platform)
    send(platform, reply(), secrets)
    [token] = [t for t, _ in gbm._TOKENS.values()]
    platform.fail(PATH, 400, body={"error": {"message": f"bad token {token}"}})
    with pytest.raises(SendRefused) as caught:
        send(platform, Reply(id="r-3", conversation_id="c", customer_id=CONVERSATION, text="x"), secrets)
    assert token not in str(caught.value)


def test_a_401_drops_the_cached_token(platform: FakePlatform) -> None:
    secrets = secrets_for(platform)
    platform.fail(PATH, 401, body={"error": {"code": 401, "message": "Request had invalid authentication credentials."}})
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(), secrets)
    assert caught.value.code == "not_authorized"
    send(platform, reply(), secrets)
    assert len(platform.requests("/token")) == 2
