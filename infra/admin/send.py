"""``switchboard send``: sign a realistic webhook with the stored secret and post it, as the platform would."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.admin.resources import Resources
from switchboard.secret_names import secret_name

DEMO_LINE_USER = "U" + hashlib.md5(b"switchboard-demo-customer", usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Signed:
    path: str
    body: bytes
    headers: dict[str, str]


def ulid_like() -> str:
    """LINE's webhookEventId is a ULID: 26 Crockford base32 characters, time first."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def line_body(text: str, user: str, *, event_id: str | None = None, redelivery: bool = False) -> bytes:
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id or ulid_like(),
        "deliveryContext": {"isRedelivery": redelivery},
        "replyToken": secrets.token_hex(16),
        "message": {"id": str(secrets.randbelow(10**18)), "type": "text", "text": text, "quoteToken": secrets.token_urlsafe(16)},
    }
    return json.dumps({"destination": "U" + secrets.token_hex(16), "events": [event]}, ensure_ascii=False).encode("utf-8")


def sign_line(account: dict[str, Any], secret: dict[str, Any], text: str, user: str | None, event_id: str | None) -> Signed:
    from switchboard.channels.line import sign

    body = line_body(text, user or DEMO_LINE_USER, event_id=event_id, redelivery=event_id is not None)
    return Signed(f"/webhooks/line/{account['id']}", body, {"X-Line-Signature": sign(secret["channel_secret"], body)})


SIGNERS: dict[str, Callable[[dict[str, Any], dict[str, Any], str, str | None, str | None], Signed]] = {"line": sign_line}


def send(
    resources: Resources, channel: str, account_id: str, text: str, user: str | None, event_id: str | None
) -> tuple[int, str]:
    import requests

    resources.activate()
    from switchboard.aws.settings_store import DynamoSettings

    account = DynamoSettings(resources.settings_table, ttl_seconds=0).all("account").get(account_id)
    if account is None or account.get("channel") != channel:
        return 2, f"no {channel} account {account_id!r} is configured"
    sm = resources.client("secretsmanager")
    try:
        secret = json.loads(
            sm.get_secret_value(SecretId=secret_name(resources.secrets_prefix, "account", account_id, channel))["SecretString"]
        )
    except sm.exceptions.ResourceNotFoundException:
        return 2, f"account {account_id!r} has no stored secrets: apply its configuration first"
    signer = SIGNERS.get(channel)
    if signer is None:
        return 2, f"sending as {channel} is not available yet"
    signed = signer(account, secret, text, user, event_id)
    if not resources.api_url:
        return 2, "the target has no API URL"
    answer = requests.post(
        resources.api_url + signed.path,
        data=signed.body,
        headers={"Content-Type": "application/json", **signed.headers},
        timeout=10,
    )
    return (0 if answer.ok else 1), f"{answer.status_code} {answer.text}"
