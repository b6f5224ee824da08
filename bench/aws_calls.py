"""AWS API calls per inbound LINE text message, per function, counted from botocore, against a floor.

Every call our code makes goes through the one boto3 session in ``switchboard.aws.clients``; a
``before-call`` hook registered on it (before any client exists, so every client inherits it)
counts each API operation once, whatever its retries, attributed to the function being invoked.
The three functions run their real handlers in one process on moto: ``webhook_line`` (API Gateway
event), then ``route`` and ``crm_writer`` (SQS batch events built from what the queues hold).
Receiving and deleting the queues' messages is the Lambda service's work (its event source
mapping), not our code's, so it is done here with a separate, uncounted client and listed apart.

Cases, all for one customer's LINE text message:
- cold:  the first message a fresh container sees (settings and secrets not cached yet);
- new:   a customer's first message, warm containers: a new conversation;
- later: the same customer's next message: appended to the open conversation;
- new/later, zendesk: the same two with a CRM (Zendesk, on the fake CRM of tests/fakes/crm.py),
  where the crm stage reads what it needs before calling the CRM; the first three use provider
  ``none``, where marking the message written is the whole of the crm stage's work.

The floor is the fewest calls the job needs, spelled out call by call in ``FLOORS`` with the
argument for each, and printed next to the count: what must be read or written at all, with one
request wherever one can do the work of several at the same DynamoDB price. (A TransactWriteItems
could carry several writes in one call, but bills every write twice, so it sets no floor; neither
does BatchWriteItem, which takes no condition and cannot update an item attribute by attribute.)

Run: .venv/bin/python bench/aws_calls.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
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
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))  # the fake CRM

from bench._support import Context, aws_env, create_resources

FUNCTIONS = ("webhook_line", "route", "crm_writer")
REPLY_FUNCTIONS = ("crm_events", "sender")
CASES = ("cold", "new", "later", "new, zendesk", "later, zendesk")
REPLY_CASE = "reply, zendesk"
TITLES = {
    "cold": "first message in fresh containers",
    "new": "new conversation",
    "later": "later message",
    "new, zendesk": "new conversation, CRM zendesk (a new customer: contact and ticket)",
    "later, zendesk": "later message, CRM zendesk (appended to the ticket)",
}
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
"""
SECRET = "calls-line-secret-6a5b"

# The fewest calls each function needs per message, as (calls, what for and why no fewer). Warm containers
# read settings and secrets through caches, so those cost nothing per message; a cold one pays once.
Floor = list[tuple[int, str]]
ENQUEUE = (1, "sqs SendMessage: the envelope, durable before the 200 (settings and the channel secret come from caches)")
CUSTOMER = (
    1,
    "dynamodb Query: the customer item (which conversation the customer is in, and the profile with the name looked up"
    " before) and, in the same range, the conversations the customer left within the redelivery horizon",
)
MESSAGE = (
    1,
    "dynamodb PutItem: the message, conditional on its key (the envelope id): this write is what stores it once;"
    " a redelivery's refusal returns the copy stored before",
)
FORWARD = (1, "sqs SendMessage: forward to the crm queue")
MARK = (
    1,
    "dynamodb UpdateItem: mark the message written, conditional on no mark: the crm stage's exactly once, whose"
    " refusal also says 'written before' or 'no such message', so nothing need be read first",
)
FLOORS: dict[tuple[str, str], Floor] = {
    ("webhook_line", "new"): [ENQUEUE],
    ("webhook_line", "later"): [ENQUEUE],
    ("route", "new"): [
        CUSTOMER,
        (
            1,
            "dynamodb UpdateItem: the customer item: the pointer to the new conversation and the name just looked up,"
            " in one write (an update, as the crm stage writes contact ids on the same item); before the message, so"
            " a retry after a crash reopens this conversation rather than a second one",
        ),
        MESSAGE,
        (1, "dynamodb PutItem: the new conversation, count included (after its message, so a retry counts it once)"),
        FORWARD,
    ],
    ("route", "later"): [
        CUSTOMER,
        (
            1,
            "dynamodb GetItem: the conversation the pointer names (its id comes from the Query, so it cannot share"
            " that request); a BatchGetItem that also looks for this envelope in the conversations left, if any",
        ),
        MESSAGE,
        (1, "dynamodb PutItem: the conversation's count and times (the one item every view and the quiet check read)"),
        FORWARD,
    ],
    ("crm_writer", "new"): [MARK],
    ("crm_writer", "later"): [MARK],
    ("crm_writer", "new, zendesk"): [
        (1, "dynamodb BatchGetItem: the conversation (the CRM's fields), the message's mark, the crm stage's state"),
        (
            1,
            "dynamodb GetItem: the customer's contact in this CRM from an earlier conversation (read when opening only:"
            " with every message it would cost a read unit each to save one request per conversation)",
        ),
        (
            1,
            "dynamodb PutItem: the crm state: the new contact id and 'ticket create under way', before the create (a"
            " retry looks the ticket up instead of creating a second)",
        ),
        (1, "dynamodb UpdateItem: the contact id on the customer item, for the customer's next conversation"),
        (1, "dynamodb PutItem: the crm state: the ticket id and the envelope it opened with, as soon as it exists"),
        MARK,
    ],
    ("crm_writer", "later, zendesk"): [
        (1, "dynamodb BatchGetItem: the conversation, the message's mark, the crm state (the ticket to append to)"),
        MARK,
    ],
}
FLOORS[("crm_events", REPLY_CASE)] = [
    (
        1,
        "dynamodb Query: the by_ticket index, the conversation whose ticket the event names (the events secret and the"
        " CRM settings come from caches)",
    ),
    (1, "sqs SendMessage: 'read this ticket' on the outbound queue, in the conversation's group, before the 200"),
]
FLOORS[("sender", REPLY_CASE)] = [
    (
        1,
        "dynamodb Query: the conversation's partition: the conversation, the crm state (ticket, contact), the customer's"
        " messages (the last one's platform time, for the channel's window) and the replies stored before",
    ),
    (1, "dynamodb PutItem: the agent's reply, conditional on its id (derived from the CRM's comment): stored once"),
    (1, "dynamodb UpdateItem: the delivery pending -> sent, conditional on pending: sent once"),
]
for _function in ("webhook_line", "route"):
    FLOORS[(_function, "new, zendesk")] = FLOORS[(_function, "new")]
    FLOORS[(_function, "later, zendesk")] = FLOORS[(_function, "later")]
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
    from switchboard.channels.line import build_message as line_body
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


def one_reply(tally: Tally, handlers: dict[str, Any], sqs: Any, crm: Any, ticket: str, case: str) -> None:
    """An agent's reply in the (fake) Zendesk, its signed event to crm_events, then the sender's run over the outbound queue."""
    from infra.local.workers import sqs_record

    crm.agent_reply("zendesk", ticket, f"agent reply {uuid.uuid4().hex[:8]}")
    body, headers = crm.event("zendesk", ticket)
    event = {
        "resource": "/crm/{provider}/events",
        "path": "/crm/zendesk/events",
        "httpMethod": "POST",
        "headers": headers,
        "pathParameters": {"provider": "zendesk"},
        "requestContext": {"requestId": uuid.uuid4().hex},
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }
    with tally.counting("crm_events", case):
        answer = handlers["crm_events"](event, Context())
    if answer["statusCode"] != 200 or '"queued"' not in answer["body"]:
        raise SystemExit(f"crm_events answered {answer}")
    url = os.environ["OUTBOUND_QUEUE_URL"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    if len(messages) != 1:
        raise SystemExit(f"expected one message on the outbound queue, found {len(messages)}")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    with tally.counting("sender", case):
        result = handlers["sender"]({"Records": [sqs_record(m, arn) for m in messages]}, Context())
    if result.get("batchItemFailures"):
        raise SystemExit(f"sender failed the event: {result}")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])


def written(table: str) -> int:
    import boto3

    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return sum(1 for item in items if item["sk"]["S"].startswith("m#") and "written_at" in item)


def apply(config_text: str, home: str, *, api_url: str = "") -> None:
    from infra.admin.apply import apply_file
    from infra.admin.resources import Resources

    config = Path(home) / "calls.yaml"
    config.write_text(config_text)
    outputs = {
        "SettingsTableName": os.environ["SETTINGS_TABLE"],
        "ConversationsTableName": os.environ["CONVERSATIONS_TABLE"],
        "InboundQueueUrl": os.environ["INBOUND_QUEUE_URL"],
        "InboundDeadLetterQueueUrl": os.environ["INBOUND_DLQ_URL"],
        "CrmQueueUrl": os.environ["CRM_QUEUE_URL"],
        "CrmDeadLetterQueueUrl": os.environ["CRM_DLQ_URL"],
        "AttachmentsBucketName": os.environ.get("ATTACHMENTS_BUCKET", ""),
        "SecretsPrefix": os.environ["SECRETS_PREFIX"],
    }
    resources = Resources.from_outputs(outputs, api_url=api_url, endpoint_url=None, region="us-east-1")
    with contextlib.redirect_stdout(io.StringIO()):
        code, lines = apply_file(config, resources, dry_run=False)
    if code != 0:
        raise SystemExit("apply failed:\n" + "\n".join(lines))


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
        import yaml

        FakeCrm = importlib.import_module("fakes.crm").FakeCrm  # tests/fakes/crm.py, on the path above
        FakePlatform = importlib.import_module("fakes.platform").FakePlatform  # LINE's push, for the replies

        apply(CONFIG + "crm:\n  provider: none\n", home)
        import logging

        logging.disable(logging.WARNING)
        real_stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115 - the handlers' JSON logs
        try:
            handlers = {name: importlib.import_module(f"functions.{name}.app").handler for name in FUNCTIONS}
            sqs = boto3.client("sqs")  # the default session: not the counted one, as Lambda's poller is not our code
            one_message(tally, handlers, sqs, "cold", "hello", "U" + "c" * 32)
            one_message(tally, handlers, sqs, "new", "hello, I'd like a refund", "U" + "a" * 32)
            one_message(tally, handlers, sqs, "later", "order 1234, thanks", "U" + "a" * 32)
            with FakeCrm() as crm, FakePlatform() as line:
                line.line_token("calls-line-token-4c3d")
                os.environ["SWITCHBOARD_ALLOW_HTTP"] = "1"  # the sender's policy: the fake LINE on loopback, as locally
                config = CONFIG.replace("http://127.0.0.1:9", line.url)
                apply(config + yaml.safe_dump({"crm": crm.config("zendesk")}), home, api_url="https://api.example")
                crm_writer = importlib.import_module("functions.crm_writer.app")
                crm_writer.DEPS.settings._cache.clear()  # as after the settings cache's few seconds
                # Not shown: the crm stage's first message with a CRM fills its caches (settings, the CRM secret).
                one_message(tally, handlers, sqs, "warm-up", "hello", "U" + "d" * 32)
                one_message(tally, handlers, sqs, "new, zendesk", "hello, I'd like a refund", "U" + "b" * 32)
                one_message(tally, handlers, sqs, "later, zendesk", "order 1234, thanks", "U" + "b" * 32)
                handlers |= {name: importlib.import_module(f"functions.{name}.app").handler for name in REPLY_FUNCTIONS}
                ticket = str(crm.records("zendesk", "tickets")[-1]["id"])
                one_reply(tally, handlers, sqs, crm, ticket, "reply warm-up")  # fills the sender's and crm_events' caches
                one_reply(tally, handlers, sqs, crm, ticket, REPLY_CASE)
                pushes = len(line.line_pushes())
                tickets = crm.records("zendesk", "tickets")
        finally:
            sys.stdout.close()
            sys.stdout = real_stdout
        if written(os.environ["CONVERSATIONS_TABLE"]) != 6:
            raise SystemExit("the crm stage did not mark all six messages written")
        customer_comments = [[c for c in t["comments"] if c.get("via", {}).get("channel") != "web"] for t in tickets]
        if len(tickets) != 2 or [len(c) for c in customer_comments] != [1, 2]:
            raise SystemExit(f"zendesk did not get one ticket per conversation with every message: {tickets}")
        if pushes != 2:
            raise SystemExit(f"expected the two agent replies pushed to LINE, found {pushes}")

    print("AWS API calls per inbound LINE text message (botocore events on the shared session; moto)")
    totals: Counter[str] = Counter()
    floors: Counter[str] = Counter()
    for case in CASES:
        print(f"\n{case}: {TITLES[case]}")
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
    print("\nfloors (the fewest calls the job needs, per function and message, and why):")
    for function in FUNCTIONS:
        for case in ("new", "later", "new, zendesk", "later, zendesk", "cold"):
            shown = FLOORS[(function, case)]
            if case == "cold" and function != "webhook_line":  # the new-conversation floor plus the cache fills
                shown = [line for line in shown if line not in FLOORS[(function, "new")]]
                label = f"{case} (new, plus)"
            elif function != "crm_writer" and case.endswith("zendesk"):
                continue  # the CRM changes nothing before the crm stage
            else:
                label = case
            print(f"  {function} {label}:")
            for n, what in shown:
                print(f"    {n} x {what}")
    print(
        "\nnot counted (the Lambda service's SQS event source mapping, billed to the account too): per batch of up to 10,"
        " ReceiveMessage (long polls, also when empty) and DeleteMessageBatch, on the inbound and the crm queue"
    )
    print(f"\nAWS API calls per agent's reply ({REPLY_CASE}: the CRM's event, then the reply read and sent to LINE)")
    reply_total = reply_floor = 0
    for function in REPLY_FUNCTIONS:
        counted = tally.calls.get((function, REPLY_CASE), Counter())
        ours, floor = sum(counted.values()), floor_count(FLOORS[(function, REPLY_CASE)])
        reply_total, reply_floor = reply_total + ours, reply_floor + floor
        detail = ", ".join(f"{name} {n}" for name, n in sorted(counted.items()))
        print(f"  {function:<12} {ours:2d} calls  floor {floor:2d}  ratio {ours / floor:.2f}x   [{detail}]")
        if args.trace:
            for line_text in tally.trace.get((function, REPLY_CASE), []):
                print(f"      {line_text}")
        for n, what in FLOORS[(function, REPLY_CASE)]:
            print(f"    floor: {n} x {what}")
    print(f"  {'both':<12} {reply_total:2d} calls  floor {reply_floor:2d}  (goal: at most 6)")
    summary = {c: {"calls": totals[c], "floor": floors[c]} for c in CASES}
    summary[REPLY_CASE] = {"calls": reply_total, "floor": reply_floor}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
