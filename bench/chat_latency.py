"""Web chat reply latency on the local stack: from `switchboard reply` to the visitor's long poll answering it.

The path measured: the reply stored and queued (what `switchboard reply` does, called in process so that a
CLI's interpreter start is not counted), the outbound FIFO queue, the sender stage marking the chat reply
taken, and the chat function's long poll (already waiting, as a widget's is) noticing it and answering
over HTTP through the local gateway. The floor, on the same moto server in the same run, is the least
any such path must do: one SQS FIFO send and receive, one DynamoDB write and one read.

The long poll reads DynamoDB every ``POLL_INTERVAL_SECONDS`` (switchboard.chat_session) and the local
queue worker long-polls SQS, so the ratio includes, on average, half a poll interval of waiting that a
push design would not have; it is printed so that cost stays visible. Goal (issue 13): <= 1.5x.

Run: .venv/bin/python bench/chat_latency.py [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GOAL = 1.5
WIDGET = "bench-chat"
CONFIG = f"""\
widgets:
  - id: {WIDGET}
    workstream: bench
workstreams:
  - id: bench
    fallback_queue: web
crm:
  provider: none
"""


def start_chat(http: Any, api_url: str) -> tuple[str, str, str]:
    """A chat whose conversation the route stage has stored (a reply needs one): (id, token, cursor)."""
    answer = http.post(f"{api_url}/chat/{WIDGET}/conversations", json={"text": "hello"}, timeout=30)
    if answer.status_code != 201:
        raise SystemExit(f"chat start answered {answer.status_code}: {answer.text[:200]}")
    doc = answer.json()
    conversation_id, token = doc["conversation_id"], doc["session_token"]
    url = f"{api_url}/chat/{WIDGET}/conversations/{conversation_id}/messages"
    deadline = time.monotonic() + 30
    while True:
        read = http.get(url, params={"wait": "5"}, headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
        if read["messages"]:
            return conversation_id, token, str(read["cursor"])
        if time.monotonic() > deadline:
            raise SystemExit("the route stage did not store the chat within 30 s")


def one_reply(api_url: str, resources: Any, chat: tuple[str, str, str], phase: float) -> tuple[float, float]:
    """Seconds from the reply call to the sender stage marking it taken, and to the long poll's answer carrying it.

    ``phase`` (seconds past the poll's start) places the reply at a different point of the poll's read cycle
    each round, as an agent's reply falls at any time.
    """
    import boto3
    import requests

    from infra.admin.reply import reply

    conversation_id, token, cursor = chat
    url = f"{api_url}/chat/{WIDGET}/conversations/{conversation_id}/messages"
    answered: dict[str, Any] = {}
    polling = threading.Event()

    def poll() -> None:
        with requests.Session() as http:
            polling.set()
            answer = http.get(
                url, params={"after": cursor, "wait": "20"}, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            answered["at"] = time.perf_counter()
            answered["doc"] = answer.json()

    thread = threading.Thread(target=poll)
    thread.start()
    polling.wait()
    time.sleep(phase)  # the poll is inside its wait (its first read done), as a widget's usually is
    started = time.perf_counter()
    code, message_id, error = reply(resources, conversation_id, "on our way")
    if code != 0:
        raise SystemExit(f"switchboard reply failed: {error}")
    db, key = boto3.client("dynamodb"), {"pk": {"S": f"c#{conversation_id}"}, "sk": {"S": f"o#{message_id}"}}
    taken = None
    while taken is None and "at" not in answered:  # the sender stage's mark, read directly (the pipeline's own share)
        item = db.get_item(TableName=resources.conversations_table, Key=key, ConsistentRead=True).get("Item") or {}
        if item.get("status", {}).get("S") == "sent":
            taken = time.perf_counter()
        else:
            time.sleep(0.005)
    thread.join(timeout=30)
    messages = answered.get("doc", {}).get("messages") or []
    if [m["id"] for m in messages] != [message_id]:
        raise SystemExit(f"the long poll answered {messages!r}, not the reply {message_id}")
    answered_at = float(answered["at"])
    return (taken if taken is not None else answered_at) - started, answered_at - started


def floor_once(sqs: Any, queue_url: str, db: Any, table: str, i: int) -> float:
    """One SQS FIFO send and receive (and delete), one DynamoDB put and get: the least the reply path does."""
    started = time.perf_counter()
    sqs.send_message(QueueUrl=queue_url, MessageBody="x" * 600, MessageGroupId="g", MessageDeduplicationId=f"d{i}")
    got: list[Any] = []
    while not got:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=got[0]["ReceiptHandle"])
    key = {"pk": {"S": f"bench#{i}"}, "sk": {"S": "floor"}}
    db.put_item(TableName=table, Item={**key, "doc": {"S": "x" * 300}})
    db.get_item(TableName=table, Key=key, ConsistentRead=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    import boto3
    import requests

    from infra.admin.resources import Resources
    from switchboard.chat_session import POLL_INTERVAL_SECONDS

    with tempfile.TemporaryDirectory() as home:
        os.environ["SWITCHBOARD_HOME"] = home
        config = Path(home) / "bench.yaml"
        config.write_text(CONFIG)
        logging.disable(logging.WARNING)
        from infra.admin.local import configured_stack

        stack = configured_stack(config, stack="switchboard-bench-chat")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # apply's lines and the handlers' log records
                state: dict[str, Any] = stack.start()
                resources = Resources.from_state(state)
                api_url = state["api_url"]
                with requests.Session() as http:
                    chats = [start_chat(http, api_url) for _ in range(args.rounds + 2)]
                one_reply(api_url, resources, chats[0], 0.3)  # warm-up: every function's first call
                one_reply(api_url, resources, chats[1], 0.3)
                rounds = [
                    one_reply(api_url, resources, chat, 0.3 + POLL_INTERVAL_SECONDS * n / args.rounds)
                    for n, chat in enumerate(chats[2:])
                ]
                taken_samples, samples = [r[0] for r in rounds], [r[1] for r in rounds]

                sqs, db = boto3.client("sqs"), boto3.client("dynamodb")
                queue_url = sqs.create_queue(
                    QueueName=f"floor-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"}
                )["QueueUrl"]
                table = state["outputs"]["ConversationsTableName"]
                for i in range(5):
                    floor_once(sqs, queue_url, db, table, -1 - i)
                floors = [floor_once(sqs, queue_url, db, table, i) for i in range(args.rounds)]
        finally:
            stack.stop()

    ours, floor, taken = statistics.median(samples), statistics.median(floors), statistics.median(taken_samples)
    print(f"web chat reply latency on the local stack: {args.rounds} replies, each to a long poll already waiting")
    print(f"  switchboard reply -> sender stage marked it taken: median {taken * 1000:7.1f} ms  ({taken / floor:.2f}x the floor)")
    print(f"  switchboard reply -> long poll answer: median {ours * 1000:7.1f} ms  (max {max(samples) * 1000:.1f} ms)")
    print(f"  floor (moto: SQS FIFO send + receive, DynamoDB put + get): median {floor * 1000:7.1f} ms")
    print(f"  long poll interval: {POLL_INTERVAL_SECONDS * 1000:.0f} ms (half of it is the expected wait for the next read)")
    print(f"  ratio reply/floor: {ours / floor:.2f}x  (goal <= {GOAL}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
