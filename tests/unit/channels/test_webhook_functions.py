"""The webhook_facebook and webhook_gbm Lambda handlers on moto: API Gateway events in, SQS messages out.

What only the whole handler shows: secrets and settings read from the stack's own resources, raw
(and base64-encoded) bodies verified before parsing, the answer given only once SQS has every
envelope, and no token or secret in any log line even when Powertools is told to log events.
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.template import Plan, plan
from switchboard.aws import clients
from switchboard.aws.publisher import SqsPublisher
from switchboard.aws.settings_store import DynamoSettings
from switchboard.channels.facebook import build_message as build_fb_message
from switchboard.channels.facebook import sign_sha1, sign_sha256
from switchboard.channels.gbm import build_message
from switchboard.channels.gbm import sign as sign_gbm
from switchboard.envelope import Envelope
from switchboard.observability import logger

ROOT = Path(__file__).resolve().parents[3]
TESTDATA = ROOT / "src" / "switchboard" / "channels" / "testdata"
PAGE = "104123456789012"  # the page of the recorded Facebook payloads
FB_SECRETS = {"app_secret": "fb-APP-secret-0a1b", "verify_token": "fb-VERIFY-token-2c3d", "page_access_token": "fb-PAGE-4e5f"}
GBM_SECRETS = {"client_token": "GBMCLIENTTOKEN42", "partner_key": "gbm-PARTNER-key-6a7b"}
SECRET_VALUES = [*FB_SECRETS.values(), *GBM_SECRETS.values()]
BRAND = "85851e0e-8406-4812-8d15-53feecfa3b84"  # the brand and agent of the realistic recorded GBM payloads
GBM_AGENTS = {
    "gbm": "bc69bbee-878a-4cda-a400-bec9311040e7",
    "gbm-partner": "5e1f0b7a-partner-agent",
    "gbm-partner-b": "9c2d4e6f-another-agent",  # same partner key as gbm-partner: Google signs for both with it
}


class LambdaContext:
    function_name = "webhook"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:webhook"
    aws_request_id = "req-lambda-1"


@dataclass
class Function:
    app: ModuleType
    queue_url: str

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self.app.handler(event, LambdaContext())
        return answer

    def enqueued(self) -> list[tuple[str, Envelope]]:
        """(message group, envelope) of everything on the inbound queue, in queue order."""
        sqs, out = boto3.client("sqs"), []
        while got := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages"):
            out += [(m["Attributes"]["MessageGroupId"], Envelope.from_json(m["Body"])) for m in got]
        return out


@functools.cache
def _plan() -> Plan:
    return plan(ROOT / "template.yaml", stack="unit", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=30)


@pytest.fixture
def aws_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",  # an admin debugging: the handlers must still not log events
    }.items():
        monkeypatch.setenv(name, value)
    clients.client.cache_clear()
    with mock_aws():
        p = _plan()
        # Only what an edge function touches: the settings table, the inbound queue (and its dead-letter queue).
        boto3.client("dynamodb").create_table(**p.tables["SettingsTable"]["create"])
        sqs = boto3.client("sqs")
        for logical in ("InboundDeadLetterQueue", "InboundQueue"):
            queue = p.queues[logical]
            url = sqs.create_queue(QueueName=queue["name"], Attributes=queue["attributes"])["QueueUrl"]
        env = {**p.functions["WebhookFacebookFunction"].env, "INBOUND_QUEUE_URL": url}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = DynamoSettings(env["SETTINGS_TABLE"], ttl_seconds=0)
        sm = boto3.client("secretsmanager")
        accounts: list[tuple[dict[str, Any], dict[str, str]]] = [
            ({"id": "fb", "channel": "facebook", "page_id": PAGE, "allow_sha1": False}, FB_SECRETS),
            ({"id": "fb-sha1", "channel": "facebook", "page_id": PAGE, "allow_sha1": True}, FB_SECRETS),
            ({"id": "gbm", "channel": "gbm", "signing_key": "client_token"}, GBM_SECRETS),
            ({"id": "gbm-partner", "channel": "gbm", "signing_key": "partner_key"}, GBM_SECRETS),
            ({"id": "gbm-partner-b", "channel": "gbm", "signing_key": "partner_key"}, GBM_SECRETS),
        ]
        for doc, secrets in accounts:
            agent = {"brand_id": BRAND, "agent_id": GBM_AGENTS[doc["id"]]} if doc["channel"] == "gbm" else {}
            settings.put("account", doc["id"], {**doc, **agent, "workstream": "social", "enabled": True})
            name = f"{env['SECRETS_PREFIX']}/account/{doc['channel']}/{doc['id']}"
            sm.create_secret(Name=name, SecretString=json.dumps(secrets))
        yield env
    clients.client.cache_clear()


def _function(name: str, env: dict[str, str]) -> Function:
    # Reloaded so the module's init (clients, decorators reading POWERTOOLS_*) runs inside this moto.
    app = importlib.reload(importlib.import_module(f"functions.{name}.app"))
    return Function(app, env["INBOUND_QUEUE_URL"])


@pytest.fixture
def facebook(aws_stack: dict[str, str]) -> Function:
    return _function("webhook_facebook", aws_stack)


@pytest.fixture
def gbm(aws_stack: dict[str, str]) -> Function:
    return _function("webhook_gbm", aws_stack)


def api_event(
    channel: str,
    account_id: str,
    *,
    method: str = "POST",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    b64: bool = False,
) -> dict[str, Any]:
    return {
        "resource": f"/webhooks/{channel}/{{account_id}}",
        "path": f"/webhooks/{channel}/{account_id}",
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "pathParameters": {"account_id": account_id},
        "queryStringParameters": query,
        "requestContext": {"requestId": "apigw-req-7"},
        "body": (base64.b64encode(body).decode() if b64 else body.decode("utf-8")) if body else None,
        "isBase64Encoded": b64,
    }


def fb_post(account_id: str, body: bytes, *, b64: bool = False, headers: dict[str, str] | None = None) -> dict[str, Any]:
    signed = {"X-Hub-Signature-256": sign_sha256(FB_SECRETS["app_secret"], body)} if headers is None else headers
    return api_event("facebook", account_id, body=body, headers=signed, b64=b64)


def gbm_post(account_id: str, body: bytes, key: str | None = "client_token", *, b64: bool = False) -> dict[str, Any]:
    headers = {"X-Goog-Signature": sign_gbm(GBM_SECRETS[key], body)} if key else {}
    return api_event("gbm", account_id, body=body, headers=headers, b64=b64)


def gbm_message(account_id: str, conversation: str, text: str, message_id: str | None = None) -> bytes:
    """A user message for ``account_id``'s agent, as Google sends it."""
    return build_message(conversation, text, brand_id=BRAND, agent_id=GBM_AGENTS[account_id], message_id=message_id)


def answer_of(response: dict[str, Any]) -> tuple[int, str, str]:
    return response["statusCode"], response["headers"]["Content-Type"], response["body"]


# -- Facebook ---------------------------------------------------------------------------------------


def test_facebook_get_with_the_verify_token_echoes_the_challenge(facebook: Function) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": FB_SECRETS["verify_token"]}
    answer = facebook.invoke(api_event("facebook", "fb", method="GET", query=query))
    assert answer_of(answer) == (200, "text/plain", "1158201444")
    assert facebook.enqueued() == []


def test_facebook_any_other_get_is_403(facebook: Function) -> None:
    for query in (
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "not-it"},
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": FB_SECRETS["app_secret"]},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": FB_SECRETS["verify_token"]},
        {"hub.mode": "subscribe", "hub.verify_token": FB_SECRETS["verify_token"]},
        None,
    ):
        status, content_type, body = answer_of(facebook.invoke(api_event("facebook", "fb", method="GET", query=query)))
        assert (status, content_type, json.loads(body)["error"]) == (403, "application/json", "forbidden"), query
        assert all(value not in body for value in SECRET_VALUES)


@pytest.mark.parametrize("b64", [False, True], ids=["text-body", "base64-body"])
def test_facebook_batch_is_enqueued_whole_then_event_received(facebook: Function, b64: bool) -> None:
    body = (TESTDATA / "facebook" / "batched_2x3.json").read_bytes()
    answer = facebook.invoke(fb_post("fb", body, b64=b64))
    assert answer_of(answer) == (200, "text/plain", "EVENT_RECEIVED")
    enqueued = facebook.enqueued()
    # SQS keeps order within a message group (one customer); the two customers' groups may interleave.
    assert sorted(e.id for _, e in enqueued) == [f"facebook:fb:m_batch_{i}_{j}" for i in range(2) for j in range(3)]
    by_group: dict[str, list[str]] = {}
    for group, envelope in enqueued:
        by_group.setdefault(group, []).append(envelope.id)
    assert by_group == {
        "facebook:fb:6789012345678901": [f"facebook:fb:m_batch_{e}_{i}" for e in range(2) for i in (0, 2)],
        "facebook:fb:7890123456789012": [f"facebook:fb:m_batch_{e}_1" for e in range(2)],
    }
    assert {e.correlation_id for _, e in enqueued} == {"apigw-req-7"}


def test_facebook_signature_is_over_the_raw_escaped_bytes(facebook: Function) -> None:
    body = build_fb_message(PAGE, "6789012345678901", "\u00e9t\u00e9 / okay", mid="m_escaped")
    assert b"\\u00e9t\\u00e9 \\/ okay" in body  # Meta's escapes, which re-serialising would lose
    reserialised = json.dumps(json.loads(body)).encode()
    wrong = facebook.invoke(
        fb_post("fb", body, headers={"X-Hub-Signature-256": sign_sha256(FB_SECRETS["app_secret"], reserialised)})
    )
    assert wrong["statusCode"] == 401
    assert facebook.invoke(fb_post("fb", body))["statusCode"] == 200
    ((_, envelope),) = facebook.enqueued()
    assert (envelope.id, envelope.text) == ("facebook:fb:m_escaped", "\u00e9t\u00e9 / okay")


def test_facebook_sha1_only_needs_allow_sha1(facebook: Function) -> None:
    body = (TESTDATA / "facebook" / "message_text_quick_reply.json").read_bytes()
    legacy = {"X-Hub-Signature": sign_sha1(FB_SECRETS["app_secret"], body)}
    refused = facebook.invoke(fb_post("fb", body, headers=legacy))
    assert (refused["statusCode"], json.loads(refused["body"])["error"]) == (401, "invalid_signature")
    assert facebook.enqueued() == []
    assert facebook.invoke(fb_post("fb-sha1", body, headers=legacy))["statusCode"] == 200
    assert [e.account_id for _, e in facebook.enqueued()] == ["fb-sha1"]


def test_facebook_echo_and_other_page_enqueue_nothing_but_are_acknowledged(facebook: Function) -> None:
    for name in ("echo.json", "other_page.json"):
        answer = facebook.invoke(fb_post("fb", (TESTDATA / "facebook" / name).read_bytes()))
        assert answer_of(answer) == (200, "text/plain", "EVENT_RECEIVED")
    assert [e.id for _, e in facebook.enqueued()] == ["facebook:fb:m_our_page"]


def test_facebook_is_not_acknowledged_unless_sqs_took_everything(facebook: Function, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = facebook.queue_url.rsplit("/", 1)[0] + "/no-such-queue.fifo"
    monkeypatch.setattr(facebook.app.DEPS, "publisher", SqsPublisher(missing))
    answer = facebook.invoke(fb_post("fb", (TESTDATA / "facebook" / "batched_2x3.json").read_bytes()))
    status, content_type, body = answer_of(answer)
    assert (status, content_type, json.loads(body)["error"]) == (503, "application/json", "unavailable")
    assert "EVENT_RECEIVED" not in body


def test_facebook_not_a_page_webhook_is_400(facebook: Function) -> None:
    answer = facebook.invoke(fb_post("fb", b'{"object":"instagram","entry":[]}'))
    assert (answer["statusCode"], json.loads(answer["body"])["error"]) == (400, "bad_request")
    assert facebook.enqueued() == []


# -- GBM --------------------------------------------------------------------------------------------


def test_gbm_handshake_answers_the_secret(gbm: Function) -> None:
    body = json.dumps({"clientToken": GBM_SECRETS["client_token"], "secret": "0123456789"}).encode()
    wrong = json.dumps({"clientToken": "NOTTHECLIENTTOKN", "secret": "0123456789"}).encode()
    for account_id in ("gbm", "gbm-partner"):
        for b64 in (False, True):
            assert answer_of(gbm.invoke(gbm_post(account_id, body, key=None, b64=b64))) == (200, "text/plain", "0123456789")
            status, _, text = answer_of(gbm.invoke(gbm_post(account_id, wrong, key=None, b64=b64)))
            assert (status, json.loads(text)["error"]) == (401, "invalid_client_token")
            assert "0123456789" not in text
    assert gbm.enqueued() == []


def test_gbm_verifies_with_the_key_the_account_names(gbm: Function) -> None:
    cases = [
        ("gbm", "client_token", 200),
        ("gbm", "partner_key", 401),
        ("gbm-partner", "partner_key", 200),
        ("gbm-partner", "client_token", 401),
    ]
    for account_id, key, status in cases:
        body = gbm_message(account_id, "conv-1", "hello", message_id=f"msg-{account_id}-{key}")
        assert gbm.invoke(gbm_post(account_id, body, key, b64=True))["statusCode"] == status, (account_id, key)
    assert [e.id for _, e in gbm.enqueued()] == ["gbm:gbm:msg-gbm-client_token", "gbm:gbm-partner:msg-gbm-partner-partner_key"]


def test_gbm_a_delivery_for_another_agent_is_acknowledged_and_enqueues_nothing(
    gbm: Function, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One partner key signs for every agent: a delivery signed for gbm-partner is not gbm-partner-b's."""
    monkeypatch.setattr(logger.registered_handler, "stream", sys.stdout)
    capsys.readouterr()
    body = gbm_message("gbm-partner", "conv-9", "for the partner account only", message_id="msg-replayed")
    assert answer_of(gbm.invoke(gbm_post("gbm-partner-b", body, "partner_key"))) == (200, "application/json", "{}")
    assert gbm.enqueued() == []
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    (skipped,) = [r for r in records if r["message"] == "webhook item skipped"]
    assert skipped["account_id"] == "gbm-partner-b"
    assert f"brands/{BRAND}/agents/{GBM_AGENTS['gbm-partner']}" in skipped["reason"]
    # The account the delivery names records it.
    assert gbm.invoke(gbm_post("gbm-partner", body, "partner_key"))["statusCode"] == 200
    assert [e.id for _, e in gbm.enqueued()] == ["gbm:gbm-partner:msg-replayed"]


def test_gbm_receipts_are_acknowledged_and_enqueued_as_receipts_never_messages(gbm: Function) -> None:
    for name in ("gbm_read-receipt.json", "gbm_user-receipt.json"):
        doc = json.loads((TESTDATA / "gbm" / name).read_bytes())
        doc["agent"] = f"brands/{BRAND}/agents/{GBM_AGENTS['gbm']}"
        assert answer_of(gbm.invoke(gbm_post("gbm", json.dumps(doc).encode()))) == (200, "application/json", "{}")
    enqueued = gbm.enqueued()
    # The route stage applies them to the replies they name; no text, nothing for the CRM.
    assert [(e.kind, e.text, e.data) for _, e in enqueued] == [
        ("receipt", None, {"receipt": {"status": "read", "platform_ids": ["MESSAGE_ID"]}}),
        ("receipt", None, {"receipt": {"status": "delivered", "platform_ids": ["MESSAGE_ID"]}}),
    ]
    assert {group for group, _ in enqueued} == {"gbm:gbm:CONVERSATION_ID"}


def test_gbm_typing_is_acknowledged_and_enqueues_nothing(gbm: Function) -> None:
    for name in ("gbm_realistic-typing.json", "gbm_realistic-typing-started.json", "gbm_event-receive.json"):
        assert answer_of(gbm.invoke(gbm_post("gbm", (TESTDATA / "gbm" / name).read_bytes()))) == (200, "application/json", "{}")
    assert gbm.enqueued() == []


def test_gbm_requested_live_agent_is_enqueued_for_routing(gbm: Function) -> None:
    answer = gbm.invoke(gbm_post("gbm", (TESTDATA / "gbm" / "gbm_realistic-live-agent.json").read_bytes()))
    assert answer_of(answer) == (200, "application/json", "{}")
    ((group, envelope),) = gbm.enqueued()
    assert group == "gbm:gbm:72a88dca-58e8-4bb8-99bb-0302458fee1a"
    assert (envelope.kind, envelope.data["requested_live_agent"]) == ("event", True)
    assert envelope.id == "gbm:gbm:E2F9C3A1-0D4B-4C57-9E8A-6B1F2D3C4A55"


# -- logs --------------------------------------------------------------------------------------------


def test_no_token_or_secret_in_any_log_line(
    facebook: Function, gbm: Function, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logger.registered_handler, "stream", sys.stdout)
    capsys.readouterr()
    good = {"hub.mode": "subscribe", "hub.challenge": "77", "hub.verify_token": FB_SECRETS["verify_token"]}
    bad = {**good, "hub.verify_token": FB_SECRETS["app_secret"]}
    body = (TESTDATA / "facebook" / "message_text_quick_reply.json").read_bytes()
    statuses = [
        facebook.invoke(api_event("facebook", "fb", method="GET", query=good))["statusCode"],
        facebook.invoke(api_event("facebook", "fb", method="GET", query=bad))["statusCode"],
        facebook.invoke(fb_post("fb", body))["statusCode"],
        facebook.invoke(fb_post("fb", body, headers={"X-Hub-Signature-256": FB_SECRETS["app_secret"]}))["statusCode"],
        facebook.invoke(fb_post("fb", (TESTDATA / "facebook" / "other_page.json").read_bytes()))["statusCode"],
    ]
    handshake = json.dumps({"clientToken": GBM_SECRETS["client_token"], "secret": "0123456789"}).encode()
    wrong = json.dumps({"clientToken": GBM_SECRETS["partner_key"], "secret": "0123456789"}).encode()
    statuses += [
        gbm.invoke(gbm_post("gbm", handshake, key=None))["statusCode"],
        gbm.invoke(gbm_post("gbm", wrong, key=None))["statusCode"],
        gbm.invoke(gbm_post("gbm-partner", gbm_message("gbm-partner", "c", "hi"), "partner_key"))["statusCode"],
    ]
    assert statuses == [200, 403, 200, 401, 200, 200, 401, 200]

    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    messages = [r["message"] for r in records]
    assert messages.count("webhook handshake answered") == 2
    assert messages.count("webhook refused") == 3
    assert messages.count("webhook accepted") == 3
    # Another page's entry is not refused (Meta would retry it for 36 hours) but logged and skipped.
    (skipped,) = [r for r in records if r["message"] == "webhook item skipped"]
    assert "998877665544332" in skipped["reason"] and skipped["account_id"] == "fb"
    for line in lines:
        for value in SECRET_VALUES:
            assert value not in line


@pytest.mark.parametrize("channel", ["facebook", "gbm"])
def test_a_body_marked_base64_that_does_not_decode_is_400_not_a_crash(channel: str, facebook: Function, gbm: Function) -> None:
    function = {"facebook": facebook, "gbm": gbm}[channel]
    event = api_event(channel, "fb" if channel == "facebook" else "gbm", body=b"{}", b64=True)
    event["body"] = "%%% not base64 %%%"
    status, content_type, body = answer_of(function.invoke(event))
    assert (status, content_type, json.loads(body)["error"]) == (400, "application/json", "bad_request")
    assert function.enqueued() == []
