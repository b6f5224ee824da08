"""Replies through the Messenger Platform's Send API, shared by Messenger and Instagram (channels/meta.py).

Against the fake platform: the windows (``RESPONSE`` within 24 h, ``HUMAN_AGENT`` up to 7 days), and
agents' files, each its own message after the text, in order; a file the platform refuses is named
in ``Sent.unsent_files`` while the text counts as sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fakes.platform import FakePlatform

from switchboard import outbound_http
from switchboard.channels.base import OutFile, Reply, SendRefused, SendRetryable, Sent
from switchboard.channels.facebook import FacebookAdapter
from switchboard.channels.instagram import InstagramAdapter
from switchboard.channels.meta import GRAPH_VERSION, MetaAdapter
from switchboard.settings import Account

TOKEN = "page-token-very-secret"
APP_SECRET = "app-secret-very-secret"
CUSTOMER = "1254459154682919"
PATH = f"/{GRAPH_VERSION}/me/messages"
HOUR = 3600 * 1000
ADAPTERS = [FacebookAdapter(), InstagramAdapter()]


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.page_token(TOKEN, APP_SECRET)
        yield fake


@pytest.fixture(params=ADAPTERS, ids=lambda a: a.channel)
def adapter(request: pytest.FixtureRequest) -> MetaAdapter:
    value: MetaAdapter = request.param
    return value


def now() -> int:
    return int(time.time() * 1000)


def out_file(platform: FakePlatform, name: str, kind: str) -> OutFile:
    return OutFile(name=name, url=f"{platform.url}/files/{name}?X-Amz-Signature=abc", kind=kind, content_type="x/y", size=10)


def reply(age_ms: int | None = HOUR, text: str = "hello", files: tuple[OutFile, ...] = ()) -> Reply:
    last = None if age_ms is None else now() - age_ms
    return Reply(id="r-1", conversation_id="c-1", customer_id=CUSTOMER, text=text, last_customer_message_at=last, files=files)


def send(platform: FakePlatform, adapter: MetaAdapter, r: Reply) -> Sent:
    platform.messenger_customer(CUSTOMER, r.last_customer_message_at or 0)
    options = {adapter.account_key: "17841400000000000", "graph_base_url": platform.url}
    account = Account(id="acct", channel=adapter.channel, workstream="w", options=options)
    secrets = {"page_access_token": TOKEN, "app_secret": APP_SECRET}
    return adapter.send(r, account, secrets, outbound_http.Client(outbound_http.LOCAL))


def test_both_carry_the_send_apis_file_kinds(adapter: MetaAdapter) -> None:
    assert adapter.file_kinds == frozenset({"image", "video", "audio", "file"})


def test_a_text_reply_has_the_documented_shape(platform: FakePlatform, adapter: MetaAdapter) -> None:
    sent = send(platform, adapter, reply())
    [request] = platform.requests(PATH)
    assert request.query["access_token"] == TOKEN and "appsecret_proof" in request.query
    assert json.loads(request.body) == {"recipient": {"id": CUSTOMER}, "message": {"text": "hello"}, "messaging_type": "RESPONSE"}
    [message] = platform.messenger_sent()
    assert sent == Sent(platform_id=message.message_id)


def test_up_to_seven_days_a_human_agent_tag_then_nothing(platform: FakePlatform, adapter: MetaAdapter) -> None:
    send(platform, adapter, reply(6 * 24 * HOUR))
    [message] = platform.messenger_sent()
    assert (message.messaging_type, message.tag) == ("MESSAGE_TAG", "HUMAN_AGENT")
    with pytest.raises(SendRefused) as caught:
        send(platform, adapter, reply(8 * 24 * HOUR))
    assert caught.value.code == "outside_messaging_window"
    assert len(platform.requests(PATH)) == 1


def test_files_follow_the_text_each_as_its_own_message_in_order(platform: FakePlatform, adapter: MetaAdapter) -> None:
    files = (out_file(platform, "a.png", "image"), out_file(platform, "b.pdf", "file"), out_file(platform, "c.mp4", "video"))
    sent = send(platform, adapter, reply(files=files))
    messages = platform.messenger_sent()
    assert [m.text for m in messages] == ["hello", None, None, None]
    assert [m.attachment for m in messages[1:]] == [
        {"type": kind, "payload": {"url": f.url, "is_reusable": False}}
        for f, kind in zip(files, ["image", "file", "video"], strict=True)
    ]
    assert {m.messaging_type for m in messages} == {"RESPONSE"}
    assert sent == Sent(platform_id=messages[0].message_id, unsent_files=())


def test_a_refused_file_is_listed_with_its_reason_and_the_rest_still_go(platform: FakePlatform, adapter: MetaAdapter) -> None:
    files = (out_file(platform, "a.png", "image"), out_file(platform, "b.pdf", "file"))
    platform.messenger_refuse_file(files[0].url)
    sent = send(platform, adapter, reply(files=files))
    messages = platform.messenger_sent()
    assert [m.text for m in messages] == ["hello", None]
    assert messages[1].attachment is not None and messages[1].attachment["payload"]["url"] == files[1].url
    assert sent.platform_id == messages[0].message_id
    [(name, reason)] = sent.unsent_files
    assert name == "a.png" and "Upload attachment failure" in reason
    assert TOKEN not in reason and APP_SECRET not in reason


def test_a_file_failing_retryably_after_the_text_is_unsent_not_a_retry(platform: FakePlatform, adapter: MetaAdapter) -> None:
    """Retrying the reply would send its text a second time: the file is reported instead."""
    files = (out_file(platform, "a.png", "image"),)
    platform.messenger_refuse_file(files[0].url, status=500, code=2, subcode=None, message="An unexpected error has occurred.")
    sent = send(platform, adapter, reply(files=files))
    assert [m.text for m in platform.messenger_sent()] == ["hello"]
    assert [name for name, _ in sent.unsent_files] == ["a.png"]


def test_a_files_only_reply_sends_its_files(platform: FakePlatform, adapter: MetaAdapter) -> None:
    files = (out_file(platform, "a.png", "image"), out_file(platform, "b.ogg", "audio"))
    sent = send(platform, adapter, reply(text="  ", files=files))
    messages = platform.messenger_sent()
    assert [m.attachment["type"] if m.attachment else None for m in messages] == ["image", "audio"]
    assert sent.platform_id == messages[0].message_id


def test_a_files_only_reply_none_of_whose_files_went_is_refused(platform: FakePlatform, adapter: MetaAdapter) -> None:
    files = (out_file(platform, "a.png", "image"),)
    platform.messenger_refuse_file(files[0].url)
    with pytest.raises(SendRefused) as caught:
        send(platform, adapter, reply(text="", files=files))
    assert caught.value.code == "refused" and "Upload attachment failure" in str(caught.value)


def test_a_files_only_reply_whose_first_file_fails_retryably_is_retried_whole(
    platform: FakePlatform, adapter: MetaAdapter
) -> None:
    files = (out_file(platform, "a.png", "image"), out_file(platform, "b.png", "image"))
    platform.messenger_refuse_file(files[0].url, status=400, code=613, subcode=None, message="rate limited")
    with pytest.raises(SendRetryable):
        send(platform, adapter, reply(text="", files=files))
    assert platform.messenger_sent() == []


def test_a_closed_window_refuses_a_files_only_reply_as_a_whole(platform: FakePlatform, adapter: MetaAdapter) -> None:
    platform.now_ms = now() + 2 * 24 * HOUR  # Graph's clock: the 24 h window closed meanwhile
    with pytest.raises(SendRefused) as caught:
        send(platform, adapter, reply(23 * HOUR, text="", files=(out_file(platform, "a.png", "image"),)))
    assert caught.value.code == "outside_messaging_window"


def test_a_text_refused_sends_no_file(platform: FakePlatform, adapter: MetaAdapter) -> None:
    platform.messenger_block(CUSTOMER)
    with pytest.raises(SendRefused) as caught:
        send(platform, adapter, reply(files=(out_file(platform, "a.png", "image"),)))
    assert caught.value.code == "blocked"
    assert len(platform.requests(PATH)) == 1


def test_an_empty_reply_is_refused_without_a_call(platform: FakePlatform, adapter: MetaAdapter) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, adapter, reply(text=" "))
    assert caught.value.code == "empty_reply"
    assert platform.requests(PATH) == []


def test_instagrams_own_window_subcode_is_outside_messaging_window(platform: FakePlatform) -> None:
    platform.fail(
        PATH,
        400,
        body={"error": {"message": "This message is sent outside of allowed window.", "code": 10, "error_subcode": 2534022}},
    )
    with pytest.raises(SendRefused) as caught:
        send(platform, InstagramAdapter(), reply())
    assert caught.value.code == "outside_messaging_window"
