"""LINE push replies against the fake platform (protocols.md 8.1): shape, retry keys, 409, refusals, splitting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakes.platform import FakePlatform

from switchboard import outbound_http
from switchboard.channels.base import OutFile, Reply, SendRefused, SendRetryable, Sent
from switchboard.channels.line import LineAdapter, file_message, retry_key, split_text
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


# -- agents' files ----------------------------------------------------------------------------------

IMAGE_URL = "https://attachments.example/replies/c-1/r/0.png?X-Amz-Signature=abc"


def image(name: str = "label.png", url: str = IMAGE_URL, **fields: object) -> OutFile:
    return OutFile(name=name, url=url, kind="image", **{"content_type": "image/png", "size": 2048, **fields})  # type: ignore[arg-type]


def with_files(*files: OutFile, text: str = "see attached") -> Reply:
    return Reply(id="reply-1", conversation_id="c-1", customer_id=USER, text=text, files=files)


def test_line_declares_the_kinds_it_carries() -> None:
    assert LineAdapter.file_kinds == frozenset({"image", "video", "audio"})


def test_an_image_follows_the_text_in_the_same_push(platform: FakePlatform) -> None:
    sent = send(platform, with_files(image()))
    [push] = platform.line_pushes()
    assert push.messages == [
        {"type": "text", "text": "see attached"},
        {"type": "image", "originalContentUrl": IMAGE_URL, "previewImageUrl": IMAGE_URL},
    ]
    assert push.retry_key == retry_key("reply-1", 0)
    assert sent == Sent(platform_id=push.request_id, unsent_files=())


def test_files_fill_the_last_text_push_then_their_own_each_with_its_key(platform: FakePlatform) -> None:
    files = [image(f"p{i}.png", url=f"{IMAGE_URL}&n={i}") for i in range(7)]
    send(platform, with_files(*files, text="a\n" * 2 + "b"))  # one text message, seven images
    pushes = platform.line_pushes()
    assert [len(p.messages) for p in pushes] == [5, 3]
    assert [p.retry_key for p in pushes] == [retry_key("reply-1", 0), retry_key("reply-1", 1)]
    assert [m["originalContentUrl"] for p in pushes for m in p.messages if m["type"] == "image"] == [f.url for f in files]


def test_a_retry_repeats_the_same_pushes_and_keys_so_nothing_is_doubled(platform: FakePlatform) -> None:
    files = [image(f"p{i}.png") for i in range(6)]
    platform.fail(PUSH, 500, after=True)  # the first push is accepted, its answer lost
    with pytest.raises(SendRetryable):
        send(platform, with_files(*files))
    # Another attempt offers new presigned URLs: the keys, not the bodies, make it the same request.
    again = [image(f.name, url=f.url + "&X-Amz-Date=later") for f in files]
    sent = send(platform, with_files(*again))
    pushes = platform.line_pushes()
    assert [len(p.messages) for p in pushes] == [5, 2]  # each accepted once
    assert sent.platform_id == pushes[0].request_id
    keys = [r.headers["x-line-retry-key"] for r in platform.requests(PUSH)]
    assert keys == [retry_key("reply-1", 0), retry_key("reply-1", 0), retry_key("reply-1", 1)]


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        (
            OutFile(name="clip.mp4", url=IMAGE_URL, kind="video", content_type="video/mp4", size=10),
            "LINE needs a preview image for a video (previewImageUrl), and Switchboard has none to give",
        ),
        (
            OutFile(name="memo.m4a", url=IMAGE_URL, kind="audio", content_type="audio/mp4", size=10),
            "LINE needs the audio's duration in milliseconds, and Switchboard does not know it",
        ),
        (OutFile(name="manual.pdf", url=IMAGE_URL, kind="file"), "LINE replies do not carry file files"),
        (image("anim.gif", content_type="image/gif"), "LINE takes only JPEG or PNG images, and this is image/gif"),
        (image("big.png", size=10_000_001), "LINE takes images of at most 10 MB, and this is 10000001 bytes"),
        (image(url="https://a.example/" + "x" * 2000), "the file's address is 2018 characters, more than LINE's 2000"),
    ],
    ids=["video", "audio", "document", "gif", "too-large", "long-url"],
)
def test_a_file_line_cannot_take_is_named_and_the_text_still_goes(platform: FakePlatform, file: OutFile, reason: str) -> None:
    sent = send(platform, with_files(file))
    [push] = platform.line_pushes()
    assert push.messages == [{"type": "text", "text": "see attached"}]
    assert sent.unsent_files == ((file.name, reason),)
    assert sent.platform_id == push.request_id


def test_the_image_type_comes_from_the_name_when_no_content_type_is_known(platform: FakePlatform) -> None:
    sent = send(platform, with_files(image("photo.JPG", content_type=None), image("notes.txt", content_type=None)))
    [push] = platform.line_pushes()
    assert [m["type"] for m in push.messages] == ["text", "image"]
    assert sent.unsent_files == (("notes.txt", "LINE takes only JPEG or PNG images, and this is of an unknown type"),)


def test_an_image_at_the_limits_goes() -> None:
    message, why = file_message(image(size=10_000_000, url="https://a.example/" + "x" * (2000 - 18)))
    assert message is not None and why == ""


def test_a_file_line_blames_is_left_out_and_the_rest_of_the_push_goes_again(platform: FakePlatform) -> None:
    good, bad = image("good.png"), image("bad.png", url="http://plain.example/bad.png")  # LINE needs HTTPS
    sent = send(platform, with_files(good, bad))
    [push] = platform.line_pushes()
    assert [m.get("originalContentUrl") for m in push.messages] == [None, good.url]
    (name, reason), *rest = sent.unsent_files
    assert (name, rest) == ("bad.png", [])
    assert "HTTP 400" in reason and "HTTPS" in reason
    # The second request leaves the file out under its own key, the same on every attempt.
    first, second = platform.requests(PUSH)
    assert first.headers["x-line-retry-key"] == retry_key("reply-1", 0)
    assert second.headers["x-line-retry-key"] == retry_key("reply-1", 0, (2,)) != retry_key("reply-1", 0)
    assert sent.platform_id == push.request_id


class LosesAnswer:
    """An outbound client whose ``lose``-th request reaches the platform but whose answer never comes back."""

    def __init__(self, lose: int) -> None:
        self.client = outbound_http.Client(outbound_http.LOCAL)
        self.calls = 0
        self.lose = lose

    def request(self, method: str, url: str, **kwargs: Any) -> outbound_http.Response:
        self.calls += 1
        response = self.client.request(method, url, **kwargs)
        if self.calls == self.lose:
            raise outbound_http.TimedOut("no answer within 10 s", target=url)
        return response


def test_a_blamed_file_retried_after_a_lost_answer_is_not_doubled(platform: FakePlatform) -> None:
    bad = image("bad.png", url="http://plain.example/bad.png")
    secrets = {"channel_access_token": TOKEN}
    # First attempt: the push with the file is refused (400), the push without it accepted, its answer lost.
    with pytest.raises(SendRetryable):
        LineAdapter().send(with_files(bad), account(platform), secrets, LosesAnswer(lose=2))
    assert len(platform.line_pushes()) == 1
    sent = LineAdapter().send(with_files(bad), account(platform), secrets, LosesAnswer(lose=0))
    [push] = platform.line_pushes()  # the reduced push's key answered 409: still once
    assert push.messages == [{"type": "text", "text": "see attached"}]
    assert [n for n, _ in sent.unsent_files] == ["bad.png"]
    assert sent.platform_id == push.request_id
    keys = [r.headers["x-line-retry-key"] for r in platform.requests(PUSH)]
    assert keys == [retry_key("reply-1", 0), retry_key("reply-1", 0, (1,))] * 2


def test_when_line_blames_the_text_the_reply_is_refused(platform: FakePlatform) -> None:
    platform.fail(PUSH, 400, body={"message": "bad", "details": [{"message": "x", "property": "messages[0].text"}]})
    with pytest.raises(SendRefused) as caught:
        send(platform, with_files(image()))
    assert caught.value.code == "refused"
    assert platform.line_pushes() == []


def test_files_only_after_the_text_went_are_named_when_line_refuses_their_push(platform: FakePlatform) -> None:
    files = [image(f"p{i}.png") for i in range(6)]  # text + 4 in the first push, 2 in the second
    platform.line_monthly_limit(1)
    sent = send(platform, with_files(*files))
    [push] = platform.line_pushes()
    assert len(push.messages) == 5
    assert [n for n, _ in sent.unsent_files] == ["p4.png", "p5.png"]
    assert all("monthly limit" in why for _, why in sent.unsent_files)
    assert sent.platform_id == push.request_id


def test_a_reply_of_files_only_goes_without_a_text_message(platform: FakePlatform) -> None:
    sent = send(platform, with_files(image(), text=""))
    [push] = platform.line_pushes()
    assert [m["type"] for m in push.messages] == ["image"]
    assert sent.unsent_files == ()


def test_a_reply_of_files_line_takes_none_of_is_refused_and_calls_nothing(platform: FakePlatform) -> None:
    video = OutFile(name="clip.mp4", url=IMAGE_URL, kind="video", content_type="video/mp4")
    with pytest.raises(SendRefused) as caught:
        send(platform, with_files(video, text=" "))
    assert caught.value.code == "unsupported_file"
    assert "clip.mp4" in str(caught.value) and "preview image" in str(caught.value)
    assert platform.requests(PUSH) == []


def test_files_only_refused_by_line_fail_the_reply(platform: FakePlatform) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, with_files(image(url="http://plain.example/a.png"), text=""))
    assert caught.value.code == "unsupported_file"
    assert platform.line_pushes() == []
