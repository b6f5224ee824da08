"""WhatsApp through a local stack of this module's own: Meta's GET check, signed messages with media kept,
the fake CRM's ticket, statuses as receipts, and a reply reaching the fake platform.

The module starts the fake platform (Graph's media nodes and the messages endpoint with its 24-hour
window) and the fake CRM (Zendesk) before the stack, so the configuration names both from the start.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml

from switchboard.channels import meta
from switchboard.channels.whatsapp import GRAPH_VERSION, OBJECT

from ._stack import Stack, start_stack, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fakes
from fakes.crm import FakeCrm
from fakes.platform import FakePlatform

pytestmark = pytest.mark.e2e

WA, WA_SALES = "e2e-wa", "e2e-wa-sales"
NUMBER, SALES_NUMBER = "106540352242922", "106540352242999"
SECRETS = {
    "app_secret": "e2e-wa-app-secret-9c9c",
    "verify_token": "e2e-wa-verify-token-8b8b",
    "access_token": "e2e-wa-access-token-7a7a",
}
SALES_TOKEN = "e2e-wa-sales-token-5e5e"
JPEG = b"\xff\xd8\xff\xe0" + b"w" * 1500
PROVIDER = "zendesk"


@pytest.fixture(scope="module")
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.whatsapp_number(NUMBER, SECRETS["access_token"])
        yield fake


@pytest.fixture(scope="module")
def crm() -> Iterator[FakeCrm]:
    with FakeCrm() as fake:
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture(scope="module")
def stack(platform: FakePlatform, crm: FakeCrm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's own stack (it overrides the session's): the CRM is global to a stack."""
    config = {
        "accounts": [
            {
                "id": WA,
                "channel": "whatsapp",
                "name": "WhatsApp e2e",
                "phone_number_id": NUMBER,
                "workstream": "wa",
                "graph_base_url": platform.url,
                "attachments": {"max_bytes": 4096, "extensions": ["jpg", "jpeg", "png", "pdf"]},
                "secrets": SECRETS,
            },
            {  # another number of the same Meta app: its changes may arrive at the first account's URL
                "id": WA_SALES,
                "channel": "whatsapp",
                "name": "WhatsApp e2e, sales",
                "phone_number_id": SALES_NUMBER,
                "workstream": "wa",
                "graph_base_url": platform.url,
                "reengage_template": {"name": "reopen_chat", "language": "en"},
                "secrets": {**SECRETS, "verify_token": "e2e-wa-sales-verify-6d6d", "access_token": SALES_TOKEN},
            },
        ],
        "workstreams": [{"id": "wa", "fallback_queue": "whatsapp"}],
        "crm": crm.config(PROVIDER, default_user={"enabled": True}),
    }
    folder = tmp_path_factory.mktemp("wa-e2e")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with start_stack(path, tmp_path_factory.mktemp("wa-home")) as running:
        yield running


def new_wa_id() -> str:
    return "4477009" + str(uuid.uuid4().int % 10**5).zfill(5)


def new_wamid() -> str:
    return "wamid." + uuid.uuid4().hex.upper()


def meta_bytes(doc: dict[str, Any]) -> bytes:
    """Serialised as Meta sends it (\\uXXXX and \\/ escapes): the signature holds over exactly these bytes."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


def value(number: str = NUMBER, **fields: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
        **fields,
    }


def body(*values: dict[str, Any]) -> bytes:
    changes = [{"value": v, "field": "messages"} for v in values]
    return meta_bytes({"object": OBJECT, "entry": [{"id": "102290129340398", "changes": changes}]})


def message(
    wa_id: str, mtype: str, detail: dict[str, Any], *, name: str = "Ana Lima", wamid: str | None = None, number: str = NUMBER
) -> dict[str, Any]:
    return value(
        number,
        contacts=[{"profile": {"name": name}, "wa_id": wa_id}],
        messages=[{"from": wa_id, "id": wamid or new_wamid(), "timestamp": str(int(time.time())), "type": mtype, mtype: detail}],
    )


def post(stack: Stack, raw: bytes, *, signed: bool = True) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = meta.sign_sha256(SECRETS["app_secret"], raw)
    return requests.post(f"{stack.url}/webhooks/whatsapp/{WA}", data=raw, headers=headers, timeout=10)


def accepted(answer: requests.Response) -> None:
    assert (answer.status_code, answer.text) == (200, "EVENT_RECEIVED"), answer.text


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


def ticket_of(crm: FakeCrm, conversation_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        tickets = crm.tickets(PROVIDER, conversation_id)
        return tickets[0] if len(tickets) == 1 else None

    return wait_for(found, f"the {PROVIDER} ticket of {conversation_id}")


# -- Meta's subscription check ------------------------------------------------------------------------


def test_get_with_the_verify_token_echoes_the_challenge_and_any_other_is_403(stack: Stack) -> None:
    url = f"{stack.url}/webhooks/whatsapp/{WA}"
    good = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": SECRETS["verify_token"]}
    answer = requests.get(url, params=good, timeout=10)
    assert (answer.status_code, answer.text) == (200, "1158201444")
    assert answer.headers["Content-Type"].startswith("text/plain")
    answer = requests.get(url, params={**good, "hub.verify_token": "wrong"}, timeout=10)
    assert answer.status_code == 403 and "1158201444" not in answer.text


def test_an_unsigned_post_is_401_and_records_nothing(stack: Stack) -> None:
    wa_id = new_wa_id()
    answer = post(stack, body(message(wa_id, "text", {"body": "hi"})), signed=False)
    assert answer.status_code == 401
    time.sleep(1.0)
    assert stack.conversations_of(WA, wa_id) == []


# -- inbound --------------------------------------------------------------------------------------------


def test_switchboard_send_whatsapp_reaches_the_crm_named_as_whatsapp_names_the_customer(stack: Stack, crm: FakeCrm) -> None:
    wa_id = new_wa_id()
    done = stack.cli("send", "whatsapp", "--account", WA, "--text", "Is my order on its way?", "--user", wa_id)
    assert "200" in done.stdout and "EVENT_RECEIVED" in done.stdout, done.stdout
    view = stack.wait_conversation(WA, wa_id)
    assert (view["channel"], view["customer"]["id"], view["customer"]["name"]) == ("whatsapp", wa_id, "Demo Customer")
    assert [(m["kind"], m["text"]) for m in view["messages"]] == [("text", "Is my order on its way?")]
    ticket = ticket_of(crm, view["conversation_id"])
    assert any("Is my order on its way?" in text for text in crm.texts(PROVIDER, ticket))
    assert view["crm"]["ticket_id"] and view["crm"]["contact_id"]


def test_an_image_is_fetched_by_media_id_into_the_bucket_and_written_to_the_crm(
    stack: Stack, platform: FakePlatform, crm: FakeCrm
) -> None:
    wa_id, media_id = new_wa_id(), str(uuid.uuid4().int % 10**16)
    platform.whatsapp_media(media_id, JPEG, "image/jpeg", access_token=SECRETS["access_token"])
    detail = {"caption": "the dent", "mime_type": "image/jpeg", "sha256": "x", "id": media_id}
    accepted(post(stack, body(message(wa_id, "image", detail))))
    view = stack.wait_conversation(WA, wa_id)
    (shown,) = view["messages"]
    assert (shown["kind"], shown["text"]) == ("image", "the dent")
    (attachment,) = shown["attachments"]
    assert attachment.get("error") is None and attachment["stored_key"], attachment
    assert bucket_objects(stack, attachment["stored_key"]) == {attachment["stored_key"]: JPEG}
    node = platform.requests(f"/{GRAPH_VERSION}/{media_id}")
    assert node and node[0].headers["authorization"] == f"Bearer {SECRETS['access_token']}"
    ticket = ticket_of(crm, view["conversation_id"])
    assert any("the dent" in text for text in crm.texts(PROVIDER, ticket))


def test_a_repeated_message_and_a_redelivery_are_stored_once(stack: Stack) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    once = message(wa_id, "text", {"body": "only once"}, wamid=wamid)
    twice = value(contacts=once["contacts"], messages=once["messages"] * 2)
    accepted(post(stack, body(twice)))
    accepted(post(stack, body(once)))
    view = stack.wait_conversation(WA, wa_id)
    time.sleep(1.5)  # a second copy would have been routed by now
    assert [m["text"] for m in stack.show(view["conversation_id"])["messages"]] == ["only once"]


def test_one_apps_several_numbers_each_change_is_recorded_under_its_own_account(stack: Stack) -> None:
    wa_id = new_wa_id()
    ours = message(wa_id, "text", {"body": "to support"})
    theirs = message(wa_id, "text", {"body": "to sales"}, number=SALES_NUMBER)
    nobodys = message(wa_id, "text", {"body": "to nobody"}, number="106540352240000")
    accepted(post(stack, body(ours, theirs, nobodys)))  # at support's URL, signed with the app's one secret
    support, sales = stack.wait_conversation(WA, wa_id), stack.wait_conversation(WA_SALES, wa_id)
    assert [m["text"] for m in support["messages"]] == ["to support"]
    assert [m["text"] for m in sales["messages"]] == ["to sales"]
    assert support["conversation_id"] != sales["conversation_id"]


# -- replies ----------------------------------------------------------------------------------------------


def test_a_reply_reaches_whatsapp_and_statuses_move_its_delivery_never_becoming_messages(
    stack: Stack, platform: FakePlatform
) -> None:
    wa_id = new_wa_id()
    platform.whatsapp_customer(wa_id, int(time.time() * 1000))
    accepted(post(stack, body(message(wa_id, "text", {"body": "can you help?"}))))
    conversation_id = stack.wait_conversation(WA, wa_id)["conversation_id"]

    stack.cli("reply", conversation_id, "--text", "Of course, one moment.")

    def delivered_to_platform() -> Any:
        sent = [s for s in platform.whatsapp_sent() if s.to == wa_id]
        return sent or None

    (sent,) = wait_for(delivered_to_platform, "the reply on the fake WhatsApp")
    assert (sent.phone_number_id, sent.type, sent.message["text"]["body"]) == (NUMBER, "text", "Of course, one moment.")

    def status(expected: str) -> Any:
        def probe() -> dict[str, Any] | None:
            view = stack.show(conversation_id)
            out = [m for m in view["messages"] if m["direction"] == "out"]
            return view if out and out[0]["delivery"]["status"] == expected else None

        return probe

    wait_for(status("sent"), "the reply marked sent")
    now = str(int(time.time()))
    statuses = [{"id": sent.wamid, "status": s, "timestamp": now, "recipient_id": wa_id} for s in ("delivered", "read")]
    accepted(post(stack, body(value(statuses=statuses))))
    view = wait_for(status("read"), "the reply marked read by WhatsApp's statuses")
    assert [m["direction"] for m in view["messages"]] == ["in", "out"]  # receipts are never messages


def test_a_reply_outside_24_hours_sends_the_template_and_waits_then_goes_when_the_customer_answers(
    stack: Stack, platform: FakePlatform
) -> None:
    platform.whatsapp_number(SALES_NUMBER, SALES_TOKEN)
    wa_id = new_wa_id()
    two_days_ago = int(time.time()) - 2 * 24 * 3600
    platform.whatsapp_customer(wa_id, two_days_ago * 1000)
    old = message(wa_id, "text", {"body": "anyone there?"}, number=SALES_NUMBER)
    old["messages"][0]["timestamp"] = str(two_days_ago)
    accepted(post(stack, body(old)))
    conversation_id = stack.wait_conversation(WA_SALES, wa_id)["conversation_id"]

    stack.cli("reply", conversation_id, "--text", "Sorry for the wait, how can we help?")
    stack.cli("reply", conversation_id, "--text", "We are here until 6 pm.")

    def sent_to_customer() -> list[Any]:
        return [s for s in platform.whatsapp_sent() if s.to == wa_id]

    (template,) = wait_for(lambda: sent_to_customer() or None, "the re-engagement template")
    assert (template.type, template.message["template"]["name"]) == ("template", "reopen_chat")

    def waiting() -> list[dict[str, Any]] | None:
        out = [m for m in stack.show(conversation_id)["messages"] if m["direction"] == "out"]
        held = [m for m in out if m["delivery"]["status"] == "pending" and (m["delivery"]["error"] or "").startswith("awaiting")]
        return out if len(held) == 2 else None

    wait_for(waiting, "both replies waiting for the customer")
    time.sleep(1)
    assert len(sent_to_customer()) == 1  # the second reply waits behind the first: no second template

    platform.whatsapp_customer(wa_id, int(time.time() * 1000))
    accepted(post(stack, body(message(wa_id, "text", {"body": "yes, my order"}, number=SALES_NUMBER))))

    def both_sent() -> list[Any] | None:
        texts = [s.message.get("text", {}).get("body") for s in sent_to_customer() if s.type == "text"]
        return texts if len(texts) == 2 else None

    texts = wait_for(both_sent, "the waiting replies sent in order once the customer answered")
    assert texts == ["Sorry for the wait, how can we help?", "We are here until 6 pm."]
    out = [m for m in stack.show(conversation_id)["messages"] if m["direction"] == "out"]
    wait_for(
        lambda: (
            all(m["delivery"]["status"] == "sent" for m in stack.show(conversation_id)["messages"] if m["direction"] == "out")
            or None
        ),
        "both replies marked sent",
    )
    assert [m["text"] for m in out] == texts
