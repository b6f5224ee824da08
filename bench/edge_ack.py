"""Warm edge ack time per channel against its floor, measured in the same run on the same moto.

The floor is the least any correct edge must do: verify the signature over the raw body, parse the
JSON, and one SendMessage. Ours is the whole Lambda handler: API Gateway event in, settings and
secrets (cached, as in a warm Lambda), verify, normalise every event into envelopes, one
SendMessageBatch, structured logging, response out. Goal: ratio <= 1.2.

Run: .venv/bin/python bench/edge_ack.py [--rounds N]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import uuid
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._support import Context, aws_env, create_resources, interleaved, median_ms

GOAL = 1.2


def line_case(sqs: Any, queue_url: str) -> tuple[Any, Any]:
    import boto3

    from infra.admin.send import line_body
    from switchboard.channels.line import sign

    secret = "bench-line-channel-secret"
    boto3.client("secretsmanager").create_secret(
        Name=f"{os.environ['SECRETS_PREFIX']}/account/line/bench-line",
        SecretString=json.dumps({"channel_secret": secret, "channel_access_token": "t"}),
    )
    boto3.client("dynamodb").put_item(
        TableName=os.environ["SETTINGS_TABLE"],
        Item={
            "pk": {"S": "account"},
            "sk": {"S": "bench-line"},
            "doc": {"S": json.dumps({"id": "bench-line", "channel": "line", "workstream": "w", "enabled": True})},
        },
    )
    bodies = [line_body(f"hello {i}", "U" + "0" * 32) for i in range(2000)]
    signatures = [sign(secret, b) for b in bodies]

    def floor(i: int) -> None:
        body, signature = bodies[i], signatures[i]
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        import base64

        if not hmac.compare_digest(signature.encode(), base64.b64encode(digest)):
            raise AssertionError("floor signature")
        json.loads(body)
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=body.decode(), MessageGroupId="g", MessageDeduplicationId=uuid.uuid4().hex
        )

    from functions.webhook_line import app

    context = Context()

    def ours(i: int) -> None:
        event = {
            "httpMethod": "POST",
            "path": "/webhooks/line/bench-line",
            "pathParameters": {"account_id": "bench-line"},
            "headers": {"Content-Type": "application/json", "X-Line-Signature": signatures[i]},
            "requestContext": {"requestId": uuid.uuid4().hex},
            "body": bodies[i].decode(),
            "isBase64Encoded": False,
        }
        answer = app.handler(event, context)
        if answer["statusCode"] != 200:
            raise AssertionError(answer)

    return floor, ours


def drain(sqs: Any, queue_url: str) -> None:
    """Consume what the last call enqueued (PurgeQueue is limited to once a minute)."""
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages") or []
        if not messages:
            return
        sqs.delete_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    aws_env()
    from moto import mock_aws

    with mock_aws():
        create_resources()
        import boto3

        sqs = boto3.client("sqs")
        queue_url = os.environ["INBOUND_QUEUE_URL"]
        real_stdout = sys.stdout
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the handlers' JSON logs go where Lambda's would: not the terminal
        try:
            cases = {"line": line_case(sqs, queue_url)}
            results = {}
            for channel, (floor, ours) in cases.items():
                samples = interleaved({"floor": floor, "ours": ours}, args.rounds, reset=lambda: drain(sqs, queue_url))
                results[channel] = (median_ms(samples["floor"]), median_ms(samples["ours"]))
        finally:
            sys.stdout.close()
            sys.stdout = real_stdout
    worst = 0.0
    for channel, (floor_ms, ours_ms) in results.items():
        ratio = ours_ms / floor_ms
        worst = max(worst, ratio)
        print(f"edge_ack {channel:<9} ours {ours_ms:7.3f} ms   floor {floor_ms:7.3f} ms   ratio {ratio:.2f}x   (goal <= {GOAL}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
