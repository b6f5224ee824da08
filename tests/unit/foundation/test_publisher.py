"""SqsPublisher: a big body's batches go out several at a time, yet each customer's messages stay in order.

Found by posting 1,000 LINE events in one body: they were sent as 100 SendMessageBatch calls one
after another. Now the batches of different message groups are in flight together (up to
MAX_IN_FLIGHT), the batches holding one group are never in flight together, and 200 is still only
answered once SQS took everything: any refusal, of a batch or of one entry in it, is StoreUnavailable.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

import boto3
import pytest

from switchboard.aws import publisher as publisher_module
from switchboard.aws.publisher import BATCH, BATCH_BYTES, MAX_IN_FLIGHT, SqsPublisher, batches, deal
from switchboard.edge import MAX_ENVELOPE_BYTES
from switchboard.envelope import Envelope
from switchboard.errors import StoreUnavailable

from ._fakes import envelope


def envelopes(count: int, customers: int) -> list[Envelope]:
    """``count`` envelopes, customer ``i % customers`` for the i-th, each customer's in sending order."""
    return [envelope(f"m{i}", event_id=f"{i:05d}", user=f"U{i % customers}") for i in range(count)]


class FakeSqs:
    """Records each call's entries and how many calls were in flight at once.

    A batch call waits (up to a bound) for a second call to arrive, so that a publisher that never
    overlaps calls shows it as max_in_flight == 1 instead of passing by luck of timing.
    """

    def __init__(self, *, fail_batch: int | None = None, fail_entry: bool = False, wait_for_company: float = 2.0) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[dict[str, Any]]] = []
        self.singles: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.group_in_flight: dict[str, int] = defaultdict(int)
        self.overlapping_groups: set[str] = set()
        self.company = threading.Event()
        self.fail_batch = fail_batch
        self.fail_entry = fail_entry
        self.wait_for_company = wait_for_company

    def send_message(self, QueueUrl: str, **entry: Any) -> dict[str, Any]:
        with self.lock:
            self.singles.append(entry)
        return {"MessageId": "m"}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        groups = {e["MessageGroupId"] for e in Entries}
        with self.lock:
            index = len(self.batches)
            self.batches.append(Entries)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.in_flight > 1:
                self.company.set()
            for group in groups:
                self.group_in_flight[group] += 1
                if self.group_in_flight[group] > 1:
                    self.overlapping_groups.add(group)
        try:
            if not self.company.wait(self.wait_for_company):
                self.wait_for_company = 0.0  # waited once in vain: calls do not overlap, no need to wait again
            if index == self.fail_batch:
                raise ConnectionError("connection reset")
            if self.fail_entry and index == 0:
                return {
                    "Successful": [{"Id": e["Id"]} for e in Entries[1:]],
                    "Failed": [{"Id": Entries[0]["Id"], "Code": "InternalError", "SenderFault": False}],
                }
            return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}
        finally:
            with self.lock:
                self.in_flight -= 1
                for group in groups:
                    self.group_in_flight[group] -= 1


def use(monkeypatch: pytest.MonkeyPatch, fake: FakeSqs) -> None:
    monkeypatch.setattr(publisher_module, "client", lambda service: fake)


def bodies_by_group(entries: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        out[entry["MessageGroupId"]].append(json.loads(entry["MessageBody"])["text"])
    return dict(out)


def test_batches_of_different_customers_are_in_flight_together(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSqs()
    use(monkeypatch, fake)
    sent = envelopes(1000, customers=200)
    SqsPublisher("q").publish(sent)
    assert 1 < fake.max_in_flight <= MAX_IN_FLIGHT
    assert fake.overlapping_groups == set()  # one group's batches never in flight together
    every = [entry for batch in fake.batches for entry in batch]
    assert len(every) == 1000
    assert all(len(batch) <= BATCH for batch in fake.batches)
    assert all(len({e["Id"] for e in batch}) == len(batch) for batch in fake.batches)
    assert sorted(e["MessageDeduplicationId"] for e in every) == sorted(e.dedupe_id for e in sent)
    # Each customer's messages were handed to SQS in the order they came, call after call.
    expected = bodies_by_group([{"MessageGroupId": e.conversation_key, "MessageBody": e.to_json()} for e in sent])
    assert bodies_by_group(every) == expected


def test_one_customers_many_messages_go_one_batch_at_a_time_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSqs(wait_for_company=0.0)
    use(monkeypatch, fake)
    sent = envelopes(95, customers=1)
    SqsPublisher("q").publish(sent)
    assert fake.max_in_flight == 1
    assert [json.loads(e["MessageBody"])["text"] for batch in fake.batches for e in batch] == [e.text for e in sent]
    assert len(fake.batches) == 10


def test_one_event_is_one_plain_send_message(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSqs()
    use(monkeypatch, fake)
    SqsPublisher("q").publish(envelopes(1, customers=1))
    assert (len(fake.singles), fake.batches) == (1, [])


def test_a_refused_batch_is_store_unavailable_and_its_lane_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSqs(fail_batch=0, wait_for_company=0.0)
    use(monkeypatch, fake)
    with pytest.raises(StoreUnavailable, match="ConnectionError"):
        SqsPublisher("q", max_in_flight=1).publish(envelopes(50, customers=5))
    assert len(fake.batches) == 1  # nothing sent after the refusal: a later batch must not overtake it


def test_a_refused_batch_among_parallel_lanes_is_store_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSqs(fail_batch=3)
    use(monkeypatch, fake)
    with pytest.raises(StoreUnavailable, match="ConnectionError"):
        SqsPublisher("q").publish(envelopes(400, customers=40))


def test_one_refused_entry_in_a_batch_is_store_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSqs(fail_entry=True)
    use(monkeypatch, fake)
    with pytest.raises(StoreUnavailable, match="1 of 10 messages: InternalError"):
        SqsPublisher("q").publish(envelopes(100, customers=20))


def test_a_batch_of_big_envelopes_stays_under_sqs_batch_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ten envelopes just under the edge's cap sum to more than SendMessageBatch takes (256 KiB).
    fake = FakeSqs(wait_for_company=0.0)
    use(monkeypatch, fake)
    sent = [envelope("x" * (MAX_ENVELOPE_BYTES - 1024), event_id=f"{i:03d}", user="U1") for i in range(10)]
    assert sum(len(e.to_json().encode()) for e in sent) > BATCH_BYTES
    SqsPublisher("q").publish(sent)
    assert all(sum(len(e["MessageBody"].encode()) for e in batch) <= BATCH_BYTES for batch in fake.batches)
    assert [json.loads(e["MessageBody"])["id"] for batch in fake.batches for e in batch] == [e.id for e in sent]


def test_batches_cut_by_count_and_by_bytes_in_order() -> None:
    small = [{"MessageBody": "s", "MessageGroupId": "g"} for _ in range(25)]
    assert [len(b) for b in batches(small)] == [10, 10, 5]
    big = [{"MessageBody": "é" * 50_000, "MessageGroupId": "g", "n": str(i)} for i in range(5)]  # 100,000 bytes each
    cut = batches(big)
    assert [len(b) for b in cut] == [2, 2, 1]
    assert [e["n"] for b in cut for e in b] == ["0", "1", "2", "3", "4"]
    alone = [{"MessageBody": "x" * (BATCH_BYTES + 1), "MessageGroupId": "g"}]
    assert batches(alone) == [alone]  # never an empty batch, never a loop: SQS says what it thinks of it


def test_deal_keeps_each_group_whole_and_in_order_in_one_lane() -> None:
    entries = [{"MessageGroupId": f"g{i % 7}", "MessageBody": str(i)} for i in range(300)]
    lanes = deal(entries, MAX_IN_FLIGHT)
    assert 1 < len(lanes) <= MAX_IN_FLIGHT
    lane_of: dict[str, int] = {}
    for n, lane in enumerate(lanes):
        for entry in lane:
            assert lane_of.setdefault(entry["MessageGroupId"], n) == n
    for group in {e["MessageGroupId"] for e in entries}:
        in_lane = [e["MessageBody"] for e in lanes[lane_of[group]] if e["MessageGroupId"] == group]
        assert in_lane == [e["MessageBody"] for e in entries if e["MessageGroupId"] == group]
    assert sorted(len(lane) for lane in lanes)[-1] <= 2 * (300 // 7 + 1)  # balanced: no lane holds most groups


def test_fifo_order_per_customer_survives_on_moto(aws: None) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="publisher-order.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sent = envelopes(120, customers=12)
    SqsPublisher(url).publish(sent)
    received: dict[str, list[str]] = defaultdict(list)
    for _ in range(100):
        messages = (
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageGroupId"]).get("Messages") or []
        )
        if not messages:
            break
        for message in messages:
            received[message["Attributes"]["MessageGroupId"]].append(json.loads(message["Body"])["text"])
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )
    expected: dict[str, list[str]] = defaultdict(list)
    for e in sent:
        expected[e.conversation_key].append(str(e.text))
    assert dict(received) == dict(expected)
