"""The contract every registered channel keeps, run through its real Lambda handler on moto.

One harness for all of them (courier's ``handlertest``): a new channel module is held to these by
registering itself, with no test of its own needed for them. Per channel, the account and its
secrets are sampled from the channel's own declaration, and the deliveries come from its own
``simulate``, so nothing here names a channel.

- an unsigned request is 401 and enqueues nothing; a signed body that is not JSON is 400;
- a delivery is enqueued once, and its redelivery keeps its envelope id (dedupe holds anywhere);
- every recorded payload in ``channels/testdata/<channel>/`` appears in that channel's own test table;
- with ``POWERTOOLS_LOGGER_LOG_EVENT=true`` no secret, signature or body reaches the log.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from test_simulate import all_secrets, stored_account

from infra.local.template import Plan, plan
from switchboard import channels
from switchboard.aws import clients
from switchboard.aws.settings_store import DynamoSettings
from switchboard.envelope import Envelope
from switchboard.observability import logger

ROOT = Path(__file__).resolve().parents[3]
TESTDATA = ROOT / "src" / "switchboard" / "channels" / "testdata"
ACCOUNT = "contract-acct"


class LambdaContext:
    function_name = "webhook"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:webhook"
    aws_request_id = "req-contract"


@functools.cache
def _plan() -> Plan:
    return plan(ROOT / "template.yaml", stack="unit", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=30)


@dataclass
class Channel:
    name: str
    app: Any
    queue_url: str
    account: dict[str, Any]
    secrets: dict[str, str]
    log: io.StringIO

    def post(self, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        event = {
            "resource": f"/webhooks/{self.name}/{{account_id}}",
            "path": f"/webhooks/{self.name}/{ACCOUNT}",
            "httpMethod": "POST",
            "headers": {"Content-Type": "application/json", **headers},
            "pathParameters": {"account_id": ACCOUNT},
            "queryStringParameters": None,
            "requestContext": {"requestId": "apigw-contract"},
            "body": body.decode("utf-8"),
            "isBase64Encoded": False,
        }
        answer: dict[str, Any] = self.app.handler(event, LambdaContext())
        return answer

    def simulated(self, text: str, event_id: str | None = None) -> tuple[bytes, dict[str, str]]:
        sent = channels.adapter(self.name).simulate(self.account, self.secrets, text=text, user=None, event_id=event_id)
        return sent.body, dict(sent.headers)

    def enqueued(self) -> list[Envelope]:
        sqs, out = boto3.client("sqs"), []
        while got := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            out += [Envelope.from_json(m["Body"]) for m in got]
        return out


@pytest.fixture(params=channels.names())
def channel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Channel]:
    name: str = request.param
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for var, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",  # an admin debugging: still no event, secret or signature logged
    }.items():
        monkeypatch.setenv(var, value)
    log = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", log)
    clients.client.cache_clear()
    with mock_aws():
        p = _plan()
        boto3.client("dynamodb").create_table(**p.tables["SettingsTable"]["create"])
        sqs = boto3.client("sqs")
        url = ""
        for logical in ("InboundDeadLetterQueue", "InboundQueue"):
            queue = p.queues[logical]
            url = sqs.create_queue(QueueName=queue["name"], Attributes=queue["attributes"])["QueueUrl"]
        function = next(f for f in p.functions.values() if f.code_dir.rstrip("/").endswith(f"webhook_{name}"))
        env = {**function.env, "INBOUND_QUEUE_URL": url}
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        account = stored_account(name, id=ACCOUNT)
        secrets = all_secrets(name)
        DynamoSettings(env["SETTINGS_TABLE"], ttl_seconds=0).put("account", ACCOUNT, account)
        boto3.client("secretsmanager").create_secret(
            Name=f"{env['SECRETS_PREFIX']}/account/{name}/{ACCOUNT}", SecretString=json.dumps(secrets)
        )
        app = importlib.reload(importlib.import_module(f"functions.webhook_{name}.app"))  # its init inside this moto
        yield Channel(name, app, url, account, secrets, log)
    clients.client.cache_clear()


def _error(answer: dict[str, Any]) -> str:
    body = json.loads(answer["body"])
    assert set(body) == {"error", "message"}
    return str(body["error"])


def test_an_unsigned_delivery_is_401_and_enqueues_nothing(channel: Channel) -> None:
    body, _ = channel.simulated("hello")
    answer = channel.post(body, {})
    assert answer["statusCode"] == 401
    assert _error(answer).startswith(("missing_", "invalid_"))
    assert channel.enqueued() == []


def test_a_signed_body_that_is_not_json_is_400_and_enqueues_nothing(channel: Channel) -> None:
    garbage = b"this is not json"
    signed = channels.adapter(channel.name).signed_headers(channel.account, channel.secrets, garbage)
    answer = channel.post(garbage, signed)
    assert (answer["statusCode"], _error(answer)) == (400, "bad_request")
    assert channel.enqueued() == []


def test_a_delivery_is_enqueued_and_its_redelivery_keeps_its_envelope_id(channel: Channel) -> None:
    body, headers = channel.simulated("hello, once", event_id="contract-event-1")
    first = channel.post(body, headers)
    again_body, again_headers = channel.simulated("hello, once", event_id="contract-event-1")
    second = channel.post(again_body, again_headers)
    assert first["statusCode"] == second["statusCode"] == 200
    envelopes = channel.enqueued()
    assert len(envelopes) >= 1  # moto's FIFO dedupe may drop the copy; what matters is the id
    assert {e.id for e in envelopes} == {envelopes[0].id}
    assert envelopes[0].channel == channel.name and envelopes[0].account_id == ACCOUNT
    assert envelopes[0].text == "hello, once"


def test_no_secret_signature_or_body_is_logged_with_event_logging_on(channel: Channel) -> None:
    body, headers = channel.simulated("my card number is 4111 1111")
    channel.post(body, headers)
    channel.post(body, {})
    out = channel.log.getvalue()
    assert out, "the handler logged nothing: the check would prove nothing"
    for value in (*channel.secrets.values(), *headers.values(), "4111 1111"):
        assert value not in out


def test_every_recorded_payload_appears_in_the_channels_test_table() -> None:
    for name in channels.names():
        folder = TESTDATA / name
        table = Path(__file__).with_name(f"test_{name}.py")
        assert table.exists(), f"{name}: its table of recorded cases is tests/unit/channels/test_{name}.py"
        source = table.read_text()
        files = sorted(p.name for p in folder.glob("*.json"))
        assert files, f"{name}: no recorded payloads in {folder}"
        missing = [f for f in files if f not in source]
        assert missing == [], f"{name}: recorded payloads no test table names: {missing}"
