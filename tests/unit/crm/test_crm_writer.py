"""The crm_writer function over moto's SQS, DynamoDB and Secrets Manager, writing into the fake CRM.

What the runner does with each CRM fault: a 429 holds back only its own conversation, for the
``Retry-After`` the CRM asked, while other conversations in the batch go through; a 5xx backs off
by receive count; a validation error is dead-lettered at once with the CRM's own words, which
``switchboard dlq list`` shows. A failed delivery is never remembered as done, and the same
envelope delivered twice is written once.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from crm_support import split_section
from fakes.crm import FakeCrm

from infra.admin import dlq
from infra.admin.resources import Resources
from infra.local.runtime import LambdaContext
from infra.local.workers import sqs_record
from switchboard.aws import sqs_stage
from switchboard.aws.conversation_store import DynamoConversations, DynamoFailureLog
from switchboard.conversations import Conversation
from switchboard.envelope import Customer, Envelope

T0 = 1_751_339_045_000
BASE = 3  # SWITCHBOARD_RETRY_BASE_SECONDS for this module


@pytest.fixture(scope="module")
def app(aws: dict[str, str]) -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SWITCHBOARD_SETTINGS_TTL", "0")
        monkeypatch.setenv("SWITCHBOARD_SECRETS_MAX_AGE", "0")
        monkeypatch.setenv("SWITCHBOARD_RETRY_BASE_SECONDS", str(BASE))
        import functions.crm_writer.app as module

        yield importlib.reload(module)  # built inside this module's moto account and environment


@pytest.fixture
def crm(aws: dict[str, str], fake_crm: FakeCrm) -> Iterator[FakeCrm]:
    sqs = boto3.client("sqs")
    for url in (aws["CRM_QUEUE_URL"], aws["CRM_DLQ_URL"]):  # what an earlier test left (PurgeQueue: once a minute)
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    yield fake_crm


class VisibilitySpy:
    """Records the retry delays the runner sets, and passes the calls on to moto."""

    def __init__(self) -> None:
        self.delays: dict[str, int] = {}
        self.real = boto3.client("sqs")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        self.delays.update({e["ReceiptHandle"]: e["VisibilityTimeout"] for e in Entries})
        return self.real.change_message_visibility_batch(QueueUrl=QueueUrl, Entries=Entries)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> VisibilitySpy:
    recorder = VisibilitySpy()
    real_client = sqs_stage.client
    monkeypatch.setattr(sqs_stage, "client", lambda service: recorder if service == "sqs" else real_client(service))
    return recorder


def configure(aws: dict[str, str], crm: FakeCrm, provider: str, **section: Any) -> None:
    doc, secrets = split_section(crm.config(provider, **section))
    boto3.client("dynamodb").put_item(
        TableName=aws["SETTINGS_TABLE"],
        Item={"pk": {"S": "crm"}, "sk": {"S": "default"}, "doc": {"S": json.dumps(doc)}},
    )
    sm = boto3.client("secretsmanager")
    name = f"{aws['SECRETS_PREFIX']}/crm"
    try:
        sm.put_secret_value(SecretId=name, SecretString=json.dumps(secrets))
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=name, SecretString=json.dumps(secrets))


def conversation(aws: dict[str, str], *texts: str) -> list[Envelope]:
    """A routed conversation with these messages, as route leaves it for the crm stage."""
    store = DynamoConversations(aws["CONVERSATIONS_TABLE"])
    conversation_id = uuid.uuid4().hex[:16]
    customer = Customer(id="U" + uuid.uuid4().hex, name="Hanako")
    store.open(
        Conversation(
            conversation_id=conversation_id,
            channel="line",
            account_id="line-tokyo",
            customer=customer,
            workstream="social",
            queue="general",
            priority=10,
            created_at=T0,
            updated_at=T0,
            last_message_at=T0,
            close_after_minutes=1440,
        ),
        replacing=None,
    )
    envelopes = []
    for n, text in enumerate(texts, start=1):
        envelope = Envelope(
            id=f"line:line-tokyo:{conversation_id}-{n}",
            channel="line",
            account_id="line-tokyo",
            customer=customer,
            kind="text",
            sent_at=T0 + n,
            received_at=T0 + n,
            correlation_id=f"c{n}",
            text=text,
            conversation_id=conversation_id,
        )
        store.add_message(conversation_id, envelope, seq=n)
        envelopes.append(envelope)
    return envelopes


def enqueue(aws: dict[str, str], *envelopes: Envelope) -> None:
    sqs = boto3.client("sqs")
    for envelope in envelopes:
        sqs.send_message(
            QueueUrl=aws["CRM_QUEUE_URL"],
            MessageBody=envelope.to_json(),
            MessageGroupId=envelope.conversation_id or "",
            MessageDeduplicationId=uuid.uuid4().hex,
        )


def receive(aws: dict[str, str]) -> dict[str, Any]:
    answer = boto3.client("sqs").receive_message(
        QueueUrl=aws["CRM_QUEUE_URL"], MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    )
    messages = answer.get("Messages") or []
    return {"Records": [sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:unit-crm.fifo") for m in messages]}


def invoke(app: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    """Call the handler as the event source mapping does, which then deletes what did not fail."""
    arn = "arn:aws:lambda:us-east-1:123456789012:function:unit-crm_writer"
    context = LambdaContext("unit-crm_writer", 512, arn, uuid.uuid4().hex, time.monotonic() + 60)
    result: dict[str, Any] = app.handler(event, context)
    sqs = boto3.client("sqs")
    for record in event["Records"]:
        if record["messageId"] not in failed(result):
            sqs.delete_message(QueueUrl=os.environ["CRM_QUEUE_URL"], ReceiptHandle=record["receiptHandle"])
    return result


def failed(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def test_a_batch_writes_each_conversation_once(app: ModuleType, crm: FakeCrm, aws: dict[str, str]) -> None:
    configure(aws, crm, "zendesk", default_user={"enabled": True})
    first, second = conversation(aws, "my parcel is late", "it is order 77")
    enqueue(aws, first, second)
    event = receive(aws)
    assert len(event["Records"]) == 2
    assert failed(invoke(app, event)) == []
    (ticket,) = crm.records("zendesk", "tickets")
    assert ticket["assignee_id"] == 1001 and [c["body"] for c in ticket["comments"]] == ["my parcel is late", "it is order 77"]
    state = DynamoConversations(aws["CONVERSATIONS_TABLE"]).crm_state(first.conversation_id or "")
    assert state.ticket_id == str(ticket["id"]) and state.messages_written == 2


def test_rate_limit_holds_back_only_its_conversation_for_retry_after(
    app: ModuleType, crm: FakeCrm, aws: dict[str, str], spy: VisibilitySpy
) -> None:
    configure(aws, crm, "kustomer")
    a1, a2 = conversation(aws, "A one", "A two")
    (b1,) = conversation(aws, "B one")
    enqueue(aws, a1, a2, b1)
    event = receive(aws)
    order = [json.loads(r["body"])["id"] for r in event["Records"]]
    assert order == [a1.id, a2.id, b1.id]
    crm.fail_next(1, status=429, retry_after=1, provider="kustomer")  # A's first call

    result = invoke(app, event)
    ids = {r["messageId"]: json.loads(r["body"])["id"] for r in event["Records"]}
    assert sorted(ids[m] for m in failed(result)) == sorted([a1.id, a2.id])  # A2 waits behind A1, in order
    assert len(crm.records("kustomer", "conversations")) == 1  # B went through meanwhile
    handles = {json.loads(r["body"])["id"]: r["receiptHandle"] for r in event["Records"]}
    # A1 waits Retry-After (not the queue's 30 s); A2 goes back at once but cannot pass A1 (FIFO).
    assert spy.delays == {handles[a1.id]: 1, handles[a2.id]: 0}
    reason = DynamoFailureLog(aws["CONVERSATIONS_TABLE"]).get("crm", next(m for m, i in ids.items() if i == a1.id))
    assert reason is not None and "CrmRateLimited" in reason["error"] and "HTTP 429" in reason["error"]

    assert receive(aws)["Records"] == []  # hidden for now
    time.sleep(1.2)
    again = receive(aws)
    assert [json.loads(r["body"])["id"] for r in again["Records"]] == [a1.id, a2.id]
    assert failed(invoke(app, again)) == []
    conversations = crm.records("kustomer", "conversations")
    assert len(conversations) == 2 and len(crm.records("kustomer", "customers")) == 2
    assert [m["attributes"]["preview"] for m in crm.records("kustomer", "messages")] == ["B one", "A one", "A two"]


def test_server_errors_back_off_by_receive_count(app: ModuleType, crm: FakeCrm, aws: dict[str, str], spy: VisibilitySpy) -> None:
    configure(aws, crm, "salesforce")
    (first,) = conversation(aws, "hello")
    enqueue(aws, first)
    event = receive(aws)
    crm.fail_next(2, status=503, provider="salesforce")
    record = event["Records"][0]
    assert failed(invoke(app, event)) == [record["messageId"]]
    assert spy.delays[record["receiptHandle"]] == BASE
    record["attributes"]["ApproximateReceiveCount"] = "3"  # the third receive waits four times as long
    assert failed(invoke(app, event)) == [record["messageId"]]
    assert spy.delays[record["receiptHandle"]] == BASE * 4
    # A failed delivery was not remembered as done: the next one writes the case.
    assert failed(invoke(app, event)) == []
    assert len(crm.records("salesforce", "Case")) == 1


def test_validation_error_is_dead_lettered_at_once_with_the_crms_words(
    app: ModuleType, crm: FakeCrm, aws: dict[str, str], spy: VisibilitySpy
) -> None:
    configure(aws, crm, "kustomer", channel_map={"line": "carrier-pigeon"})  # Kustomer has no such channel
    (first,) = conversation(aws, "hello")
    enqueue(aws, first)
    assert failed(invoke(app, receive(aws))) == []  # handled: no four more attempts
    assert spy.delays == {}

    resources = Resources.from_outputs(
        {
            "SettingsTableName": aws["SETTINGS_TABLE"],
            "ConversationsTableName": aws["CONVERSATIONS_TABLE"],
            "InboundQueueUrl": aws["CRM_QUEUE_URL"],
            "InboundDeadLetterQueueUrl": aws["CRM_DLQ_URL"],
            "CrmQueueUrl": aws["CRM_QUEUE_URL"],
            "CrmDeadLetterQueueUrl": aws["CRM_DLQ_URL"],
            "AttachmentsBucketName": "unused",
            "SecretsPrefix": aws["SECRETS_PREFIX"],
        },
        api_url="",
        endpoint_url=None,
        region=None,
    )
    (row,) = dlq.list_dead_letters(resources, ("crm",))
    assert row["stage"] == "crm" and row["conversation_id"] == first.conversation_id and row["attempts"] == 1
    assert "CrmRejected" in row["error"] and "HTTP 400" in row["error"] and '"channel" must be one of' in row["error"]

    configure(aws, crm, "kustomer")  # fixed: redrive writes it
    (moved,) = dlq.redrive(resources, ("crm",))
    assert moved["envelope_id"] == first.id
    assert dlq.list_dead_letters(resources, ("crm",)) == []
    assert failed(invoke(app, receive(aws))) == []
    assert [m["attributes"]["preview"] for m in crm.records("kustomer", "messages")] == ["hello"]


def test_the_same_envelope_in_two_deliveries_is_written_once(app: ModuleType, crm: FakeCrm, aws: dict[str, str]) -> None:
    configure(aws, crm, "dynamics")
    (first,) = conversation(aws, "twice")
    enqueue(aws, first)
    assert failed(invoke(app, receive(aws))) == []
    enqueue(aws, first)  # route forwarded it again (another deduplication id)
    assert failed(invoke(app, receive(aws))) == []
    assert len(crm.records("dynamics", "incidents")) == 1
    assert len(crm.calls(provider="dynamics", kind="api")) == 2  # contact + incident, nothing for the duplicate


def test_a_stage_without_its_own_queue_keeps_the_queue_visibility(aws: dict[str, str], spy: VisibilitySpy) -> None:
    def boom(envelope: Envelope) -> dict[str, Any]:
        raise RuntimeError("settings table unavailable")

    stage = sqs_stage.SqsStage(
        "route", boom, dlq_url_env="INBOUND_DLQ_URL", failure_log=DynamoFailureLog(aws["CONVERSATIONS_TABLE"])
    )
    (first,) = conversation(aws, "x")
    enqueue(aws, first)
    event = receive(aws)
    with pytest.raises(BatchProcessingError):  # a batch failing whole fails the invocation, as before
        stage.handle(event, LambdaContext("r", 512, "arn", "req", time.monotonic() + 30))
    assert spy.delays == {}  # route is paced by its queue's visibility timeout, as before
