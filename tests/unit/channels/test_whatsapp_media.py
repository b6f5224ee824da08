"""WhatsApp media kept by the attachments stage: the media id's node names a short-lived URL, fetched with the same token.

The fake platform plays Graph (``GET /{version}/{media_id}``) and the media host; the keeper is the
route stage's own (:class:`~switchboard.attachments.AttachmentKeeper`) with the local address policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes.platform import FakePlatform
from fakes.ports import FakeSecrets, FakeSettings

from switchboard import outbound_http
from switchboard.attachments import AttachmentKeeper
from switchboard.channels.whatsapp import GRAPH_VERSION, WhatsAppAdapter
from switchboard.envelope import UNSUPPORTED_TEXT, Attachment, Envelope
from switchboard.http_fetch import RequestsFetcher
from switchboard.secret_names import secret_name
from switchboard.settings import Account
from switchboard.web import WebhookRequest

TESTDATA = Path(__file__).resolve().parents[3] / "src" / "switchboard" / "channels" / "testdata" / "whatsapp"
PREFIX = "switchboard/unit"
TOKEN = "EAAJ-media-token-do-not-log"
NUMBER = "106540352242922"
JPEG = b"\xff\xd8\xff\xe0" + b"j" * 900
PDF = b"%PDF-1.7\n" + b"p" * 500
OGG = b"OggS" + b"o" * 700
LIMITS = {"max_bytes": 4096, "extensions": ["jpg", "jpeg", "pdf", "ogg", "webp"]}
CONVERSATION = "018bcfe56800aaaabbbbccccdddd"


@dataclass
class Blobs:
    objects: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)

    def put(self, key: str, body: bytes, *, content_type: str | None) -> None:
        self.objects[key] = (body, content_type)


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.whatsapp_number(NUMBER, TOKEN)
        yield fake


def keeper(
    platform: FakePlatform, blobs: Blobs, *, token: str = TOKEN, limits: dict[str, Any] | None = None, graph: str | None = None
) -> AttachmentKeeper:
    account = Account(
        id="wa",
        channel="whatsapp",
        workstream="w",
        options={"phone_number_id": NUMBER, "graph_base_url": graph or platform.url, "attachments": limits or LIMITS},
    )
    return AttachmentKeeper(
        settings=FakeSettings(accounts={"wa": account}),
        secrets=FakeSecrets(values={secret_name(PREFIX, "account", "wa", "whatsapp"): {"access_token": token}}),
        secrets_prefix=PREFIX,
        fetcher=RequestsFetcher(policy=outbound_http.LOCAL),
        blobs=blobs,
        sleep=lambda seconds: None,
    )


def envelope(file: str) -> Envelope:
    account = Account(id="wa", channel="whatsapp", workstream="w", options={"phone_number_id": NUMBER})
    request = WebhookRequest("POST", "/", {}, {}, {}, (TESTDATA / file).read_bytes(), "r")
    (parsed,) = WhatsAppAdapter().parse(request, account, received_at=1, correlation_id="c").envelopes
    return parsed


def media_id(env: Envelope) -> str:
    (attachment,) = env.attachments
    assert attachment.content_id
    return attachment.content_id


@pytest.mark.parametrize(
    ("file", "body", "content_type", "stored_type", "name"),
    [
        ("image.json", JPEG, "image/jpeg", "image/jpeg", "image.jpg"),
        ("document.json", PDF, "application/pdf", "application/pdf", "invoice-8812.pdf"),
        ("audio_voice_note.json", OGG, "audio/ogg; codecs=opus", "audio/ogg", "audio.ogg"),
    ],
)
def test_media_is_located_by_id_then_fetched_with_the_token_and_kept(
    platform: FakePlatform, file: str, body: bytes, content_type: str, stored_type: str, name: str
) -> None:
    env = envelope(file)
    platform.whatsapp_media(media_id(env), body, content_type, access_token=TOKEN)
    blobs = Blobs()
    kept = keeper(platform, blobs).keep(env, CONVERSATION)
    (attachment,) = kept.attachments
    assert attachment.error is None, attachment.error
    assert attachment.stored_key and attachment.stored_key.startswith(f"conversations/{CONVERSATION}/")
    assert attachment.stored_key.endswith(name)
    assert (attachment.size, kept.kind) == (len(body), env.kind)
    assert blobs.objects[attachment.stored_key] == (body, stored_type)
    node, media = platform.requests(f"/{GRAPH_VERSION}/{media_id(env)}"), platform.requests(f"/whatsapp-media/{media_id(env)}")
    assert len(node) == len(media) == 1
    assert node[0].headers["authorization"] == media[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_node_that_keeps_failing_is_recorded_and_the_message_kept(platform: FakePlatform) -> None:
    env = envelope("image.json")
    platform.whatsapp_media(media_id(env), JPEG, "image/jpeg", access_token=TOKEN)
    platform.fail(f"/{GRAPH_VERSION}/{media_id(env)}", 500, times=3)
    blobs = Blobs()
    kept = keeper(platform, blobs).keep(env, CONVERSATION)
    (attachment,) = kept.attachments
    assert attachment.stored_key is None and attachment.error
    assert attachment.error.startswith("media not located: not fetched after 3 attempt(s)")
    assert (kept.kind, kept.text) == ("image", env.text)
    assert blobs.objects == {} and platform.requests(f"/whatsapp-media/{media_id(env)}") == []


def test_a_failed_node_is_retried_then_the_media_kept(platform: FakePlatform) -> None:
    env = envelope("image.json")
    platform.whatsapp_media(media_id(env), JPEG, "image/jpeg", access_token=TOKEN)
    platform.fail(f"/{GRAPH_VERSION}/{media_id(env)}", 503, times=2)
    (attachment,) = keeper(platform, Blobs()).keep(env, CONVERSATION).attachments
    assert attachment.stored_key and attachment.error is None
    assert len(platform.requests(f"/{GRAPH_VERSION}/{media_id(env)}")) == 3


@pytest.mark.parametrize("answer", [{"id": "1"}, {"url": "ftp://host/x"}, {"url": 7}, ["https://host/x"]])
def test_a_node_that_names_no_url_is_recorded(platform: FakePlatform, answer: Any) -> None:
    env = envelope("image.json")
    path = f"/{GRAPH_VERSION}/{media_id(env)}"
    platform.fail(path, 200, body=answer)
    (attachment,) = keeper(platform, Blobs()).keep(env, CONVERSATION).attachments
    assert attachment.stored_key is None
    assert attachment.error == f"media not located: {platform.url}{path} named no URL"


def test_a_node_that_is_not_json_is_recorded(platform: FakePlatform) -> None:
    env = envelope("image.json")
    # Graph played by a plain file: the node answers text, not JSON.
    platform.file(f"/files/{GRAPH_VERSION}/{media_id(env)}", b"<html>login</html>", "text/html")
    blobs = Blobs()
    kept = keeper(platform, blobs, graph=platform.url + "/files").keep(env, CONVERSATION)
    (attachment,) = kept.attachments
    assert attachment.error == f"media not located: {platform.url}/files/{GRAPH_VERSION}/{media_id(env)} did not answer JSON"
    assert blobs.objects == {}


def test_a_wrong_token_keeps_nothing_and_is_never_quoted(platform: FakePlatform) -> None:
    env = envelope("image.json")
    platform.whatsapp_media(media_id(env), JPEG, "image/jpeg", access_token=TOKEN)
    (attachment,) = keeper(platform, Blobs(), token="EAAJ-some-other-token").keep(env, CONVERSATION).attachments
    assert attachment.stored_key is None and attachment.error and "401" in attachment.error
    assert "EAAJ" not in attachment.error


def test_media_over_the_accounts_limits_keeps_no_bytes_and_is_unsupported(platform: FakePlatform) -> None:
    env = envelope("image.json")
    platform.whatsapp_media(media_id(env), JPEG, "image/jpeg", access_token=TOKEN)
    blobs = Blobs()
    kept = keeper(platform, blobs, limits={"max_bytes": 100, "extensions": ["jpg"]}).keep(env, CONVERSATION)
    assert (kept.kind, kept.text) == ("unsupported", UNSUPPORTED_TEXT)
    assert kept.data["unsupported"]["kind"] == "image" and kept.data["unsupported"]["text"] == env.text
    assert blobs.objects == {}


def test_a_type_the_account_does_not_allow_keeps_no_bytes(platform: FakePlatform) -> None:
    env = envelope("video.json")
    platform.whatsapp_media(media_id(env), b"\x00\x00\x00\x18ftypmp42" + b"v" * 100, "video/mp4", access_token=TOKEN)
    blobs = Blobs()
    kept = keeper(platform, blobs).keep(env, CONVERSATION)
    assert kept.kind == "unsupported" and blobs.objects == {}
    (attachment,) = kept.attachments
    assert attachment.error == "not kept: video/mp4 is not among the account's allowed extensions"


def test_the_request_for_the_node_and_for_the_bytes() -> None:
    adapter = WhatsAppAdapter()
    account = Account(id="wa", channel="whatsapp", workstream="w", options={"phone_number_id": NUMBER})
    attachment = Attachment(type="image", content_id="1003383421387256")
    node = adapter.attachment_request(attachment, account, {"access_token": TOKEN})
    assert node is not None and node.locates
    assert node.url == f"https://graph.facebook.com/{GRAPH_VERSION}/1003383421387256"
    assert dict(node.headers) == {"Authorization": f"Bearer {TOKEN}"} and not node.params
    answer = json.loads(json.dumps({"url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=3"}))
    media = adapter.attachment_location(answer, attachment, account, {"access_token": TOKEN})
    assert media is not None and not media.locates
    assert media.url == answer["url"] and dict(media.headers) == {"Authorization": f"Bearer {TOKEN}"}
    assert media.target == "https://lookaside.fbsbx.com/whatsapp_business/attachments/"  # what logs may name
