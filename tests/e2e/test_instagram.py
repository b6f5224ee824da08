"""Instagram through a local stack of this module's own: Meta's GET check, signed messages, a story reply with
its story kept, names looked up, the fake CRM's ticket, one app's several accounts, and a reply reaching the
fake platform whose read receipt moves its delivery.

The module starts the fake platform (Graph's profiles and the Send API with its windows) and the fake
CRM (Zendesk) before the stack, so the configuration names both from the start.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from switchboard.channels.instagram import GRAPH_VERSION, OBJECT
from switchboard.channels.meta import sign_sha256

from ._stack import Stack, start_stack, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fakes
from fakes.crm import FakeCrm
from fakes.platform import FakePlatform

pytestmark = pytest.mark.e2e

IG, IG_OUTLET = "e2e-ig", "e2e-ig-outlet"
IG_ID, OUTLET_ID = "17841400000000001", "17841400000000002"
SECRETS = {
    "app_secret": "e2e-ig-app-secret-4d4d",
    "verify_token": "e2e-ig-verify-token-3c3c",
    "page_access_token": "e2e-ig-page-token-2b2b",
}
STORY = b"\xff\xd8\xff\xe0" + b"s" * 1200
PROVIDER = "zendesk"


@pytest.fixture(scope="module")
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        fake.page_token(SECRETS["page_access_token"], SECRETS["app_secret"])
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
                "id": IG,
                "channel": "instagram",
                "name": "Instagram e2e",
                "instagram_id": IG_ID,
                "workstream": "ig",
                "graph_base_url": platform.url,
                "attachments": {"max_bytes": 4096, "extensions": ["jpg", "jpeg", "png"]},
                "secrets": SECRETS,
            },
            {  # another Instagram account of the same Meta app: its entries may arrive at the first account's URL
                "id": IG_OUTLET,
                "channel": "instagram",
                "name": "Instagram e2e, outlet",
                "instagram_id": OUTLET_ID,
                "workstream": "ig",
                "graph_base_url": platform.url,
                "secrets": {**SECRETS, "verify_token": "e2e-ig-outlet-verify-1a1a"},
            },
        ],
        "workstreams": [{"id": "ig", "fallback_queue": "instagram"}],
        "crm": crm.config(PROVIDER, default_user={"enabled": True}),
    }
    folder = tmp_path_factory.mktemp("ig-e2e")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with start_stack(path, tmp_path_factory.mktemp("ig-home")) as running:
        yield running


def new_igsid() -> str:
    return str(10**15 + uuid.uuid4().int % (9 * 10**15))


def new_mid() -> str:
    return "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOj" + uuid.uuid4().hex


def meta_bytes(doc: dict[str, Any]) -> bytes:
    """Serialised as Meta sends it (\\uXXXX and \\/ escapes): the signature holds over exactly these bytes."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


def item(igsid: str, account: str = IG_ID, **event: Any) -> dict[str, Any]:
    return {"sender": {"id": igsid}, "recipient": {"id": account}, "timestamp": int(time.time() * 1000), **event}


def body(*entries: tuple[str, list[dict[str, Any]]]) -> bytes:
    now = int(time.time() * 1000)
    return meta_bytes({"object": OBJECT, "entry": [{"id": key, "time": now, "messaging": items} for key, items in entries]})


def post(stack: Stack, raw: bytes, *, account_id: str = IG, signed: bool = True) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = sign_sha256(SECRETS["app_secret"], raw)
    return requests.post(f"{stack.url}/webhooks/instagram/{account_id}", data=raw, headers=headers, timeout=10)


def accepted(answer: requests.Response) -> None:
    assert (answer.status_code, answer.text) == (200, "EVENT_RECEIVED"), answer.text


def ticket_of(crm: FakeCrm, conversation_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        tickets = crm.tickets(PROVIDER, conversation_id)
        return tickets[0] if len(tickets) == 1 else None

    return wait_for(found, f"the {PROVIDER} ticket of {conversation_id}")


def named(stack: Stack, account_id: str, igsid: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        views = stack.conversations_of(account_id, igsid)
        return views[0] if views and views[0]["customer"]["name"] else None

    return wait_for(probe, f"the name of {igsid}")


# -- Meta's subscription check and signatures -------------------------------------------------------------


def test_get_with_the_verify_token_echoes_the_challenge_and_any_other_is_403(stack: Stack) -> None:
    url = f"{stack.url}/webhooks/instagram/{IG}"
    good = {"hub.mode": "subscribe", "hub.challenge": "2036541827", "hub.verify_token": SECRETS["verify_token"]}
    answer = requests.get(url, params=good, timeout=10)
    assert (answer.status_code, answer.text) == (200, "2036541827")
    answer = requests.get(url, params={**good, "hub.verify_token": "wrong"}, timeout=10)
    assert answer.status_code == 403 and "2036541827" not in answer.text


def test_an_unsigned_post_is_401_and_records_nothing(stack: Stack) -> None:
    igsid = new_igsid()
    answer = post(stack, body((IG_ID, [item(igsid, message={"mid": new_mid(), "text": "hi"})])), signed=False)
    assert answer.status_code == 401
    time.sleep(1.0)
    assert stack.conversations_of(IG, igsid) == []


# -- inbound ---------------------------------------------------------------------------------------------------


def test_switchboard_send_instagram_reaches_the_crm_with_the_looked_up_name(
    stack: Stack, platform: FakePlatform, crm: FakeCrm
) -> None:
    igsid = new_igsid()
    platform.instagram_profile(igsid, "Mika Tanaka", "mika.t")
    done = stack.cli("send", "instagram", "--account", IG, "--text", "Do you ship to Osaka?", "--user", igsid)
    assert "200" in done.stdout and "EVENT_RECEIVED" in done.stdout, done.stdout
    view = named(stack, IG, igsid)
    assert (view["channel"], view["customer"]["id"], view["customer"]["name"]) == ("instagram", igsid, "Mika Tanaka")
    shown = stack.show(view["conversation_id"])
    assert [(m["kind"], m["text"]) for m in shown["messages"]] == [("text", "Do you ship to Osaka?")]
    ticket = ticket_of(crm, view["conversation_id"])
    assert any("Do you ship to Osaka?" in text for text in crm.texts(PROVIDER, ticket))
    [lookup, *_] = platform.requests(f"/{GRAPH_VERSION}/{igsid}")
    assert lookup.query["fields"] == "name,username" and lookup.query["appsecret_proof"]


def test_a_story_reply_keeps_the_story_and_an_echo_is_never_the_customers(stack: Stack, platform: FakePlatform) -> None:
    igsid = new_igsid()
    story_url = platform.file(f"/files/story-{igsid}.jpg", STORY, "image/jpeg")
    reply_to = {"story": {"url": story_url, "id": "17900000000000006"}}
    echo = {"sender": {"id": IG_ID}, "recipient": {"id": igsid}, "timestamp": int(time.time() * 1000)}
    echo["message"] = {"mid": new_mid(), "text": "thanks!", "is_echo": True}
    accepted(post(stack, body((IG_ID, [item(igsid, message={"mid": new_mid(), "text": "so nice", "reply_to": reply_to}), echo]))))
    view = stack.wait_stored(IG, igsid)

    def kept() -> dict[str, Any] | None:
        (message,) = stack.show(view["conversation_id"])["messages"]
        return message if message["attachments"] and message["attachments"][0].get("stored_key") else None

    message = wait_for(kept, "the story kept in the attachments bucket")
    assert (message["kind"], message["text"]) == ("text", "so nice")
    assert message["attachments"][0]["type"] == "story"


def test_one_apps_several_accounts_each_entry_is_recorded_under_its_own(stack: Stack) -> None:
    igsid = new_igsid()
    raw = body(
        (IG_ID, [item(igsid, message={"mid": new_mid(), "text": "to the brand"})]),
        (OUTLET_ID, [item(igsid, OUTLET_ID, message={"mid": new_mid(), "text": "to the outlet"})]),
        ("17841400000009999", [item(igsid, "17841400000009999", message={"mid": new_mid(), "text": "to nobody"})]),
    )
    accepted(post(stack, raw))  # at the brand's URL, signed with the app's one secret
    brand, outlet = stack.wait_conversation(IG, igsid), stack.wait_conversation(IG_OUTLET, igsid)
    assert [m["text"] for m in stack.show(brand["conversation_id"])["messages"]] == ["to the brand"]
    assert [m["text"] for m in stack.show(outlet["conversation_id"])["messages"]] == ["to the outlet"]
    assert brand["conversation_id"] != outlet["conversation_id"]


# -- replies -------------------------------------------------------------------------------------------------


def test_a_reply_reaches_instagram_and_its_read_receipt_moves_the_delivery(stack: Stack, platform: FakePlatform) -> None:
    igsid = new_igsid()
    platform.messenger_customer(igsid, int(time.time() * 1000))
    accepted(post(stack, body((IG_ID, [item(igsid, message={"mid": new_mid(), "text": "is it in stock?"})]))))
    conversation_id = stack.wait_conversation(IG, igsid)["conversation_id"]

    stack.cli("reply", conversation_id, "--text", "Yes, sizes M and L.")

    def on_platform() -> Any:
        return [m for m in platform.messenger_sent() if m.psid == igsid] or None

    (sent,) = wait_for(on_platform, "the reply on the fake Instagram")
    assert (sent.text, sent.messaging_type) == ("Yes, sizes M and L.", "RESPONSE")

    def status(expected: str) -> Any:
        def probe() -> dict[str, Any] | None:
            view = stack.show(conversation_id)
            out = [m for m in view["messages"] if m["direction"] == "out"]
            return view if out and out[0]["delivery"]["status"] == expected else None

        return probe

    wait_for(status("sent"), "the reply marked sent")
    accepted(post(stack, body((IG_ID, [item(igsid, read={"mid": sent.message_id})]))))
    view = wait_for(status("read"), "the reply marked read by Instagram's seen receipt")
    assert [m["direction"] for m in view["messages"]] == ["in", "out"]  # receipts are never messages
