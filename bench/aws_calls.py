"""AWS API calls per inbound LINE text message, per function, counted from botocore, against a floor.

Every call our code makes goes through the one boto3 session in ``switchboard.aws.clients``; a
``before-call`` hook registered on it (before any client exists, so every client inherits it)
counts each API operation once, whatever its retries, attributed to the function being invoked.
The three functions run their real handlers in one process on moto: ``webhook_line`` (API Gateway
event), then ``route`` and ``crm_writer`` (SQS batch events built from what the queues hold), CRM
provider ``none``. Receiving and deleting the queues' messages is the Lambda service's work (its
event source mapping), not our code's, so it is done here with a separate, uncounted client and
listed apart.

Cases, all for one customer's LINE text message:
- cold:  the first message a fresh container sees (settings and secrets not cached yet);
- new:   a customer's first message, warm containers: a new conversation;
- later: the same customer's next message: appended to the open conversation.

The floor is the fewest calls the design needs for each, spelled out in ``FLOORS`` and printed
next to the count. Goal: ratio <= 1.0 for warm containers.

Run: .venv/bin/python bench/aws_calls.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._support import Context, aws_env, create_resources

FUNCTIONS = ("webhook_line", "route", "crm_writer")
CASES = ("cold", "new", "later")
CONFIG = """\
accounts:
  - id: calls-line
    channel: line
    workstream: calls
    api_base_url: http://127.0.0.1:9
    data_base_url: http://127.0.0.1:9
    secrets: {channel_secret: calls-line-secret-6a5b, channel_access_token: calls-line-token-4c3d}
workstreams:
  - id: calls
    fallback_queue: general
    rules:
      - {name: refunds, when: [{field: message.text, op: contains, value: refund}], queue: billing}
crm:
  provider: none
"""
SECRET = "calls-line-secret-6a5b"

# The fewest calls each function needs per message, by design, as (calls, what for). Warm containers
# read settings and secrets through caches, so those cost nothing per message; a cold one pays once.
Floor = list[tuple[int, str]]
IDEMPOTENCY = (2, "dynamodb PutItem + UpdateItem: the idempotency record, in progress then completed")
ENQUEUE = (1, "sqs SendMessage: the envelope, before the 200")
FLOORS: dict[tuple[str, str], Floor] = {
    ("webhook_line", "new"): [ENQUEUE],
    ("webhook_line", "later"): [ENQUEUE],
    ("route", "new"): [
        IDEMPOTENCY,
        (1, "dynamodb GetItem: which conversation the customer is in (none)"),
        (1, "dynamodb GetItem: the customer's profile (a name known from an earlier conversation)"),
        (1, "dynamodb UpdateItem: the profile's name, just looked up on the platform"),
        (1, "dynamodb PutItem: the new conversation, message count included"),
        (1, "dynamodb PutItem: the customer's current-conversation pointer"),
        (1, "dynamodb PutItem: the message, conditional (a duplicate is stored once)"),
        (1, "sqs SendMessage: forward to the crm queue"),
    ],
    ("route", "later"): [
        IDEMPOTENCY,
        (1, "dynamodb GetItem: the current-conversation pointer"),
        (1, "dynamodb GetItem: the conversation it points to (which already knows the customer's name)"),
        (1, "dynamodb PutItem: the message, conditional"),
        (1, "dynamodb PutItem: the conversation's message count and times"),
        (1, "sqs SendMessage: forward to the crm queue"),
    ],
    ("crm_writer", "new"): [
        IDEMPOTENCY,
        (1, "dynamodb GetItem: the conversation"),
        (1, "dynamodb GetItem: was this message written already (exactly once across retries)"),
        (1, "dynamodb GetItem: what the crm stage wrote for the conversation so far"),
        (1, "dynamodb PutItem: what it has written now"),
        (1, "dynamodb UpdateItem: mark the message written, conditional"),
    ],
}
FLOORS[("crm_writer", "later")] = FLOORS[("crm_writer", "new")]
FLOORS[("webhook_line", "cold")] = [
    (1, "dynamodb GetItem: the account (then cached for seconds)"),
    (1, "secretsmanager GetSecretValue: the channel secret (then cached for minutes)"),
    ENQUEUE,
]
FLOORS[("route", "cold")] = [
    *FLOORS[("route", "new")],
    (2, "dynamodb GetItem: the account and its workstream (then cached)"),
    (1, "secretsmanager GetSecretValue: the channel access token for the profile API (then cached)"),
]
FLOORS[("crm_writer", "cold")] = [*FLOORS[("crm_writer", "new")], (1, "dynamodb GetItem: the crm settings (then cached)")]


def floor_count(floor: Floor) -> int:
    return sum(n for n, _ in floor)


class Tally:
    """Counts API operations per (function, case) from botocore's events, and keeps what each touched.

    ``provide-client-params`` sees the operation's own parameters (which item, queue or secret);
    ``before-call`` fires once per operation just before it is sent (retries happen below it). Both
    are counted, and must agree.
    """

    def __init__(self) -> None:
        self.where: tuple[str, str] | None = None
        self.calls: dict[tuple[str, str], Counter[str]] = {}
        self.sent: Counter[tuple[str, str]] = Counter()
        self.trace: dict[tuple[str, str], list[str]] = {}

    def params(self, model: Any = None, params: Any = None, **_: Any) -> None:
        if self.where is None or model is None:
            return
        name = f"{model.service_model.endpoint_prefix}.{model.name}"
        self.calls.setdefault(self.where, Counter())[name] += 1
        self.trace.setdefault(self.where, []).append(f"{name} {_target(params or {})}")

    def before_call(self, model: Any = None, **_: Any) -> None:
        if self.where is not None and model is not None:
            self.sent[self.where] += 1

    def register(self, events: Any) -> None:
        events.register("provide-client-params", self.params)
        events.register("before-call", self.before_call)

    @contextlib.contextmanager
    def counting(self, function: str, case: str) -> Any:
        self.where = (function, case)
        try:
            yield
        finally:
            self.where = None


def _target(params: dict[str, Any]) -> str:
    """Which item, queue or secret a call touched (key prefixes only: never values)."""
    if "TableName" in params:
        key = params.get("Key") or params.get("Item") or {}
        parts = [str(key[k].get("S", ""))[:14] for k in ("pk", "sk", "id") if k in key]
        return f"{params['TableName'].rsplit('-', 1)[-1]} {'/'.join(parts)}"
    if "QueueUrl" in params:
        return str(params["QueueUrl"]).rsplit("/", 1)[-1]
    return str(params.get("SecretId", "")).rsplit("/", 2)[-2] if "SecretId" in params else ""


def line_event(text: str, user: str) -> dict[str, Any]:
    from infra.admin.send import line_body
    from switchboard.channels.line import sign

    body = line_body(text, user)
    return {
        "resource": "/webhooks/line/{account_id}",
        "path": "/webhooks/line/calls-line",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "X-Line-Signature": sign(SECRET, body)},
        "pathParameters": {"account_id": "calls-line"},
        "requestContext": {"requestId": uuid.uuid4().hex},
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }


def one_message(tally: Tally, handlers: dict[str, Any], sqs: Any, case: str, text: str, user: str) -> None:
    """One message through the three functions; the queues are drained by the uncounted client in between."""
    from infra.local.workers import sqs_record

    with tally.counting("webhook_line", case):
        answer = handlers["webhook_line"](line_event(text, user), Context())
    if answer["statusCode"] != 200:
        raise SystemExit(f"webhook_line answered {answer}")
    for function, queue_env in (("route", "INBOUND_QUEUE_URL"), ("crm_writer", "CRM_QUEUE_URL")):
        url = os.environ[queue_env]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        if len(messages) != 1:
            raise SystemExit(f"expected one message on {queue_env}, found {len(messages)}")
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        with tally.counting(function, case):
            result = handlers[function]({"Records": [sqs_record(m, arn) for m in messages]}, Context())
        if result.get("batchItemFailures"):
            raise SystemExit(f"{function} failed the message: {result}")
        sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])


def written(table: str) -> int:
    import boto3

    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return sum(1 for item in items if item["sk"]["S"].startswith("m#") and "written_at" in item)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", action="store_true", help="list every counted call with the item, queue or secret it touched")
    args = parser.parse_args()
    aws_env()
    from moto import mock_aws

    tally = Tally()
    with mock_aws(), tempfile.TemporaryDirectory() as home:
        from switchboard.aws import clients

        clients.client.cache_clear()
        tally.register(clients._session().events)  # before any client exists: each client copies the session's hooks
        create_resources()
        os.environ["SWITCHBOARD_HOME"] = home
        import boto3

        from infra.admin.apply import apply_file
        from infra.admin.resources import Resources

        config = Path(home) / "calls.yaml"
        config.write_text(CONFIG)
        outputs = {
            "SettingsTableName": os.environ["SETTINGS_TABLE"],
            "ConversationsTableName": os.environ["CONVERSATIONS_TABLE"],
            "IdempotencyTableName": os.environ["IDEMPOTENCY_TABLE"],
            "InboundQueueUrl": os.environ["INBOUND_QUEUE_URL"],
            "InboundDeadLetterQueueUrl": os.environ["INBOUND_DLQ_URL"],
            "CrmQueueUrl": os.environ["CRM_QUEUE_URL"],
            "CrmDeadLetterQueueUrl": os.environ["CRM_DLQ_URL"],
            "AttachmentsBucketName": os.environ.get("ATTACHMENTS_BUCKET", ""),
            "SecretsPrefix": os.environ["SECRETS_PREFIX"],
        }
        resources = Resources.from_outputs(outputs, api_url="", endpoint_url=None, region="us-east-1")
        with contextlib.redirect_stdout(io.StringIO()):
            code, lines = apply_file(config, resources, dry_run=False)
        if code != 0:
            raise SystemExit("apply failed:\n" + "\n".join(lines))

        import logging

        logging.disable(logging.WARNING)
        real_stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115 - the handlers' JSON logs
        try:
            import importlib

            handlers = {name: importlib.import_module(f"functions.{name}.app").handler for name in FUNCTIONS}
            sqs = boto3.client("sqs")  # the default session: not the counted one, as Lambda's poller is not our code
            one_message(tally, handlers, sqs, "cold", "hello", "U" + "c" * 32)
            one_message(tally, handlers, sqs, "new", "hello, I'd like a refund", "U" + "a" * 32)
            one_message(tally, handlers, sqs, "later", "order 1234, thanks", "U" + "a" * 32)
        finally:
            sys.stdout.close()
            sys.stdout = real_stdout
        if written(os.environ["CONVERSATIONS_TABLE"]) != 3:
            raise SystemExit("the crm stage did not mark all three messages written")

    print("AWS API calls per inbound LINE text message (botocore events on the shared session; moto; CRM provider none)")
    totals: Counter[str] = Counter()
    floors: Counter[str] = Counter()
    for case in CASES:
        print(
            f"\n{case}: "
            + {"cold": "first message in fresh containers", "new": "new conversation", "later": "later message"}[case]
        )
        for function in FUNCTIONS:
            counted = tally.calls.get((function, case), Counter())
            floor_lines = FLOORS[(function, case)]
            ours, floor = sum(counted.values()), floor_count(floor_lines)
            if ours != tally.sent[(function, case)]:
                raise SystemExit(f"{function} {case}: {ours} operations built but {tally.sent[(function, case)]} sent")
            totals[case] += ours
            floors[case] += floor
            detail = ", ".join(f"{name} {n}" for name, n in sorted(counted.items()))
            print(f"  {function:<12} {ours:2d} calls  floor {floor:2d}  ratio {ours / floor:.2f}x   [{detail}]")
            if args.trace:
                for line in tally.trace.get((function, case), []):
                    print(f"      {line}")
        print(f"  {'all three':<12} {totals[case]:2d} calls  floor {floors[case]:2d}  ratio {totals[case] / floors[case]:.2f}x")
    print("\nfloors (the fewest calls the design needs, per function and message):")
    for function in FUNCTIONS:
        for case in ("new", "later", "cold"):
            shown = FLOORS[(function, case)]
            if case == "cold" and function != "webhook_line":  # the new-conversation floor plus the cache fills
                shown = [line for line in shown if line not in FLOORS[(function, "new")]]
            print(f"  {function} {case}{' (new, plus)' if case == 'cold' and function != 'webhook_line' else ''}:")
            for n, what in shown:
                print(f"    {n} x {what}")
    print(
        "\nnot counted (the Lambda service's SQS event source mapping, billed to the account too): per batch of up to 10,"
        " ReceiveMessage (long polls, also when empty) and DeleteMessageBatch, on the inbound and the crm queue"
    )
    print(json.dumps({c: {"calls": totals[c], "floor": floors[c]} for c in CASES}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
