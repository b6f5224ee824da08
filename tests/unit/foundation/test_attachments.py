"""Attachments kept by the route stage: per channel, within the account's limits, retried, never lost.

HTTP is ``responses`` (no socket); the bucket and the conversations table are moto.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import responses
from fakes.ports import FakeSecrets, RecordingPublisher

from switchboard import route_stage
from switchboard.attachments import AttachmentKeeper, attachment_key
from switchboard.aws.conversation_store import DynamoConversations
from switchboard.envelope import UNSUPPORTED_TEXT, Attachment, Envelope
from switchboard.errors import StoreUnavailable
from switchboard.observability import logger
from switchboard.route_stage import RouteDeps

from ._fakes import LINE_TOKEN
from ._media import (
    CONVERSATION_ID,
    FB_APP_SECRET,
    FB_TOKEN,
    LINE_DATA,
    T0,
    Sleeps,
    bucket,
    facebook,
    gbm,
    keeper,
    line_message,
    settings,
    stored_objects,
)

JPEG = b"\xff\xd8\xff\xe0" + b"j" * 700
PNG = b"\x89PNG\r\n\x1a\n" + b"p" * 300
TXT = b"t" * 2138


@pytest.fixture
def s3(aws: None) -> None:
    bucket()


@pytest.fixture
def http(aws: None) -> Any:
    """After moto's mock (which patches requests too), so these answers win."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@dataclass(frozen=True)
class Case:
    name: str
    envelope: Envelope
    url: str
    body: bytes
    content_type: str
    authorization: str | None
    stored_name: str


def cases() -> list[Case]:
    line_image = line_message("image", "line")
    line_external = line_message("image", "external")
    line_file = line_message("file")
    fb = facebook("message_attachments_media.json")
    gbm_image = gbm("gbm_image-message.json")
    storage_url = gbm_image.attachments[0].url
    assert storage_url and storage_url.startswith("https://storage.googleapis.com/")
    return [
        Case(
            "line, contentProvider line: the content API with the channel access token",
            line_image,
            f"{LINE_DATA}/v2/bot/message/354718705033693861/content",
            JPEG,
            "image/jpeg",
            f"Bearer {LINE_TOKEN}",
            "image.jpg",
        ),
        Case(
            "line, contentProvider external: the provider's own URL, no token",
            line_external,
            "https://example.com/",
            PNG,
            "image/png",
            None,
            "image.png",
        ),
        Case(
            "line, file: the content API, the customer's file name",
            line_file,
            f"{LINE_DATA}/v2/bot/message/325708/content",
            TXT,
            "text/plain",
            f"Bearer {LINE_TOKEN}",
            "file.txt",
        ),
        Case(
            "facebook, image: the payload URL (CDN, signed query)",
            fb[0],
            "https://scontent.xx.fbcdn.net/v/t1.15752-9/1.jpg?_nc_cat=1&oh=00_a",
            JPEG,
            "image/jpeg",
            None,
            "image.jpg",
        ),
        Case(
            "facebook, file: the payload URL, named by its path",
            fb[3],
            "https://cdn.fbsbx.com/v/t59.2708-21/invoice.pdf?_nc_cat=1",
            b"%PDF-1.7 " + b"x" * 100,
            "application/pdf",
            None,
            "file.pdf",
        ),
        Case(
            "gbm, image: the signed storage URL from the text",
            gbm_image,
            storage_url,
            JPEG,
            "image/jpeg",
            None,
            "image.jpg",
        ),
    ]


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_each_channel_keeps_its_attachment_in_the_bucket_under_the_conversation(s3: None, http: Any, case: Case) -> None:
    http.get(case.url, body=case.body, content_type=case.content_type)
    kept = keeper().keep(case.envelope, CONVERSATION_ID)

    attachment = kept.attachments[0]
    assert attachment.error is None
    assert attachment.stored_key == attachment_key(CONVERSATION_ID, case.envelope.id, 0, case.stored_name)
    assert attachment.stored_key.startswith(f"conversations/{CONVERSATION_ID}/")
    assert attachment.size == len(case.body)
    assert attachment.name == (case.envelope.attachments[0].name or case.stored_name)
    assert kept.kind == case.envelope.kind
    assert stored_objects()[attachment.stored_key] == (case.body, case.content_type)
    (call, *_) = [c for c in http.calls if c.request.url.split("?")[0] == case.url.split("?")[0]]
    assert call.request.url == case.url
    assert call.request.headers.get("Authorization") == case.authorization


def test_every_media_attachment_of_a_message_is_kept_and_shares_are_not_fetched(s3: None, http: Any) -> None:
    (two_images, *_) = facebook("message_attachments_media.json")
    http.get("https://scontent.xx.fbcdn.net/v/t1.15752-9/1.jpg", body=JPEG, content_type="image/jpeg")
    http.get("https://scontent.xx.fbcdn.net/v/t1.15752-9/2.png", body=PNG, content_type="image/png")
    kept = keeper().keep(two_images, CONVERSATION_ID)
    assert [a.stored_key.rsplit("/", 1)[1] if a.stored_key else None for a in kept.attachments] == ["0-image.jpg", "1-image.png"]
    assert len(stored_objects()) == 2

    share = two_images.with_(attachments=(Attachment(type="fallback", url="https://www.example.com/article"),))
    assert keeper().keep(share, CONVERSATION_ID) == share
    assert len(http.calls) == 2


def test_an_attachment_already_kept_or_failed_is_not_fetched_again(s3: None, http: Any) -> None:
    envelope = line_message("image", "line")
    done = envelope.with_(
        attachments=(
            Attachment(type="image", content_id="1", stored_key="conversations/x/y/0-image.jpg", size=3),
            Attachment(type="image", content_id="2", error="not fetched after 3 attempt(s): gone"),
        )
    )
    assert keeper().keep(done, CONVERSATION_ID) == done
    assert len(http.calls) == 0


# -- limits ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Over:
    name: str
    envelope: Envelope
    url: str
    body: bytes
    headers: dict[str, str]
    content_type: str
    limits: dict[str, Any]
    fetched: bool  # whether the limit could only be known by asking
    reason: str


def over_cases() -> list[Over]:
    small = {"max_bytes": 1000, "extensions": ["jpg", "jpeg", "png", "txt", "pdf"]}
    no_pdf = {"max_bytes": 4096, "extensions": ["jpg", "png"]}
    big = b"x" * 1500
    return [
        Over("size LINE declares", line_message("file"), f"{LINE_DATA}/v2/bot/message/325708/content", TXT, {}, "text/plain",
             small, False, "2138 bytes is over the account's max_bytes 1000"),
        Over("Content-Length", line_message("image", "line"), f"{LINE_DATA}/v2/bot/message/354718705033693861/content", big,
             {"Content-Length": str(len(big))}, "image/jpeg", small, True, "over the account's max_bytes 1000"),
        Over("size counted while streaming (no Content-Length)", gbm("gbm_image-message.json"), "", big, {}, "image/jpeg",
             small, True, "over the account's max_bytes 1000"),
        Over("extension of the file name", line_message("file"), f"{LINE_DATA}/v2/bot/message/325708/content", TXT, {},
             "text/plain", no_pdf, False, "extension 'txt' is not among the account's allowed extensions"),
        Over("extension of the URL's path", facebook("message_attachments_media.json")[3],
             "https://cdn.fbsbx.com/v/t59.2708-21/invoice.pdf", b"%PDF", {}, "application/pdf", no_pdf, False,
             "extension 'pdf' is not among the account's allowed extensions"),
        Over("Content-Type when neither names one", gbm("gbm_image-message.json"), "", b"GIF89a", {}, "image/gif", no_pdf,
             True, "image/gif is not among the account's allowed extensions"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", over_cases(), ids=lambda c: c.name)
def test_over_a_limit_keeps_no_bytes_and_the_message_becomes_unsupported(s3: None, http: Any, case: Over) -> None:
    url = case.url or str(case.envelope.attachments[0].url)
    http.get(url, body=case.body, content_type=case.content_type, headers=case.headers, auto_calculate_content_length=False)
    kept = keeper(case.limits).keep(case.envelope, CONVERSATION_ID)

    assert (kept.kind, kept.text) == ("unsupported", UNSUPPORTED_TEXT)
    assert kept.attachments[0].stored_key is None
    assert kept.attachments[0].error == f"not kept: {case.reason}"
    assert kept.data["unsupported"]["kind"] == case.envelope.kind
    assert kept.data["unsupported"]["reasons"] == [case.reason]
    assert stored_objects() == {}
    assert len(http.calls) == (1 if case.fetched else 0)


def test_within_the_limits_of_another_account_the_same_file_is_kept(s3: None, http: Any) -> None:
    """The control for the table above: the same file under generous limits is kept whole."""
    envelope = gbm("gbm_image-message.json")
    http.get(str(envelope.attachments[0].url), body=b"GIF89a", content_type="image/gif")
    kept = keeper({"max_bytes": 4096, "extensions": ["gif"]}).keep(envelope, CONVERSATION_ID)
    assert kept.kind == "image"
    assert kept.attachments[0].stored_key and kept.attachments[0].stored_key.endswith("/0-image.gif")


def test_the_customers_text_is_kept_beside_an_unsupported_attachment(s3: None, http: Any) -> None:
    envelope = facebook("message_attachments_media.json")[3].with_(text="my invoice, see attached")
    kept = keeper({"max_bytes": 4096, "extensions": ["jpg"]}).keep(envelope, CONVERSATION_ID)
    assert (kept.kind, kept.text) == ("unsupported", UNSUPPORTED_TEXT)
    assert kept.data["unsupported"]["text"] == "my invoice, see attached"


def test_names_never_make_paths(s3: None, http: Any) -> None:
    envelope = line_message("file").with_(attachments=(Attachment(type="file", content_id="77", name="../../etc/pass wd.txt"),))
    http.get(f"{LINE_DATA}/v2/bot/message/77/content", body=b"hello", content_type="text/plain")
    kept = keeper().keep(envelope, CONVERSATION_ID)
    key = kept.attachments[0].stored_key
    assert key is not None
    prefix, _, last = key.rpartition("/")
    assert prefix.count("/") == 2 and prefix.startswith(f"conversations/{CONVERSATION_ID}/")
    assert last == "0-etc_pass_wd.txt"
    assert ".." not in key


# -- what is kept is what the extension says ---------------------------------------------------------

HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
FB_IMAGE = "https://scontent.xx.fbcdn.net/v/t1.15752-9/1.jpg?_nc_cat=1&oh=00_a"
FB_SECOND = "https://scontent.xx.fbcdn.net/v/t1.15752-9/2.png"
LINE_IMAGE = f"{LINE_DATA}/v2/bot/message/354718705033693861/content"


@pytest.mark.parametrize(
    ("envelope", "url", "content_type"),
    [
        (facebook("message_attachments_media.json")[0], FB_IMAGE, "text/html"),  # .jpg by the URL's path
        (facebook("message_attachments_media.json")[0], FB_IMAGE, "image/jpeg"),  # the header lies too
        (line_message("image", "line"), LINE_IMAGE, "image/jpeg"),  # no extension: the type's, jpg
    ],
    ids=["jpg-url-served-as-html", "jpg-url-served-as-jpeg", "content-api-served-as-jpeg"],
)
def test_a_jpg_whose_bytes_are_html_becomes_unsupported_and_keeps_no_bytes(
    s3: None, http: Any, envelope: Envelope, url: str, content_type: str
) -> None:
    http.get(url, body=HTML, content_type=content_type)
    http.get(FB_SECOND, body=PNG, content_type="image/png")  # the Facebook message's second image, a real PNG
    kept = keeper().keep(envelope, CONVERSATION_ID)

    assert (kept.kind, kept.text) == ("unsupported", UNSUPPORTED_TEXT)
    attachment = kept.attachments[0]
    assert attachment.stored_key is None
    assert attachment.error == "not kept: the bytes are not a jpg file"
    assert kept.data["unsupported"]["reasons"] == ["the bytes are not a jpg file"]
    # No HTML in the bucket; the Facebook message's second image, a real PNG, is kept.
    assert [body for body, _ in stored_objects().values()] == ([PNG] if len(envelope.attachments) == 2 else [])


@pytest.mark.parametrize(
    ("envelope", "url", "body", "served_as", "stored_as"),
    [
        (facebook("message_attachments_media.json")[0], FB_IMAGE, JPEG, "text/html", "image/jpeg"),
        (facebook("message_attachments_media.json")[0], FB_IMAGE, JPEG, "image/jpeg; charset=utf-8", "image/jpeg"),
        (line_message("file"), f"{LINE_DATA}/v2/bot/message/325708/content", TXT, "text/html", "text/plain"),
        (line_message("image", "line"), LINE_IMAGE, PNG, "image/png; name=x.html", "image/png"),
    ],
    ids=["jpg-served-as-html", "jpg-with-parameters", "txt-served-as-html", "content-api-png"],
)
def test_the_stored_content_type_comes_from_the_extension_not_the_server(
    s3: None, http: Any, envelope: Envelope, url: str, body: bytes, served_as: str, stored_as: str
) -> None:
    http.get(url, body=body, content_type=served_as)
    http.get(FB_SECOND, body=PNG, content_type="image/png")
    kept = keeper().keep(envelope, CONVERSATION_ID)
    key = kept.attachments[0].stored_key
    assert key is not None and kept.attachments[0].error is None
    assert stored_objects()[key] == (body, stored_as)


# -- failures ----------------------------------------------------------------------------------------


def test_a_failed_download_is_retried_with_backoff_then_kept(s3: None, http: Any) -> None:
    envelope = line_message("image", "line")
    url = f"{LINE_DATA}/v2/bot/message/354718705033693861/content"
    http.get(url, status=503)
    http.get(url, body=requests.ConnectionError("connection reset"))
    http.get(url, body=JPEG, content_type="image/jpeg")
    sleeps = Sleeps()
    kept = keeper(sleep=sleeps).keep(envelope, CONVERSATION_ID)
    assert kept.attachments[0].stored_key is not None
    assert len(http.calls) == 3
    assert sleeps.seen == [0.5, 1.0]


@pytest.mark.parametrize(
    ("status", "attempts"),
    [(500, 3), (429, 3), (404, 1), (401, 1)],
)
def test_a_download_that_keeps_failing_is_recorded_and_the_message_kept(s3: None, http: Any, status: int, attempts: int) -> None:
    envelope = line_message("image", "line")
    url = f"{LINE_DATA}/v2/bot/message/354718705033693861/content"
    http.get(url, status=status, json={"message": "nope"})
    kept = keeper().keep(envelope, CONVERSATION_ID)
    assert len(http.calls) == attempts
    assert (kept.kind, kept.text) == ("image", None)
    assert kept.attachments[0].stored_key is None
    assert kept.attachments[0].error == f"not fetched after {attempts} attempt(s): {url}: HTTP {status}"
    assert stored_objects() == {}


def test_no_attempt_starts_when_the_run_is_almost_out_of_time(s3: None, http: Any) -> None:
    envelope = line_message("image", "line")
    kept = keeper(time_left=lambda: 5.5).keep(envelope, CONVERSATION_ID)
    assert len(http.calls) == 0
    assert kept.attachments[0].error == "not fetched; no time left in this run after 0 attempt(s)"


def test_a_missing_secret_is_recorded_without_fetching(s3: None, http: Any) -> None:
    kept = keeper(secret_store=FakeSecrets(values={"other": {}})).keep(line_message("image", "line"), CONVERSATION_ID)
    assert len(http.calls) == 0
    assert kept.attachments[0].error == "not fetched: secret switchboard/test/account/line/line-tokyo could not be read"


def test_facebook_media_needs_no_secret_read(s3: None, http: Any) -> None:
    store = FakeSecrets(values={})
    http.get("https://cdn.fbsbx.com/v/t59.2708-21/invoice.pdf", body=b"%PDF", content_type="application/pdf")
    kept = keeper(secret_store=store).keep(facebook("message_attachments_media.json")[3], CONVERSATION_ID)
    assert kept.attachments[0].stored_key is not None
    assert store.reads == []


# -- through the route stage -------------------------------------------------------------------------


def route_deps(conversations: DynamoConversations, attachments: AttachmentKeeper) -> RouteDeps:
    return RouteDeps(
        settings=settings(),
        conversations=conversations,
        crm_queue=RecordingPublisher(),
        clock=lambda: (T0 + 1000) / 1000,
        attachments=attachments,
    )


def test_route_stores_the_message_and_forwards_the_envelope_with_the_stored_key(
    s3: None, http: Any, conversations: DynamoConversations
) -> None:
    http.get(f"{LINE_DATA}/v2/bot/message/354718705033693861/content", body=JPEG, content_type="image/jpeg")
    deps = route_deps(conversations, keeper())
    outcome = route_stage.process(line_message("image", "line"), deps)

    (message,) = conversations.messages(outcome["conversation_id"])
    key = message.attachments[0].stored_key
    assert key is not None and key.startswith(f"conversations/{outcome['conversation_id']}/")
    assert stored_objects()[key][0] == JPEG
    assert isinstance(deps.crm_queue, RecordingPublisher)
    (forwarded,) = deps.crm_queue.published
    assert forwarded.attachments == message.attachments


def test_route_keeps_the_message_when_the_download_fails(s3: None, http: Any, conversations: DynamoConversations) -> None:
    http.get(f"{LINE_DATA}/v2/bot/message/354718705033693861/content", status=500)
    deps = route_deps(conversations, keeper())
    outcome = route_stage.process(line_message("image", "line"), deps)

    (message,) = conversations.messages(outcome["conversation_id"])
    assert message.kind == "image"
    assert message.attachments[0].error is not None and "HTTP 500" in message.attachments[0].error
    assert isinstance(deps.crm_queue, RecordingPublisher)
    assert deps.crm_queue.published[0].attachments[0].error == message.attachments[0].error


def test_route_without_a_keeper_leaves_attachments_unfetched(conversations: DynamoConversations) -> None:
    deps = RouteDeps(settings=settings(), conversations=conversations, crm_queue=RecordingPublisher(), clock=lambda: T0 / 1000)
    envelope = line_message("image", "line")
    outcome = route_stage.process(envelope, deps)
    (message,) = conversations.messages(outcome["conversation_id"])
    assert message.attachments == envelope.attachments


# -- secrets -----------------------------------------------------------------------------------------


def test_no_token_in_errors_or_logs(
    s3: None, http: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logger.registered_handler, "stream", sys.stdout)
    url = f"{LINE_DATA}/v2/bot/message/354718705033693861/content"
    http.get(url, status=500)
    kept = keeper().keep(line_message("image", "line"), CONVERSATION_ID)
    http.get(url, body=requests.ConnectionError(f"boom with Bearer {LINE_TOKEN}"))
    failed = keeper().keep(line_message("image", "line").with_(id="line:line-tokyo:other"), CONVERSATION_ID)

    errors = [kept.attachments[0].error, failed.attachments[0].error]
    assert all(errors)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert [r["message"] for r in records].count("attachment not kept") == 2
    for text in [*errors, *lines, json.dumps(kept.to_dict()), json.dumps(failed.to_dict())]:
        assert LINE_TOKEN not in str(text)
        assert FB_TOKEN not in str(text) and FB_APP_SECRET not in str(text)


def test_a_bucket_that_refuses_fails_the_message_so_sqs_retries_it_whole(aws: None, http: Any) -> None:
    """Not a download failure: nothing is stored and the stage raises, so the same keys are written on the retry."""
    http.get(f"{LINE_DATA}/v2/bot/message/354718705033693861/content", body=JPEG, content_type="image/jpeg")
    with pytest.raises(StoreUnavailable, match="attachments bucket unavailable: NoSuchBucket"):
        keeper().keep(line_message("image", "line"), CONVERSATION_ID)
