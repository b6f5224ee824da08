"""LINE push replies against the fake platform (protocols.md 8.1): shape, retry keys, 409, refusals, splitting."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fakes.platform import FakePlatform

from switchboard import outbound_http
from switchboard.channels.base import Reply, SendRefused, SendRetryable, Sent
from switchboard.channels.line import LineAdapter, retry_key, split_text
from switchboard.settings import Account

TOKEN = "line-access-token-very-secret"
USER = "U" + "0" * 32
PUSH = "/v2/bot/message/push"


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.line_token(TOKEN)
        yield fake


def account(platform: FakePlatform) -> Account:
    return Account(id="line-1", channel="line", workstream="w", options={"api_base_url": platform.url})


def send(platform: FakePlatform, reply: Reply, secrets: dict[str, str] | None = None) -> Sent:
    http = outbound_http.Client(outbound_http.LOCAL)
    return LineAdapter().send(reply, account(platform), {"channel_access_token": TOKEN} if secrets is None else secrets, http)


def reply(text: str = "hello", customer: str = USER) -> Reply:
    return Reply(id="reply-1", conversation_id="c-1", customer_id=customer, text=text)


def test_a_push_has_the_documented_shape(platform: FakePlatform) -> None:
    sent = send(platform, reply("hello there"))
    [request] = platform.requests(PUSH)
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.body) == {"to": USER, "messages": [{"type": "text", "text": "hello there"}]}
    assert request.headers["x-line-retry-key"] == retry_key("reply-1", 0)
    [push] = platform.line_pushes()
    assert sent.platform_id == push.request_id


def test_a_retry_after_a_lost_answer_reuses_the_key_and_409_counts_as_sent(platform: FakePlatform) -> None:
    platform.fail(PUSH, 500, after=True)
    with pytest.raises(SendRetryable):
        send(platform, reply())
    sent = send(platform, reply())
    first, second = platform.requests(PUSH)
    assert first.headers["x-line-retry-key"] == second.headers["x-line-retry-key"]
    [push] = platform.line_pushes()  # accepted once
    assert sent.platform_id == push.request_id  # from x-line-accepted-request-id


def test_long_texts_are_split_into_pushes_of_five_each_with_its_own_key(platform: FakePlatform) -> None:
    text = ("word " * 1000).strip()  # 4,999 characters; seven times, 34,999 in all
    text = " ".join([text] * 7)
    send(platform, reply(text))
    pushes = platform.line_pushes()
    assert [len(p.messages) for p in pushes] == [5, 2]
    assert len({p.retry_key for p in pushes}) == 2
    texts = [m["text"] for p in pushes for m in p.messages]
    assert all(len(t) <= 5000 for t in texts)
    assert "".join(texts) == text


def test_split_text_counts_utf16_units_and_never_cuts_a_code_point() -> None:
    pieces = split_text("\U0001f600" * 3000)
    assert [len(p) for p in pieces] == [2500, 500]
    assert split_text("a" * 12, limit=5) == ["aaaaa", "aaaaa", "aa"]
    assert split_text("abc def", limit=5) == ["abc ", "def"]


def test_the_monthly_limit_is_final(platform: FakePlatform) -> None:
    platform.line_monthly_limit(0)
    with pytest.raises(SendRefused) as caught:
        send(platform, reply())
    assert caught.value.code == "monthly_limit"


def test_other_429_and_5xx_are_retryable_with_retry_after(platform: FakePlatform) -> None:
    platform.fail(
        PUSH, 429, body={"message": "The API rate limit has been exceeded. Try again later."}, headers={"Retry-After": "7"}
    )
    with pytest.raises(SendRetryable) as caught:
        send(platform, reply())
    assert caught.value.retry_after == 7
    platform.fail(PUSH, 503)
    with pytest.raises(SendRetryable):
        send(platform, reply())
    assert platform.line_pushes() == []


def test_a_timeout_is_retryable(platform: FakePlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    def timed_out(*args: object, **kwargs: object) -> None:
        raise outbound_http.TimedOut("no answer within 10 s", target=platform.url + PUSH)

    monkeypatch.setattr(outbound_http.Client, "request", timed_out)
    with pytest.raises(SendRetryable):
        send(platform, reply())


def test_an_invalid_recipient_is_final(platform: FakePlatform) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(customer="nobody"))
    assert caught.value.code == "invalid_recipient"


def test_other_4xx_are_final_with_the_platform_message(platform: FakePlatform) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(), {"channel_access_token": "wrong-token"})
    assert caught.value.code == "not_authorized"
    assert "Authentication failed" in str(caught.value)
    platform.fail(
        PUSH,
        400,
        body={"message": "The request body has 1 error(s)", "details": [{"message": "bad", "property": "messages[0].text"}]},
    )
    with pytest.raises(SendRefused) as caught:
        send(platform, reply())
    assert caught.value.code == "refused"
    assert "bad" in str(caught.value)


def test_a_missing_token_is_not_configured_and_calls_nothing(platform: FakePlatform) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(), {})
    assert caught.value.code == "not_configured"
    assert "channel_access_token" in str(caught.value)
    assert platform.requests(PUSH) == []


def test_no_secret_in_an_error_even_when_the_platform_echoes_it(platform: FakePlatform) -> None:
    platform.fail(PUSH, 400, body={"message": f"bad token {TOKEN}"})
    with pytest.raises(SendRefused) as caught:
        send(platform, reply())
    assert TOKEN not in str(caught.value)


def test_an_empty_reply_is_refused() -> None:
    with pytest.raises(SendRefused) as caught:
        LineAdapter().send(reply("  "), Account(id="a", channel="line", workstream="w"), {"channel_access_token": TOKEN}, None)
    assert caught.value.code == "empty_reply"
