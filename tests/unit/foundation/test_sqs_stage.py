"""The SQS stage runner: what happens to a record that fails, and to one delivered twice.

The runner keeps no idempotency record of its own: a redelivery reaches the stage, whose own
conditional writes answer "already done" (proved for route and crm in test_exactly_once.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local.template import create_resources, plan
from infra.local.workers import sqs_record
from switchboard.aws import clients
from switchboard.aws.conversation_store import DynamoFailureLog
from switchboard.aws.sqs_stage import SqsStage
from switchboard.envelope import Customer, Envelope

ROOT = Path(__file__).resolve().parents[3]


class Context:
    function_name = "unit-route"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:unit-route"
    aws_request_id = "req"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def stage_env(aws: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    p = plan(ROOT / "template.yaml", stack="unit", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=2)
    urls = create_resources(p)
    env = {
        "CONVERSATIONS_TABLE": p.tables["ConversationsTable"]["create"]["TableName"],
        "INBOUND_QUEUE_URL": urls["InboundQueue"],
        "INBOUND_DLQ_URL": urls["InboundDeadLetterQueue"],
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _event(*bodies: str) -> dict[str, Any]:
    messages = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body, "Attributes": {"MessageGroupId": f"g{i}"}}
        for i, body in enumerate(bodies)
    ]
    return {"Records": [sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:unit-inbound.fifo") for m in messages]}


def _envelope(event_id: str) -> Envelope:
    return Envelope(
        id=f"line:acc:{event_id}",
        channel="line",
        account_id="acc",
        customer=Customer(id="U1"),
        kind="text",
        text="hi",
        sent_at=1,
        received_at=2,
        correlation_id="c",
    )


def _dead_letters(url: str) -> list[dict[str, Any]]:
    answer = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return list(answer.get("Messages") or [])


def test_poison_message_is_dead_lettered_at_once_with_its_reason(stage_env: dict[str, str]) -> None:
    calls: list[Envelope] = []
    failures = DynamoFailureLog(stage_env["CONVERSATIONS_TABLE"])
    stage = SqsStage("route", lambda e: calls.append(e) or {}, dlq_url_env="INBOUND_DLQ_URL", failure_log=failures)

    result = stage.handle(_event("not json", json.dumps({"v": 99})), Context())

    assert result["batchItemFailures"] == []  # handled: SQS must not retry them four more times
    assert calls == []
    dead = _dead_letters(stage_env["INBOUND_DLQ_URL"])
    assert sorted(m["Body"] for m in dead) == sorted(["not json", json.dumps({"v": 99})])
    reasons = {
        m["MessageAttributes"]["source_message_id"]["StringValue"]: m["MessageAttributes"]["error"]["StringValue"] for m in dead
    }
    assert reasons["m0"] == "EnvelopeError: body is not JSON"
    assert "version 99 is not supported" in reasons["m1"]
    logged = failures.get("route", "m1")
    assert logged is not None and logged["attempts"] == 1 and "version 99" in logged["error"]


def test_retryable_failure_stays_on_the_queue_with_its_reason(stage_env: dict[str, str]) -> None:
    def boom(envelope: Envelope) -> dict[str, Any]:
        if envelope.id == "line:acc:e1":
            raise RuntimeError("settings table unavailable")
        return {"ok": True}

    failures = DynamoFailureLog(stage_env["CONVERSATIONS_TABLE"])
    stage = SqsStage("route", boom, dlq_url_env="INBOUND_DLQ_URL", failure_log=failures)
    body = _envelope("e1").to_json()

    for attempt in (1, 2):
        # Another customer's message in the same batch goes through; only the failing one is reported.
        result = stage.handle(_event(body, _envelope(f"other-{attempt}").to_json()), Context())
        assert result["batchItemFailures"] == [{"itemIdentifier": "m0"}]
        logged = failures.get("route", "m0")
        assert logged is not None and logged["attempts"] == attempt
        assert logged["error"] == "RuntimeError: settings table unavailable"
        assert logged["envelope_id"] == "line:acc:e1"
    assert _dead_letters(stage_env["INBOUND_DLQ_URL"]) == []  # the redrive policy decides, after maxReceiveCount


def test_a_redelivery_reaches_the_stage_and_the_runner_itself_calls_no_aws(stage_env: dict[str, str]) -> None:
    calls: list[str] = []

    def process(envelope: Envelope) -> dict[str, Any]:
        calls.append(envelope.id)
        return {"ok": True}

    stage = SqsStage(
        "route", process, dlq_url_env="INBOUND_DLQ_URL", failure_log=DynamoFailureLog(stage_env["CONVERSATIONS_TABLE"])
    )
    body = _envelope("e2").to_json()
    with counted_calls() as made:
        assert stage.handle(_event(body), Context())["batchItemFailures"] == []
        assert stage.handle(_event(body), Context())["batchItemFailures"] == []
        assert made == []  # no idempotency record: not written in progress, not completed, not read
        stage.failure_log.get("route", "m0")  # the count sees what is called
    assert calls == ["line:acc:e2", "line:acc:e2"]  # the stage's own writes recognise the second one
    assert made == ["GetItem"]


def test_a_json_body_that_is_not_an_object_is_dead_lettered_with_its_reason(stage_env: dict[str, str]) -> None:
    failures = DynamoFailureLog(stage_env["CONVERSATIONS_TABLE"])
    stage = SqsStage("route", lambda e: {}, dlq_url_env="INBOUND_DLQ_URL", failure_log=failures)

    assert stage.handle(_event("[1, 2, 3]"), Context())["batchItemFailures"] == []

    [dead] = _dead_letters(stage_env["INBOUND_DLQ_URL"])
    assert dead["MessageAttributes"]["error"]["StringValue"] == "EnvelopeError: envelope must be a JSON object"
    logged = failures.get("route", "m0")
    assert logged is not None and logged["error"] == "EnvelopeError: envelope must be a JSON object"


def test_a_body_nested_past_any_envelope_is_dead_lettered_at_once(stage_env: dict[str, str]) -> None:
    failures = DynamoFailureLog(stage_env["CONVERSATIONS_TABLE"])
    stage = SqsStage("route", lambda e: {}, dlq_url_env="INBOUND_DLQ_URL", failure_log=failures)

    assert stage.handle(_event("[" * 100_000 + "]" * 100_000), Context())["batchItemFailures"] == []

    [dead] = _dead_letters(stage_env["INBOUND_DLQ_URL"])
    assert dead["MessageAttributes"]["error"]["StringValue"] == "EnvelopeError: body is not JSON"


class RuntimeDied(BaseException):
    """What a Lambda runtime crash looks like from inside: nothing the handler's code may catch."""


def test_a_crashed_attempt_leaves_nothing_that_holds_the_next_delivery(stage_env: dict[str, str]) -> None:
    calls: list[str] = []
    crash = [True]

    def process(envelope: Envelope) -> dict[str, Any]:
        calls.append(envelope.id)
        if crash.pop() if crash else False:
            raise RuntimeDied
        return {"ok": True}

    stage = SqsStage(
        "route", process, dlq_url_env="INBOUND_DLQ_URL", failure_log=DynamoFailureLog(stage_env["CONVERSATIONS_TABLE"])
    )
    body = _envelope("e3").to_json()
    with pytest.raises(RuntimeDied):
        stage.handle(_event(body), Context())

    # Delivered again at once (no in-progress record to wait out, whatever the queue's visibility timeout).
    assert stage.handle(_event(body), Context())["batchItemFailures"] == []
    assert calls == ["line:acc:e3", "line:acc:e3"]


@contextlib.contextmanager
def counted_calls() -> Iterator[list[str]]:
    """Every AWS operation made on the core's shared session meanwhile."""
    made: list[str] = []

    def count(model: Any = None, **_: Any) -> None:
        if model is not None:
            made.append(model.name)

    events = clients._session().events
    events.register("before-call", count, unique_id="counted-calls")
    clients.client.cache_clear()  # a client copies the session's hooks when it is made
    try:
        yield made
    finally:
        events.unregister("before-call", unique_id="counted-calls")
        clients.client.cache_clear()


def test_the_last_retryable_attempt_gives_up_then_dead_letters_with_the_reason(
    stage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_MAX_RECEIVES", "3")
    given_up: list[tuple[str, str]] = []

    def flaky(envelope: Envelope) -> dict[str, Any]:
        raise RuntimeError("LINE answered 503")

    failures = DynamoFailureLog(stage_env["CONVERSATIONS_TABLE"])
    stage = SqsStage(
        "outbound",
        flaky,
        dlq_url_env="INBOUND_DLQ_URL",
        failure_log=failures,
        queue_url_env="INBOUND_QUEUE_URL",
        on_give_up=lambda e, why: given_up.append((e.id, why)),
    )
    body = _envelope("e9").to_json()
    for receives in (1, 2):
        event = _event(body)
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(receives)
        assert stage.handle(event, Context())["batchItemFailures"] == [{"itemIdentifier": "m0"}]
    assert given_up == [] and _dead_letters(stage_env["INBOUND_DLQ_URL"]) == []
    event = _event(body)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "3"
    assert stage.handle(event, Context())["batchItemFailures"] == []  # handled: dead-lettered by the stage itself
    assert given_up == [("line:acc:e9", "RuntimeError: LINE answered 503")]
    [dead] = _dead_letters(stage_env["INBOUND_DLQ_URL"])
    assert dead["MessageAttributes"]["error"]["StringValue"] == "RuntimeError: LINE answered 503"
