"""``switchboard dlq list|redrive``: what is dead-lettered, why, and sending it back once fixed."""

from __future__ import annotations

import time
from typing import Any

from infra.admin.resources import Resources
from switchboard import safe_json

STAGES = ("route", "crm", "outbound")


def _queues(resources: Resources, stage: str) -> tuple[str, str]:
    if stage == "route":
        return resources.inbound_dlq_url, resources.inbound_queue_url
    if stage == "outbound":
        return resources.outbound_dlq_url, resources.outbound_queue_url
    return resources.crm_dlq_url, resources.crm_queue_url


def _drain(sqs: Any, url: str, hide_for: int) -> list[dict[str, Any]]:
    """Every message on the queue, each hidden for ``hide_for`` seconds while we look."""
    seen: dict[str, dict[str, Any]] = {}
    empty_polls = 0
    while empty_polls < 2:
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=hide_for,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = [m for m in answer.get("Messages") or [] if m["MessageId"] not in seen]
        if not messages:
            empty_polls += 1
            continue
        for message in messages:
            seen[message["MessageId"]] = message
    return list(seen.values())


def _row(stage: str, message: dict[str, Any], failures: Any) -> dict[str, Any]:
    attributes = message.get("MessageAttributes") or {}
    source_id = (attributes.get("source_message_id") or {}).get("StringValue") or message["MessageId"]
    record = failures.get(stage, source_id) or {}
    try:
        body = safe_json.loads(message["Body"])
    except safe_json.JsonError:
        body = {}
    conversation_id = (body.get("conversation_id") if isinstance(body, dict) else None) or record.get("conversation_id")
    error = record.get("error") or (attributes.get("error") or {}).get("StringValue") or "unknown (no failure was recorded)"
    return {
        "stage": stage,
        "message_id": source_id,
        "conversation_id": conversation_id,
        "envelope_id": body.get("id") if isinstance(body, dict) else None,
        "attempts": record.get("attempts") or int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 0)),
        "error": error,
    }


def _clients(resources: Resources) -> tuple[Any, Any]:
    resources.activate()
    from switchboard.aws.conversation_store import DynamoFailureLog

    return resources.client("sqs"), DynamoFailureLog(resources.conversations_table)


def list_dead_letters(resources: Resources, stages: tuple[str, ...] = STAGES) -> list[dict[str, Any]]:
    sqs, failures = _clients(resources)
    rows: list[dict[str, Any]] = []
    for stage in stages:
        dlq_url, _ = _queues(resources, stage)
        if not dlq_url:  # a stack deployed before replies existed has no outbound queues
            continue
        messages = _drain(sqs, dlq_url, hide_for=5)
        rows.extend(_row(stage, m, failures) for m in messages)
        for message in messages:  # make them visible again: listing must not hide them
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return rows


def redrive(resources: Resources, stages: tuple[str, ...] = STAGES) -> list[dict[str, Any]]:
    sqs, failures = _clients(resources)
    moved: list[dict[str, Any]] = []
    for stage in stages:
        dlq_url, source_url = _queues(resources, stage)
        if not dlq_url:
            continue
        for message in _drain(sqs, dlq_url, hide_for=30):
            row = _row(stage, message, failures)
            group = (message.get("Attributes") or {}).get("MessageGroupId") or row["message_id"]
            sqs.send_message(
                QueueUrl=source_url,
                MessageBody=message["Body"],
                MessageGroupId=group,
                # A fresh id: the original one may still sit in FIFO's five-minute deduplication window.
                MessageDeduplicationId=f"redrive-{row['message_id']}-{int(time.time())}",
            )
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            failures.clear(stage, row["message_id"])
            moved.append(row)
    return moved
