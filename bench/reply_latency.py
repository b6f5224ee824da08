"""Agent's reply latency on the local stack: from the CRM's event to the platform's send call.

The path measured, per round: an agent's reply is already in the (fake) Zendesk; the CRM posts its signed
event to the local gateway's ``/crm/zendesk/events`` (crm_events verifies it, finds the ticket's
conversation and queues "read this ticket"); the local queue worker hands it to the sender stage, which
reads the ticket's comments from the CRM, stores the new reply and pushes it to the (fake) LINE; the clock
stops when LINE has the push. The floor, on the same moto server in the same run, is what any such path
must do at least: verify the signature, one SQS FIFO send and one receive, and one HTTP POST to the
platform. Our path also reads the ticket from the CRM (two HTTP GETs, by design: the event only says
"look", so a lost or repeated event changes nothing), reads and writes DynamoDB three times, and waits for
the local queue worker's long poll to return: the figures say how much each costs.

Run: .venv/bin/python bench/reply_latency.py [--rounds N]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import io
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fake CRM and the fake LINE

GOAL = 1.5
ACCOUNT = "bench-reply-line"
TOKEN = "bench-reply-line-token-7f7f"
SECRET = "bench-reply-line-secret-8e8e"


def config(line_url: str, crm_section: dict[str, Any]) -> str:
    import yaml

    document = {
        "accounts": [
            {
                "id": ACCOUNT,
                "channel": "line",
                "workstream": "bench",
                "api_base_url": line_url,
                "data_base_url": line_url,
                "secrets": {"channel_secret": SECRET, "channel_access_token": TOKEN},
            }
        ],
        "workstreams": [{"id": "bench", "fallback_queue": "general"}],
        "crm": crm_section,
    }
    return str(yaml.safe_dump(document, sort_keys=False))


def open_ticket(http: Any, api_url: str, crm: Any) -> str:
    """A LINE customer's conversation with its Zendesk ticket (a reply needs one): the ticket's id."""
    from switchboard import channels

    user = "U" + uuid.uuid4().hex
    account = {"id": ACCOUNT, "channel": "line"}
    signed = channels.adapter("line").simulate(account, {"channel_secret": SECRET}, text="where is it?", user=user, event_id=None)
    answer = http.post(api_url + signed.path, data=signed.body, headers={"Content-Type": "application/json", **signed.headers})
    if answer.status_code != 200:
        raise SystemExit(f"the LINE webhook answered {answer.status_code}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tickets = crm.records("zendesk", "tickets")  # the run opens this one ticket only
        if tickets and tickets[0]["requester_id"]:
            return str(tickets[0]["id"])
        time.sleep(0.05)
    raise SystemExit("no Zendesk ticket within 30 s")


def one_reply(http: Any, api_url: str, crm: Any, line: Any, ticket: str) -> float:
    """Seconds from the CRM posting its event to LINE having the push."""
    text = f"on its way {uuid.uuid4().hex[:8]}"
    crm.agent_reply("zendesk", ticket, text)
    body, headers = crm.event("zendesk", ticket)
    before = len(line.line_pushes())
    started = time.perf_counter()
    answer = http.post(f"{api_url}/crm/zendesk/events", data=body, headers=headers)
    if answer.status_code != 200:
        raise SystemExit(f"crm_events answered {answer.status_code}: {answer.text[:200]}")
    deadline = started + 30
    while True:
        pushes = line.line_pushes()
        if len(pushes) > before:
            done = time.perf_counter()
            if pushes[-1].messages != [{"type": "text", "text": text}]:
                raise SystemExit(f"LINE got {pushes[-1].messages}, not the agent's reply")
            return done - started
        if time.perf_counter() > deadline:
            raise SystemExit("the reply did not reach LINE within 30 s")
        time.sleep(0.001)


PARTS: dict[str, list[float]] = {"sqs send": [], "sqs receive + delete": [], "POST to LINE": []}


def floor_once(http: Any, sqs: Any, queue_url: str, line_url: str, secret: bytes, body: bytes, i: int) -> float:
    """Verify a Zendesk-style signature, one SQS FIFO send and receive (and delete), one POST to the platform."""
    started = time.perf_counter()
    stamp = "2026-11-30T00:00:00Z"
    presented = base64.b64encode(hmac.new(secret, stamp.encode() + body, hashlib.sha256).digest())
    expected = base64.b64encode(hmac.new(secret, stamp.encode() + body, hashlib.sha256).digest())
    if not hmac.compare_digest(presented, expected):
        raise SystemExit("floor: signature")
    sqs.send_message(QueueUrl=queue_url, MessageBody=body.decode(), MessageGroupId="g", MessageDeduplicationId=f"d{i}")
    sent = time.perf_counter()
    got: list[Any] = []
    while not got:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=got[0]["ReceiptHandle"])
    received = time.perf_counter()
    answer = http.post(
        f"{line_url}/v2/bot/message/push",
        json={"to": "U" + "0" * 32, "messages": [{"type": "text", "text": f"floor {i}"}]},
        headers={"Authorization": f"Bearer {TOKEN}", "X-Line-Retry-Key": str(uuid.uuid4())},
    )
    if answer.status_code != 200:
        raise SystemExit(f"floor: LINE answered {answer.status_code}")
    done = time.perf_counter()
    if i >= 0:
        for part, seconds in zip(PARTS, (sent - started, received - sent, done - received), strict=True):
            PARTS[part].append(seconds)
    return done - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    import importlib

    import boto3
    import requests

    FakeCrm = importlib.import_module("fakes.crm").FakeCrm  # tests/fakes, on the path above (not a package mypy checks)
    FakePlatform = importlib.import_module("fakes.platform").FakePlatform

    from infra.admin.local import configured_stack

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as home, FakeCrm() as crm, FakePlatform() as line:
        os.environ["SWITCHBOARD_HOME"] = home
        line.line_token(TOKEN)
        path = Path(home) / "bench.yaml"
        path.write_text(config(line.url, crm.config("zendesk")))
        stack = configured_stack(path, stack="switchboard-bench-reply")
        try:
            with contextlib.redirect_stdout(io.StringIO()), requests.Session() as http:  # apply's lines, the handlers' logs
                state: dict[str, Any] = stack.start()
                api_url = state["api_url"]
                ticket = open_ticket(http, api_url, crm)
                for _ in range(3):  # warm-up: every function's first call, the CRM token and the caches
                    one_reply(http, api_url, crm, line, ticket)
                samples = [one_reply(http, api_url, crm, line, ticket) for _ in range(args.rounds)]
                sqs = boto3.client("sqs")
                queue_url = sqs.create_queue(
                    QueueName=f"floor-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"}
                )["QueueUrl"]
                secret, body = b"zendesk-signing-secret", b'{"ticket_id": "' + ticket.encode() + b'"}'
                for i in range(5):
                    floor_once(http, sqs, queue_url, line.url, secret, body, -1 - i)
                floors = [floor_once(http, sqs, queue_url, line.url, secret, body, i) for i in range(args.rounds)]
                crm_reads = len([c for c in crm.calls(provider="zendesk", kind="api") if c.method == "GET"])
        finally:
            with contextlib.redirect_stdout(io.StringIO()):
                stack.stop()

    ours, floor = statistics.median(samples), statistics.median(floors)
    print(f"agent's reply latency on the local stack: {args.rounds} replies, each from the CRM's event to LINE's push")
    print(f"  event -> push: median {ours * 1000:7.1f} ms  (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})")
    print(f"  floor (verify + SQS FIFO send + receive + one POST, same moto): median {floor * 1000:7.1f} ms")
    print("    of which: " + ", ".join(f"{part} {statistics.median(values) * 1000:.1f} ms" for part, values in PARTS.items()))
    print(f"  CRM reads in the run: {crm_reads} GETs for {args.rounds + 3} events (comments and ticket, read per event)")
    print(f"  ratio reply/floor: {ours / floor:.2f}x  (goal <= {GOAL}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
