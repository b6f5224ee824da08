"""Enqueue envelopes on a FIFO queue in batches of ten.

The message group is the conversation (so one customer's messages stay in order) and the
deduplication id comes from the envelope id (so a platform's redelivery inside SQS's five-minute
window is dropped by SQS itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from switchboard.aws.clients import client
from switchboard.envelope import Envelope
from switchboard.ports import StoreUnavailable

BATCH = 10


def by_conversation_key(envelope: Envelope) -> str:
    return envelope.conversation_key[:128]


def by_conversation_id(envelope: Envelope) -> str:
    return envelope.conversation_id or envelope.conversation_key[:128]


class SqsPublisher:
    def __init__(self, queue_url: str, group_of: Callable[[Envelope], str] = by_conversation_key) -> None:
        self.queue_url = queue_url
        self.group_of = group_of

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        sqs = client("sqs")
        for start in range(0, len(envelopes), BATCH):
            chunk = envelopes[start : start + BATCH]
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": e.to_json(),
                    "MessageGroupId": self.group_of(e),
                    "MessageDeduplicationId": e.dedupe_id,
                }
                for i, e in enumerate(chunk)
            ]
            try:
                if len(entries) == 1:  # the common webhook: one event, one plain SendMessage
                    one = {k: v for k, v in entries[0].items() if k != "Id"}
                    sqs.send_message(QueueUrl=self.queue_url, **one)
                    continue
                answer = sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:
                raise StoreUnavailable(f"queue refused the batch: {type(exc).__name__}") from exc
            failed = answer.get("Failed") or []
            if failed:
                codes = sorted({f.get("Code", "?") for f in failed})
                raise StoreUnavailable(f"queue refused {len(failed)} of {len(chunk)} messages: {', '.join(codes)}")
