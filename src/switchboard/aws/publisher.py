"""Enqueue envelopes on a FIFO queue in batches of ten, several batches in flight for a big body.

The message group is the conversation (so one customer's messages stay in order) and the
deduplication id comes from the envelope id (so a platform's redelivery inside SQS's five-minute
window is dropped by SQS itself).

A body of many events used to be sent one SendMessageBatch after another (1,000 events: 100 round
trips while the platform waits). SQS orders a group's messages by when it received them, so two
batches holding the same group must not be in flight together; batches of different groups may.
So the entries are dealt into *lanes*: each message group goes whole to one lane (largest groups
first, each to the emptiest lane), a lane sends its batches one after another, and up to
:data:`MAX_IN_FLIGHT` lanes run at once. One customer's 1,000 events are still 100 sequential
batches; 1,000 customers' events are eight lanes of thirteen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

from switchboard.aws.clients import client
from switchboard.envelope import Envelope
from switchboard.errors import StoreUnavailable

BATCH: Final = 10  # SendMessageBatch's limit
# SendMessageBatch also limits the sum of its bodies: 256 KiB for a queue created before SQS raised
# its limit to 1 MiB, so the lower figure holds everywhere. The edge caps one envelope at 64 KiB, so
# ten of them can exceed it; such a lane's batches are cut by size as well as by count.
BATCH_BYTES: Final = 256 * 1024
# Batches in flight at once. botocore's pool keeps 10 connections per client, and a webhook function
# has 5 s: at ~20 ms a batch, eight lanes take the largest body the edge accepts (1 MiB, a few
# thousand events) well inside it.
MAX_IN_FLIGHT: Final = 8

Entry = dict[str, str]


class _Stopped(StoreUnavailable):
    """A lane that stopped because another one failed: the other one's error is the one to report."""


def by_conversation_key(envelope: Envelope) -> str:
    return envelope.conversation_key[:128]


def by_conversation_id(envelope: Envelope) -> str:
    return envelope.conversation_id or envelope.conversation_key[:128]


class SqsPublisher:
    def __init__(
        self, queue_url: str, group_of: Callable[[Envelope], str] = by_conversation_key, *, max_in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        self.queue_url = queue_url
        self.group_of = group_of
        self.max_in_flight = max(1, max_in_flight)

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        entries = [
            {"MessageBody": e.to_json(), "MessageGroupId": self.group_of(e), "MessageDeduplicationId": e.dedupe_id}
            for e in envelopes
        ]
        if not entries:
            return
        sqs = client("sqs")
        if len(entries) == 1:  # the common webhook: one event, one plain SendMessage
            try:
                sqs.send_message(QueueUrl=self.queue_url, **entries[0])
            except Exception as exc:
                raise StoreUnavailable(f"queue refused the message: {type(exc).__name__}") from exc
            return
        lanes = deal(entries, max(1, min(self.max_in_flight, -(-len(entries) // BATCH))))
        if len(lanes) == 1:
            self._send_lane(sqs, lanes[0], threading.Event())
            return
        from concurrent.futures import ThreadPoolExecutor  # here, not at import: most requests never need it (cold start)

        stop = threading.Event()  # once one lane failed the answer is 503 whatever the others do: stop them early
        with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="publish") as pool:
            futures = [pool.submit(self._send_lane, sqs, lane, stop) for lane in lanes]
            errors = [error for error in (f.exception() for f in futures) if error is not None]
        if errors:
            error = next((e for e in errors if not isinstance(e, _Stopped)), errors[0])
            if isinstance(error, StoreUnavailable):
                raise error
            raise StoreUnavailable(f"queue refused the batch: {type(error).__name__}") from error

    def _send_lane(self, sqs: Any, lane: list[Entry], stop: threading.Event) -> None:
        """Send one lane's batches in order, stopping at the first failure (a later batch of the same
        group must not land before the one SQS refused)."""
        for chunk in batches(lane):
            if stop.is_set():
                raise _Stopped("not sent: another batch of this request was refused")
            try:
                self._send_batch(sqs, chunk)
            except BaseException:
                stop.set()
                raise

    def _send_batch(self, sqs: Any, chunk: list[Entry]) -> None:
        try:
            answer = sqs.send_message_batch(
                QueueUrl=self.queue_url, Entries=[{"Id": str(i), **entry} for i, entry in enumerate(chunk)]
            )
        except Exception as exc:
            raise StoreUnavailable(f"queue refused the batch: {type(exc).__name__}") from exc
        failed = answer.get("Failed") or []
        sent = len(answer.get("Successful") or [])
        if failed or sent != len(chunk):
            codes = sorted({str(f.get("Code", "?")) for f in failed}) or ["unanswered"]
            raise StoreUnavailable(f"queue refused {len(chunk) - sent} of {len(chunk)} messages: {', '.join(codes)}")


def deal(entries: Sequence[Entry], lanes: int) -> list[list[Entry]]:
    """The entries dealt into at most ``lanes`` lanes, each message group whole and in order in one lane.

    Largest group first, each onto the lane with the fewest entries so far (ties: the first), so the
    lanes finish close together; empty lanes are dropped.
    """
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry["MessageGroupId"], []).append(entry)
    dealt: list[list[Entry]] = [[] for _ in range(max(1, lanes))]
    for group in sorted(groups.values(), key=len, reverse=True):  # stable: equal groups keep arrival order
        min(dealt, key=len).extend(group)
    return [lane for lane in dealt if lane]


def batches(lane: Sequence[Entry]) -> list[list[Entry]]:
    """``lane`` cut in order into batches of at most :data:`BATCH` entries and :data:`BATCH_BYTES` of bodies."""
    out: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in lane:
        body = len(entry["MessageBody"].encode("utf-8"))
        if current and (len(current) == BATCH or size + body > BATCH_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(entry)
        size += body
    if current:
        out.append(current)
    return out
