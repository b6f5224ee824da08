"""Warm edge ack time per channel against its own floor, measured in the same run on the same moto.

Each channel's floor is the least any correct edge for that platform must do: verify the platform's
signature over the raw body (LINE: HMAC-SHA256 base64; Facebook: HMAC-SHA256 hex; GBM: HMAC-SHA512
base64), parse the JSON, and one SendMessage, done directly with the same libraries. Ours is the
whole Lambda handler: API Gateway event in, settings and secrets (cached, as in a warm Lambda),
verify, normalise every event into envelopes, enqueue, structured logging, response out.
Goal: ratio <= 1.2 for every channel.

Run: .venv/bin/python bench/edge_ack.py [--rounds N] [--channel line|facebook|gbm ...]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._support import Context, aws_env, create_resources, interleaved, median_ms

GOAL = 1.2
BODIES = 2000


@dataclass(frozen=True)
class Case:
    """One channel: its account and secrets, pre-signed bodies, and how the platform's signature is checked."""

    channel: str
    account: dict[str, Any]
    secrets: dict[str, str]
    bodies: list[bytes]
    headers: list[dict[str, str]]
    check: Callable[[bytes, dict[str, str]], bool]  # the floor's own verification, straight from hmac
    ack: tuple[int, str]


def line_case() -> Case:
    from switchboard.channels.line import build_message as line_body
    from switchboard.channels.line import sign

    secret = "bench-line-channel-secret"
    bodies = [line_body(f"hello {i}", "U" + "0" * 32) for i in range(BODIES)]

    def check(body: bytes, headers: dict[str, str]) -> bool:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        return hmac.compare_digest(headers["X-Line-Signature"].encode(), base64.b64encode(digest))

    return Case(
        "line",
        {"id": "bench-line", "channel": "line", "workstream": "w", "enabled": True},
        {"channel_secret": secret, "channel_access_token": "t"},
        bodies,
        [{"X-Line-Signature": sign(secret, b)} for b in bodies],
        check,
        (200, "{}"),
    )


def facebook_case() -> Case:
    from switchboard.channels.facebook import build_message, sign_sha256

    secret, page = "bench-facebook-app-secret", "104123456789012"
    bodies = [build_message(page, "6789012345678901", f"hello {i}") for i in range(BODIES)]

    def check(body: bytes, headers: dict[str, str]) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers["X-Hub-Signature-256"].encode(), expected.encode())

    return Case(
        "facebook",
        {"id": "bench-facebook", "channel": "facebook", "workstream": "w", "enabled": True, "page_id": page},
        {"app_secret": secret, "verify_token": "v", "page_access_token": "t"},
        bodies,
        [{"X-Hub-Signature-256": sign_sha256(secret, b)} for b in bodies],
        check,
        (200, "EVENT_RECEIVED"),
    )


def gbm_case() -> Case:
    from switchboard.channels.gbm import build_message, sign

    token = "BENCHCLIENTTOKEN"
    bodies = [build_message(str(uuid.UUID(int=7)), f"hello {i}", display_name="Bench User") for i in range(BODIES)]

    def check(body: bytes, headers: dict[str, str]) -> bool:
        digest = hmac.new(token.encode(), body, hashlib.sha512).digest()
        return hmac.compare_digest(headers["X-Goog-Signature"].encode(), base64.b64encode(digest))

    return Case(
        "gbm",
        {
            "id": "bench-gbm",
            "channel": "gbm",
            "workstream": "w",
            "enabled": True,
            "signing_key": "client_token",
            "brand_id": "BRAND_ID",  # build_message's agent: a delivery for another agent would be skipped, not enqueued
            "agent_id": "AGENT_ID",
        },
        {"client_token": token},
        bodies,
        [{"X-Goog-Signature": sign(token, b)} for b in bodies],
        check,
        (200, "{}"),
    )


CASES: dict[str, Callable[[], Case]] = {"line": line_case, "facebook": facebook_case, "gbm": gbm_case}


def runners(case: Case, sqs: Any, queue_url: str) -> tuple[Callable[[int], None], Callable[[int], None]]:
    import importlib

    import boto3

    from switchboard.aws.settings_store import DynamoSettings

    account_id = case.account["id"]
    boto3.client("secretsmanager").create_secret(
        Name=f"{os.environ['SECRETS_PREFIX']}/account/{case.channel}/{account_id}", SecretString=json.dumps(case.secrets)
    )
    DynamoSettings(os.environ["SETTINGS_TABLE"]).put("account", account_id, case.account)

    def floor(i: int) -> None:
        body = case.bodies[i]
        if not case.check(body, case.headers[i]):
            raise AssertionError(f"{case.channel} floor signature")
        json.loads(body)
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=body.decode(), MessageGroupId="g", MessageDeduplicationId=uuid.uuid4().hex
        )

    app = importlib.import_module(f"functions.webhook_{case.channel}.app")
    context = Context()

    def ours(i: int) -> None:
        event = {
            "httpMethod": "POST",
            "path": f"/webhooks/{case.channel}/{account_id}",
            "pathParameters": {"account_id": account_id},
            "headers": {"Content-Type": "application/json", **case.headers[i]},
            "queryStringParameters": None,
            "requestContext": {"requestId": uuid.uuid4().hex},
            "body": case.bodies[i].decode(),
            "isBase64Encoded": False,
        }
        answer = app.handler(event, context)
        if (answer["statusCode"], answer["body"]) != case.ack:
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
    parser.add_argument("--channel", action="append", choices=sorted(CASES), help="only these channels (default: all)")
    args = parser.parse_args()
    if args.rounds + 30 > BODIES:
        parser.error(f"--rounds must be at most {BODIES - 30}")
    aws_env()
    from moto import mock_aws

    channels = args.channel or list(CASES)
    with mock_aws():
        create_resources()
        import boto3

        sqs = boto3.client("sqs")
        queue_url = os.environ["INBOUND_QUEUE_URL"]
        real_stdout = sys.stdout
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the handlers' JSON logs go where Lambda's would: not the terminal
        try:
            results = {}
            for channel in channels:
                floor, ours = runners(CASES[channel](), sqs, queue_url)
                # A refused or skipped request also answers the ack; time nothing unless this one enqueued.
                ours(BODIES - 1)
                if not sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1).get("Messages"):
                    raise AssertionError(f"{channel}: the webhook enqueued nothing; the bench would time a skip")
                drain(sqs, queue_url)
                samples = interleaved({"floor": floor, "ours": ours}, args.rounds, reset=lambda: drain(sqs, queue_url))
                results[channel] = (median_ms(samples["floor"]), median_ms(samples["ours"]))
        finally:
            sys.stdout.close()
            sys.stdout = real_stdout
    for channel, (floor_ms, ours_ms) in results.items():
        print(
            f"edge_ack {channel:<9} ours {ours_ms:7.3f} ms   floor {floor_ms:7.3f} ms   "
            f"ratio {ours_ms / floor_ms:.2f}x   (goal <= {GOAL}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
