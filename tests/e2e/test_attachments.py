"""Attachments and customer names through the whole local pipeline, with a fake platform on a free port.

The module starts :class:`fakes.platform.FakePlatform` (LINE content and profile APIs, Facebook's
User Profile API, plain file URLs) and applies one more configuration document to the running
stack: accounts whose base URLs point at the fake, with small attachment limits. Then it posts
signed webhooks as the platforms would and looks at the result as an admin would, through
``switchboard conversations show`` and the attachments bucket.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from fakes.platform import FakePlatform

from switchboard.channels.facebook import sign_sha256
from switchboard.channels.gbm import build_message
from switchboard.channels.gbm import sign as sign_gbm
from switchboard.channels.line import sign as sign_line
from switchboard.envelope import UNSUPPORTED_TEXT

from ._stack import Stack, dump_config, line_body, new_event_id, new_user

pytestmark = pytest.mark.e2e

LINE, FB, GBM = "e2e-media-line", "e2e-media-fb", "e2e-media-gbm"
PAGE = "104777000000001"
LINE_SECRETS = {"channel_secret": "e2e-media-line-secret-a1a1", "channel_access_token": "e2e-media-line-token-b2b2"}
FB_SECRETS = {
    "app_secret": "e2e-media-fb-app-secret-c3c3",
    "verify_token": "e2e-media-verify",
    "page_access_token": "e2e-media-fb-page-d4d4",
}
GBM_SECRETS = {"client_token": "E2EMEDIAGBMTOKEN"}
LIMITS = {"max_bytes": 2048, "extensions": ["jpg", "jpeg", "png", "txt"]}
JPEG = b"\xff\xd8\xff\xe0" + b"j" * 1200
PNG = b"\x89PNG\r\n\x1a\n" + b"p" * 600


@pytest.fixture(scope="module")
def platform(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.line_token(LINE_SECRETS["channel_access_token"])
        fake.page_token(FB_SECRETS["page_access_token"], FB_SECRETS["app_secret"])
        document = {
            "accounts": [
                {
                    "id": LINE,
                    "channel": "line",
                    "name": "LINE media e2e",
                    "workstream": "media",
                    "api_base_url": fake.url,
                    "data_base_url": fake.url,
                    "attachments": LIMITS,
                    "secrets": LINE_SECRETS,
                },
                {
                    "id": FB,
                    "channel": "facebook",
                    "name": "Facebook media e2e",
                    "page_id": PAGE,
                    "workstream": "media",
                    "graph_base_url": fake.url,
                    "attachments": LIMITS,
                    "secrets": FB_SECRETS,
                },
                {
                    "id": GBM,
                    "channel": "gbm",
                    "name": "GBM media e2e",
                    "brand_id": "BRAND_ID",  # the agent build_message writes by default
                    "agent_id": "AGENT_ID",
                    "workstream": "media",
                    "attachments": LIMITS,
                    "secrets": GBM_SECRETS,
                },
            ],
            "workstreams": [{"id": "media", "fallback_queue": "media"}],
        }
        path = tmp_path_factory.mktemp("media") / "media.yaml"
        path.write_text(dump_config(document))
        applied = stack.cli("apply", str(path)).stdout
        assert f"account {LINE}" in applied and f"account {FB}" in applied, applied
        yield fake


# -- driving -----------------------------------------------------------------------------------------


def post_line(stack: Stack, message: dict[str, Any], user: str) -> None:
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": new_event_id(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": uuid.uuid4().hex,
        "message": message,
    }
    body = line_body(event)
    headers = {"Content-Type": "application/json", "X-Line-Signature": sign_line(LINE_SECRETS["channel_secret"], body)}
    answer = requests.post(f"{stack.url}/webhooks/line/{LINE}", data=body, headers=headers, timeout=10)
    assert (answer.status_code, answer.text) == (200, "{}")


def new_message_id() -> str:
    return str(uuid.uuid4().int % 10**18)


def only_message(stack: Stack, account_id: str, user: str) -> tuple[dict[str, Any], dict[str, Any]]:
    view = stack.wait_conversation(account_id, user)
    (message,) = view["messages"]
    return view, message


def bucket_objects(stack: Stack, prefix: str) -> dict[str, bytes]:
    state = stack.state()
    s3 = boto3.client(
        "s3",
        endpoint_url=state["endpoint_url"],
        region_name=state["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    bucket = state["outputs"]["AttachmentsBucketName"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


# -- LINE --------------------------------------------------------------------------------------------


def test_a_line_image_is_kept_in_s3_listed_on_its_message_and_the_profile_name_shown(
    stack: Stack, platform: FakePlatform
) -> None:
    user, message_id = new_user(), new_message_id()
    platform.line_content(message_id, JPEG, "image/jpeg")
    platform.line_profile(user, "Aiko Tanaka")
    post_line(stack, {"id": message_id, "type": "image", "contentProvider": {"type": "line"}}, user)

    view, message = only_message(stack, LINE, user)
    assert view["customer"] == {"id": user, "name": "Aiko Tanaka"}
    (row,) = stack.conversations_of(LINE, user)
    assert row["customer"]["name"] == "Aiko Tanaka"
    assert message["kind"] == "image"
    (attachment,) = message["attachments"]
    key = attachment["stored_key"]
    assert key.startswith(f"conversations/{view['conversation_id']}/")
    assert (attachment["type"], attachment["name"], attachment["size"]) == ("image", "image.jpg", len(JPEG))
    assert "error" not in attachment
    assert bucket_objects(stack, key) == {key: JPEG}

    # What the fake was asked: the content with the channel access token, once; the profile once.
    (content,) = platform.requests(f"/v2/bot/message/{message_id}/content")
    assert content.headers["authorization"] == f"Bearer {LINE_SECRETS['channel_access_token']}"
    assert len(platform.requests(f"/v2/bot/profile/{user}")) == 1

    shown = stack.cli("conversations", "show", view["conversation_id"]).stdout
    assert "Aiko Tanaka" in shown
    assert f"attachment image    image.jpg  {len(JPEG)} bytes  {key}" in shown
    as_json = stack.cli("conversations", "show", view["conversation_id"], "--json").stdout
    for secret in LINE_SECRETS.values():
        assert secret not in as_json and secret not in shown


def test_the_name_is_looked_up_once_for_the_customers_later_messages(stack: Stack, platform: FakePlatform) -> None:
    user = new_user()
    platform.line_profile(user, "Ken Sato")
    for text in ("first", "second"):
        post_line(stack, {"id": new_message_id(), "type": "text", "text": text}, user)
    view = stack.wait_conversation(LINE, user, messages=2)
    assert view["customer"]["name"] == "Ken Sato"
    assert len(platform.requests(f"/v2/bot/profile/{user}")) == 1


def test_a_disallowed_extension_becomes_unsupported_and_keeps_no_bytes(stack: Stack, platform: FakePlatform) -> None:
    user, message_id = new_user(), new_message_id()
    platform.line_content(message_id, b"MZ" + b"\0" * 100, "application/octet-stream")
    post_line(stack, {"id": message_id, "type": "file", "fileName": "setup.exe", "fileSize": 102}, user)

    view, message = only_message(stack, LINE, user)
    assert (message["kind"], message["text"]) == ("unsupported", UNSUPPORTED_TEXT)
    (attachment,) = message["attachments"]
    assert attachment["stored_key"] is None
    assert attachment["error"] == "not kept: extension 'exe' is not among the account's allowed extensions"
    assert (attachment["type"], attachment["name"]) == ("file", "setup.exe")
    assert platform.requests(f"/v2/bot/message/{message_id}/content") == []
    assert bucket_objects(stack, f"conversations/{view['conversation_id']}/") == {}


def test_an_attachment_over_max_bytes_becomes_unsupported_and_keeps_no_bytes(stack: Stack, platform: FakePlatform) -> None:
    user, message_id = new_user(), new_message_id()
    platform.line_content(message_id, b"\xff\xd8" + b"j" * 5000, "image/jpeg")
    post_line(stack, {"id": message_id, "type": "image", "contentProvider": {"type": "line"}}, user)

    view, message = only_message(stack, LINE, user)
    assert (message["kind"], message["text"]) == ("unsupported", UNSUPPORTED_TEXT)
    assert message["attachments"][0]["error"] == "not kept: over the account's max_bytes 2048"
    assert bucket_objects(stack, f"conversations/{view['conversation_id']}/") == {}


def test_a_failing_download_is_retried_recorded_and_the_message_kept(stack: Stack, platform: FakePlatform) -> None:
    user, message_id = new_user(), new_message_id()
    path = f"/v2/bot/message/{message_id}/content"
    platform.fail(path, status=500, times=10)
    post_line(stack, {"id": message_id, "type": "image", "contentProvider": {"type": "line"}}, user)

    view, message = only_message(stack, LINE, user)
    assert message["kind"] == "image"
    (attachment,) = message["attachments"]
    assert attachment["stored_key"] is None
    assert attachment["error"] == f"not fetched after 3 attempt(s): {platform.url}{path}: HTTP 500"
    assert len(platform.requests(path)) == 3
    assert view["status"] == "open" and view["queue"] == "media"
    # The stack's log said why, without the token the content API was called with.
    log = (stack.home / "local.out").read_text() + (stack.home / "local.err").read_text()
    assert "attachment not kept" in log and f"{path}: HTTP 500" in log
    assert LINE_SECRETS["channel_access_token"] not in log


def test_an_external_provider_url_is_fetched_without_the_token(stack: Stack, platform: FakePlatform) -> None:
    user = new_user()
    url = platform.file(f"/files/{uuid.uuid4().hex}/photo.png", PNG, "image/png")
    post_line(
        stack,
        {"id": new_message_id(), "type": "image", "contentProvider": {"type": "external", "originalContentUrl": url}},
        user,
    )
    _, message = only_message(stack, LINE, user)
    (attachment,) = message["attachments"]
    assert attachment["name"] == "image.png"  # named by type and extension: a URL's path is not the customer's name
    assert bucket_objects(stack, attachment["stored_key"]) == {attachment["stored_key"]: PNG}
    (fetched,) = platform.requests(url.removeprefix(platform.url))
    assert "authorization" not in fetched.headers


# -- Facebook and GBM --------------------------------------------------------------------------------


def post_facebook(stack: Stack, psid: str, message: dict[str, Any]) -> None:
    now = int(time.time() * 1000)
    item = {"sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": now, "message": message}
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": now, "messaging": [item]}]}).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign_sha256(FB_SECRETS["app_secret"], body)}
    answer = requests.post(f"{stack.url}/webhooks/facebook/{FB}", data=body, headers=headers, timeout=10)
    assert (answer.status_code, answer.text) == (200, "EVENT_RECEIVED"), answer.text


def test_a_facebook_image_is_kept_and_the_user_profile_name_shown(stack: Stack, platform: FakePlatform) -> None:
    psid = str(10**15 + uuid.uuid4().int % (9 * 10**15))
    platform.graph_profile(psid, "Peter", "Chang")
    url = platform.file(f"/files/{uuid.uuid4().hex}/cdn.jpg", JPEG, "image/jpeg") + "?_nc_cat=1&oh=00_signed"
    post_facebook(stack, psid, {"mid": "m_" + uuid.uuid4().hex, "attachments": [{"type": "image", "payload": {"url": url}}]})

    view, message = only_message(stack, FB, psid)
    assert view["customer"] == {"id": psid, "name": "Peter Chang"}
    (attachment,) = message["attachments"]
    assert (message["kind"], attachment["name"], attachment["size"]) == ("image", "image.jpg", len(JPEG))
    assert bucket_objects(stack, attachment["stored_key"]) == {attachment["stored_key"]: JPEG}
    (profile,) = platform.requests(f"/{psid}")
    assert profile.query["fields"] == "first_name,last_name"
    assert profile.query["access_token"] == FB_SECRETS["page_access_token"]


def test_a_gbm_name_comes_with_the_message(stack: Stack, platform: FakePlatform) -> None:
    conversation = str(uuid.uuid4())
    body = build_message(conversation, "hello from maps", display_name="Kevin Neubert")
    headers = {"Content-Type": "application/json", "X-Goog-Signature": sign_gbm(GBM_SECRETS["client_token"], body)}
    answer = requests.post(f"{stack.url}/webhooks/gbm/{GBM}", data=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    view = stack.wait_conversation(GBM, conversation)
    assert view["customer"] == {"id": conversation, "name": "Kevin Neubert"}
