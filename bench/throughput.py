"""Local end-to-end throughput: 300 LINE messages from 30 customers through the whole local stack.

The pipeline's time runs from the first webhook POST until the crm stage has marked the last
message written: HTTP gateway, edge handler, inbound FIFO queue, route stage, crm FIFO queue, crm
stage, every DynamoDB write, all on one moto server. The floor, on the same moto server in the
same run, is moto's own FIFO rate for the queue work alone: each message sent, received and
deleted once on each of the two queues, batched as the workers batch. The ratio says how much of
the pipeline's time is its own work rather than the queues it cannot avoid.

Run: .venv/bin/python bench/throughput.py [--customers 30] [--per-customer 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG = """\
accounts:
  - id: bench-line
    channel: line
    name: LINE throughput bench
    workstream: bench
    api_base_url: http://127.0.0.1:9
    data_base_url: http://127.0.0.1:9
    secrets: {channel_secret: bench-throughput-secret-1f2e, channel_access_token: bench-throughput-token-3d4c}
workstreams:
  - id: bench
    fallback_queue: general
    rules:
      - name: refunds
        when: [{field: message.text, op: contains, value: refund}]
        queue: billing
crm:
  provider: none
"""
SECRET = "bench-throughput-secret-1f2e"


def written_messages(table: str) -> int:
    import boto3

    db = boto3.client("dynamodb")
    count = 0
    for page in db.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(sk, :m) AND attribute_exists(written_at)",
        ExpressionAttributeValues={":m": {"S": "m#"}},
        Select="COUNT",
    ):
        count += page["Count"]
    return count


def run_pipeline(api_url: str, table: str, customers: int, per_customer: int) -> float:
    import requests

    from switchboard.channels.line import build_message as line_body
    from switchboard.channels.line import sign

    total = customers * per_customer
    errors: list[str] = []

    def customer(index: int) -> None:
        user = "U" + uuid.uuid4().hex
        with requests.Session() as http:
            for n in range(per_customer):
                text = "refund please" if n % 3 == 0 else f"message {n} from customer {index}"
                body = line_body(text, user)
                answer = http.post(
                    f"{api_url}/webhooks/line/bench-line",
                    data=body,
                    headers={"Content-Type": "application/json", "X-Line-Signature": sign(SECRET, body)},
                    timeout=30,
                )
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {answer.text[:200]}")

    start = time.perf_counter()
    threads = [threading.Thread(target=customer, args=(i,)) for i in range(customers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} webhook requests failed, first: {errors[0]}")
    deadline = time.monotonic() + 300
    while (done := written_messages(table)) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done} of {total} messages reached the crm stage within 300 s")
        time.sleep(0.25)  # a scan per poll also loads moto; 0.25 s bounds the error at well under 1%
    return time.perf_counter() - start


def run_floor(total: int, batch_size: int) -> float:
    """Moto's FIFO rate for the same queue work: send, receive and delete each message on two queues."""
    import boto3

    sqs = boto3.client("sqs")
    start = time.perf_counter()
    for hop in range(2):
        url = sqs.create_queue(
            QueueName=f"floor-{hop}-{uuid.uuid4().hex[:8]}.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "30"},
        )["QueueUrl"]
        for i in range(total):
            sqs.send_message(
                QueueUrl=url, MessageBody="x" * 900, MessageGroupId=f"g{i % 30}", MessageDeduplicationId=f"d{hop}-{i}"
            )
        received = 0
        while received < total:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=batch_size, WaitTimeSeconds=0).get("Messages", [])
            received += len(messages)
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=30)
    parser.add_argument("--per-customer", type=int, default=10)
    args = parser.parse_args()
    total = args.customers * args.per_customer

    with tempfile.TemporaryDirectory() as home:
        os.environ["SWITCHBOARD_HOME"] = home
        config = Path(home) / "bench.yaml"
        config.write_text(CONFIG)
        logging.disable(logging.WARNING)
        from infra.admin.local import configured_stack

        stack = configured_stack(config, stack="switchboard-bench")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # apply's lines and the handlers' metric records
                state: dict[str, Any] = stack.start()
                table = state["outputs"]["ConversationsTableName"]
                batch = max(fn.batch_size for fn in stack.plan.functions.values() if fn.queue)
                pipeline = run_pipeline(state["api_url"], table, args.customers, args.per_customer)
            floor = run_floor(total, batch)
        finally:
            stack.stop()

    print(f"local end-to-end throughput: {total} messages from {args.customers} customers")
    print(f"  pipeline (webhook to crm stage done): {pipeline:7.2f} s  {total / pipeline:7.1f} msg/s")
    print(f"  floor (moto FIFO send/receive/delete x2 queues): {floor:7.2f} s  {total / floor:7.1f} msg/s")
    print(f"  ratio pipeline/floor: {pipeline / floor:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
