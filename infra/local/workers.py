"""Local event source mappings: poll a queue, invoke the stage with an SQS batch event, act on the answer.

As Lambda does: messages reported in ``batchItemFailures`` (or the whole batch when the handler
raises) are left on the queue to reappear after the visibility timeout, and SQS's redrive policy
moves a message to the dead-letter queue after ``maxReceiveCount`` receives.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from infra.local.runtime import LocalFunction
from infra.local.template import REGION

log = logging.getLogger("switchboard.local")


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = dict(message.get("Attributes") or {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


class QueueWorker:
    def __init__(
        self, sqs: Any, queue_url: str, queue_arn: str, function: LocalFunction, *, batch_size: int, report_failures: bool
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function = function
        self.batch_size = batch_size
        self.report_failures = report_failures
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"worker-{function.spec.logical_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:
                if self.stopping.is_set():
                    return
                log.exception("worker for %s failed to poll; retrying", self.function.spec.logical_id)
                self.stopping.wait(1)

    def poll_once(self, *, wait_seconds: int) -> int:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages") or []
        if not messages:
            return 0
        event = {"Records": [sqs_record(m, self.queue_arn) for m in messages]}
        try:
            result = self.function.invoke(event)
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])} if self.report_failures else set()
        except Exception:
            log.exception("%s raised; the whole batch returns to the queue", self.function.spec.logical_id)
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return len(messages)
