"""Accepting one LINE body of 1,000 events: the whole webhook handler against the bare SQS calls it needs.

The floor is the least any edge must do to accept such a body durably: the same SendMessageBatch
calls (100 batches of ten, the same envelopes) made one after another with plain boto3. Ours is
the whole Lambda handler (API Gateway event in, settings and secrets, signature, parse into
envelopes, the per-event size check, enqueue, log, answer), twice: publishing one batch at a time
as the edge did before (``sequential``), and with batches of different customers in flight
together (``parallel``, up to MAX_IN_FLIGHT). A ratio under 1 means the edge accepts the body
faster than sending its batches one by one could.

Everything talks to one moto server in a process of its own, as a Lambda talks to SQS over the
network. Two adjustments keep moto's own costs from being what is measured, and both apply to the
floor and ours alike:

- moto recomputes every queue attribute, counting every message with a clock read each, several
  times per message sent: 1,000 messages into one queue took 85 s here, quadratic in the queue's
  length, where SQS's cost per call is flat. The bench's moto server answers those approximate
  counts with 0 (nothing here reads them); every run also gets a fresh queue.
- moto answers on loopback in about a millisecond; SQS in-region takes tens. Each SQS call is
  therefore timed twice: as moto answers (``rtt 0``), and with ``--rtt-ms`` (default 20) of
  network round trip added before it is sent. The first is what this machine's two shared cores
  allow; the second is what a deployed edge waits on.

One customer's 1,000 events cannot go faster than the floor: their batches must stay in order, so
they are sent one at a time whatever the publisher (``--customers 1`` shows it).

Run: .venv/bin/python bench/edge_batch.py [--events 1000] [--customers 100] [--rounds 5] [--rtt-ms 20]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._support import ROOT, Context, aws_env

SECRET = "bench-edge-batch-secret-5b6a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Run in the server's process before it starts: moto's approximate counts walk every message (see above).
_FLAT_COST_MOTO = """
import sys
from moto.server import main
from moto.sqs.models import Queue
for name in ("approximate_number_of_messages", "approximate_number_of_messages_delayed",
             "approximate_number_of_messages_not_visible"):
    setattr(Queue, name, property(lambda self: 0))
main(sys.argv[1:])
"""


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in its own process (its own interpreter lock, as SQS is another machine)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _FLAT_COST_MOTO, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def line_body(events: int, customers: int, tag: str) -> bytes:
    items = [
        {
            "type": "message",
            "mode": "active",
            "timestamp": 1_700_000_000_000 + i,
            "source": {"type": "user", "userId": f"U{i % customers:032x}"},
            "webhookEventId": f"{tag}{i:05d}",
            "deliveryContext": {"isRedelivery": False},
            "replyToken": "r" * 32,
            "message": {"id": str(10_000_000 + i), "type": "text", "text": f"message {i}", "quoteToken": "q"},
        }
        for i in range(events)
    ]
    return json.dumps({"destination": "U" + "0" * 32, "events": items}, separators=(",", ":")).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="network round trip added to each SQS call")
    args = parser.parse_args()
    aws_env()
    with moto_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        return run(args.events, args.customers, args.rounds, args.rtt_ms / 1000)


def run(events: int, customers: int, rounds: int, rtt: float) -> int:
    import boto3

    from infra.local.template import create_resources, plan
    from switchboard.aws import clients
    from switchboard.aws.publisher import MAX_IN_FLIGHT, SqsPublisher
    from switchboard.aws.settings_store import DynamoSettings
    from switchboard.channels.line import LineAdapter, sign
    from switchboard.observability import logger
    from switchboard.settings import account_from_dict
    from switchboard.web import WebhookRequest

    logger.registered_handler.stream = open(os.devnull, "w")  # type: ignore[attr-defined]  # noqa: SIM115 - logs go where Lambda's would
    p = plan(ROOT / "template.yaml", stack="bench", endpoint=os.environ["AWS_ENDPOINT_URL"], visibility_timeout=30)
    create_resources(p)
    for fn in p.functions.values():
        os.environ.update(fn.env)
    account = {"id": "bench-line", "channel": "line", "workstream": "w", "enabled": True}
    boto3.client("secretsmanager").create_secret(
        Name=f"{os.environ['SECRETS_PREFIX']}/account/line/bench-line",
        SecretString=json.dumps({"channel_secret": SECRET, "channel_access_token": "t"}),
    )
    DynamoSettings(os.environ["SETTINGS_TABLE"]).put("account", "bench-line", account)
    from functions.webhook_line import app  # builds its clients from the environment just set

    delay = [0.0]  # the round trip added to each SQS call now (the before-send hook sleeps it)
    floor_sqs = boto3.client("sqs")

    def network(**_: Any) -> None:
        if delay[0]:
            time.sleep(delay[0])

    for sqs_client in (floor_sqs, clients.client("sqs")):
        sqs_client.meta.events.register("before-send.sqs.*", network)

    def fresh_queue() -> str:
        name = f"bench-{uuid.uuid4().hex[:12]}.fifo"
        return str(floor_sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"])

    edge_publisher = app.DEPS.publisher
    assert isinstance(edge_publisher, SqsPublisher)
    context = Context()
    timings: dict[str, list[float]] = {}

    def ours(max_in_flight: int) -> Callable[[str, str], None]:
        def one(key: str, tag: str) -> None:
            edge_publisher.queue_url = fresh_queue()
            edge_publisher.max_in_flight = max_in_flight
            body = line_body(events, customers, tag)
            event = {
                "httpMethod": "POST",
                "path": "/webhooks/line/bench-line",
                "pathParameters": {"account_id": "bench-line"},
                "headers": {"Content-Type": "application/json", "X-Line-Signature": sign(SECRET, body)},
                "queryStringParameters": None,
                "requestContext": {"requestId": uuid.uuid4().hex},
                "body": body.decode(),
                "isBase64Encoded": False,
            }
            start = time.perf_counter()
            answer = app.handler(event, context)
            timings.setdefault(key, []).append(time.perf_counter() - start)
            if answer["statusCode"] != 200:
                raise AssertionError(answer)

        return one

    def floor(key: str, tag: str) -> None:
        url = fresh_queue()
        body = line_body(events, customers, tag)
        request = WebhookRequest("POST", "/", {}, {}, {}, body, "floor")
        parsed = LineAdapter().parse(request, account_from_dict(account), received_at=0, correlation_id="floor")
        entries = [
            {
                "Id": str(n % 10),
                "MessageBody": e.to_json(),
                "MessageGroupId": e.conversation_key[:128],
                "MessageDeduplicationId": e.dedupe_id,
            }
            for n, e in enumerate(parsed.envelopes)
        ]
        start = time.perf_counter()
        for at in range(0, len(entries), 10):
            chunk = entries[at : at + 10]
            answer = floor_sqs.send_message_batch(QueueUrl=url, Entries=chunk)
            if answer.get("Failed") or len(answer.get("Successful") or []) != len(chunk):
                raise AssertionError(answer)
        timings.setdefault(key, []).append(time.perf_counter() - start)

    runs = {"floor": floor, "sequential": ours(1), "parallel": ours(MAX_IN_FLIGHT)}
    labels = {"sequential": "edge, one batch at a time (before)", "parallel": f"edge, up to {MAX_IN_FLIGHT} batches in flight"}
    scenarios = [0.0, rtt] if rtt else [0.0]
    for name, run_once in runs.items():  # warm-up: imports, clients, connections, the cached settings and secret
        run_once(f"warm-{name}", f"warm{name}")
    for i in range(rounds):
        for scenario in scenarios:
            delay[0] = scenario
            for name, run_once in runs.items():  # interleaved, so the machine's noise hits all of them alike
                run_once(f"{scenario}:{name}", f"{name}{scenario}r{i}")

    print(f"edge_batch: {events} LINE events from {customers} customers in one body, median of {rounds} rounds")
    for scenario in scenarios:
        rtt_ms = f"rtt {scenario * 1000:g} ms"
        floor_s = statistics.median(timings[f"{scenario}:floor"])
        floor_label = f"floor: {-(-events // 10)} SendMessageBatch one by one, plain boto3"
        print(f"  {rtt_ms:<10} {floor_label:<52} {floor_s:7.3f} s")
        for name, label in labels.items():
            took = statistics.median(timings[f"{scenario}:{name}"])
            print(f"  {rtt_ms:<10} {label:<52} {took:7.3f} s   ratio {took / floor_s:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
