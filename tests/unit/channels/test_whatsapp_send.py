"""WhatsApp replies against the fake platform (interface section 8): the 24-hour window, the re-engagement
template, agents' files by link, and Graph's errors classified."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakes.platform import FakePlatform

from switchboard import outbound_http
from switchboard.channels.base import OutFile, Reply, SendDeferred, SendRefused, SendRetryable, Sent
from switchboard.channels.whatsapp import GRAPH_VERSION, TEXT_LIMIT, WhatsAppAdapter
from switchboard.errors import Permanent, Retryable
from switchboard.settings import Account

TOKEN = "EAAJ-whatsapp-access-token-very-secret"
NUMBER = "106540352242922"
WA_ID = "16505551234"
PATH = f"/{GRAPH_VERSION}/{NUMBER}/messages"
HOUR = 3600 * 1000
TEMPLATE = {"name": "reopen_chat", "language": "en_US"}


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.whatsapp_number(NUMBER, TOKEN)
        yield fake


def now() -> int:
    return int(time.time() * 1000)


def reply(age_ms: int | None = 0, text: str = "hello", files: tuple[OutFile, ...] = ()) -> Reply:
    last = None if age_ms is None else now() - age_ms
    return Reply(id="r-1", conversation_id="c-1", customer_id=WA_ID, text=text, last_customer_message_at=last, files=files)


def account(platform: FakePlatform, **options: Any) -> Account:
    return Account(
        id="wa",
        channel="whatsapp",
        workstream="w",
        options={"phone_number_id": NUMBER, "graph_base_url": platform.url, **options},
    )


def send(platform: FakePlatform, r: Reply, secrets: dict[str, str] | None = None, **options: Any) -> Sent:
    platform.whatsapp_customer(WA_ID, r.last_customer_message_at or 0)
    given = {"access_token": TOKEN, "app_secret": "s", "verify_token": "v"} if secrets is None else secrets
    return WhatsAppAdapter().send(r, account(platform, **options), given, outbound_http.Client(outbound_http.LOCAL))


def bodies(platform: FakePlatform) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in platform.requests(PATH)]


def test_within_24_hours_a_text_message_of_the_documented_shape(platform: FakePlatform) -> None:
    sent = send(platform, reply(HOUR))
    [request] = platform.requests(PATH)
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in request.path and TOKEN not in json.dumps(request.query)  # the token travels in the header only
    assert request.query == {"appsecret_proof": hmac.new(b"s", TOKEN.encode(), hashlib.sha256).hexdigest()}
    assert json.loads(request.body) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "text",
        "text": {"body": "hello", "preview_url": False},
    }
    [message] = platform.whatsapp_sent()
    assert sent == Sent(platform_id=message.wamid)
    assert sent.platform_id is not None and sent.platform_id.startswith("wamid.")


@pytest.mark.parametrize("age", [25 * HOUR, None])
def test_later_without_a_template_is_refused_without_a_call(platform: FakePlatform, age: int | None) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(age))
    assert caught.value.code == "outside_messaging_window"
    assert "reengage_template" in caught.value.message
    assert platform.requests(PATH) == []


@pytest.mark.parametrize("age", [25 * HOUR, None])
def test_later_with_a_template_sends_it_and_defers_the_reply(platform: FakePlatform, age: int | None) -> None:
    with pytest.raises(SendDeferred) as caught:
        send(platform, reply(age, text="Your refund went out today."), reengage_template=TEMPLATE)
    [template] = bodies(platform)
    assert template == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "template",
        "template": {"name": "reopen_chat", "language": {"code": "en_US"}},
    }
    [message] = platform.whatsapp_sent()
    assert message.type == "template"
    deferred = caught.value
    assert deferred.code == "awaiting_customer" and deferred.sent.platform_id == message.wamid
    assert "Your refund" not in json.dumps(platform.whatsapp_sent()[0].message)  # the reply itself waits
    assert not isinstance(deferred, Retryable | Permanent)  # neither retried nor failed: held


def test_a_refused_template_is_a_refusal_not_a_deferral(platform: FakePlatform) -> None:
    platform.fail(
        PATH, 400, body={"error": {"message": "(#132001) Template name does not exist in the translation", "code": 132001}}
    )
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(30 * HOUR), reengage_template=TEMPLATE)
    assert caught.value.code == "template_refused"
    assert "the template" in caught.value.message


def test_graphs_window_refusal_is_outside_messaging_window(platform: FakePlatform) -> None:
    platform.now_ms = now() + 2 * 24 * HOUR  # WhatsApp's clock says the window closed meanwhile
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(23 * HOUR))
    assert caught.value.code == "outside_messaging_window"
    assert "131047" in caught.value.message


def test_files_follow_the_text_as_media_messages_by_link(platform: FakePlatform) -> None:
    files = (
        OutFile(name="label.png", url="https://bucket.example/label.png?X-Amz-Signature=abc", kind="image"),
        OutFile(name="manual.pdf", url="https://bucket.example/manual.pdf?sig=1", kind="file", content_type="application/pdf"),
        OutFile(name="clip.mp4", url="https://bucket.example/clip.mp4", kind="video"),
        OutFile(name="note.m4a", url="https://bucket.example/note.m4a", kind="audio"),
    )
    sent = send(platform, reply(HOUR, files=files))
    sent_bodies = bodies(platform)
    assert [b["type"] for b in sent_bodies] == ["text", "image", "document", "video", "audio"]
    assert sent_bodies[1]["image"] == {"link": files[0].url}
    assert sent_bodies[2]["document"] == {"link": files[1].url, "filename": "manual.pdf"}
    assert sent.platform_id == platform.whatsapp_sent()[0].wamid  # the text's id: its receipts move the reply
    assert sent.unsent_files == ()


def test_a_file_refused_after_the_text_is_reported_not_raised(platform: FakePlatform) -> None:
    files = (
        OutFile(name="a.png", url="https://bucket.example/a.png", kind="image"),
        OutFile(name="b.pdf", url="https://bucket.example/b.pdf", kind="file"),
        OutFile(name="c.webp", url="https://bucket.example/c.webp", kind="sticker"),
    )
    adapter = WhatsAppAdapter()
    platform.whatsapp_customer(WA_ID, now())
    client = outbound_http.Client(outbound_http.LOCAL)
    calls: list[str] = []

    class Failing:
        """The real client, with the image's send refused as Graph refuses media it cannot fetch."""

        def request(self, method: str, url: str, **kw: Any) -> outbound_http.Response:
            body = json.loads(kw["data"])
            calls.append(body["type"])
            if body["type"] == "image":
                platform.fail(PATH, 400, body={"error": {"message": "(#131053) Media upload error", "code": 131053}})
            if body["type"] == "document":
                platform.fail(PATH, 503, body={"error": {"message": "Service temporarily unavailable", "code": 2}})
            return client.request(method, url, **kw)

    sent = adapter.send(reply(HOUR, files=files), account(platform), {"access_token": TOKEN}, Failing())
    assert calls == ["text", "image", "document"]
    assert sent.platform_id == platform.whatsapp_sent()[0].wamid
    reasons = dict(sent.unsent_files)
    assert set(reasons) == {"a.png", "b.pdf", "c.webp"}
    assert "131053" in reasons["a.png"] and "HTTP 503" in reasons["b.pdf"]  # not retried: the text would go twice
    assert "sticker" in reasons["c.webp"]
    assert TOKEN not in json.dumps(sent.unsent_files)


def test_files_only_the_first_file_decides_and_kinds_whatsapp_cannot_carry_are_refused(platform: FakePlatform) -> None:
    only_sticker = (OutFile(name="c.webp", url="https://bucket.example/c.webp", kind="sticker"),)
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(HOUR, text="  ", files=only_sticker))
    assert caught.value.code == "unsupported_file" and platform.requests(PATH) == []
    image = (OutFile(name="a.png", url="https://bucket.example/a.png", kind="image"),)
    sent = send(platform, reply(HOUR, text="", files=image))
    assert [b["type"] for b in bodies(platform)] == ["image"]
    assert sent.platform_id == platform.whatsapp_sent()[0].wamid


def test_a_long_text_goes_in_parts_that_fit(platform: FakePlatform) -> None:
    words = ("word " * 2000).strip()  # 9,999 characters
    send(platform, reply(HOUR, text=words))
    parts = [b["text"]["body"] for b in bodies(platform)]
    assert len(parts) == 3 and all(len(p) <= TEXT_LIMIT for p in parts)
    assert " ".join(parts) == words


def test_an_empty_reply_is_refused(platform: FakePlatform) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(HOUR, text="  \n"))
    assert caught.value.code == "empty_reply" and platform.requests(PATH) == []


@pytest.mark.parametrize(
    ("status", "error", "outcome", "code"),
    [
        (400, {"message": "Message undeliverable", "code": 131026}, SendRefused, "undeliverable"),
        (400, {"message": "(#130429) Rate limit hit", "code": 130429}, SendRetryable, None),
        (
            400,
            {"message": "(#131056) (Business Account, Consumer Account) pair rate limit hit", "code": 131056},
            SendRetryable,
            None,
        ),
        (500, {"message": "Something went wrong", "code": 131000}, SendRetryable, None),
        (503, {"message": "Service temporarily unavailable", "code": 2}, SendRetryable, None),
        (401, {"message": "Invalid OAuth access token", "code": 190}, SendRefused, "not_permitted"),
        (400, {"message": "(#131030) Recipient phone number not in allowed list", "code": 131030}, SendRefused, "refused"),
        (400, {"message": "(#100) Invalid parameter", "code": 100}, SendRefused, "refused"),
    ],
)
def test_graphs_errors_are_classified(
    platform: FakePlatform, status: int, error: dict[str, Any], outcome: type[Exception], code: str | None
) -> None:
    platform.fail(PATH, status, body={"error": {**error, "type": "OAuthException", "fbtrace_id": "Axyz"}})
    with pytest.raises(outcome) as caught:
        send(platform, reply(HOUR))
    if code is not None:
        assert isinstance(caught.value, SendRefused) and caught.value.code == code
    assert str(error["code"]) in str(caught.value)


def test_a_wrong_token_is_refused_and_never_quoted(platform: FakePlatform) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(HOUR), secrets={"access_token": "EAAJ-wrong-token"})
    assert caught.value.code == "not_permitted"
    assert "EAAJ-wrong-token" not in caught.value.message


@pytest.mark.parametrize("secrets", [{}, {"access_token": ""}, {"access_token": "  "}])
def test_no_usable_token_is_a_setup_refusal_without_a_call(platform: FakePlatform, secrets: dict[str, str]) -> None:
    with pytest.raises(SendRefused) as caught:
        send(platform, reply(HOUR), secrets=secrets)
    assert caught.value.code == "not_configured" and platform.requests(PATH) == []


def test_an_unknown_outcome_is_retryable(platform: FakePlatform) -> None:
    closed = Account(
        id="wa", channel="whatsapp", workstream="w", options={"phone_number_id": NUMBER, "graph_base_url": "http://127.0.0.1:9"}
    )
    with pytest.raises(SendRetryable):
        WhatsAppAdapter().send(reply(HOUR), closed, {"access_token": TOKEN}, outbound_http.Client(outbound_http.LOCAL))
