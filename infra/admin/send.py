"""``switchboard send``: sign a realistic webhook with the stored secret and post it, as the platform would."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.admin.resources import Resources
from switchboard import safe_json
from switchboard.secret_names import secret_name

DEMO_LINE_USER = "U" + hashlib.md5(b"switchboard-demo-customer", usedforsecurity=False).hexdigest()
# A page-scoped id (PSID) is a 16-digit number; a GBM conversationId a UUID. Stable, so repeated sends share a conversation.
DEMO_FACEBOOK_PSID = str(int(hashlib.md5(b"switchboard-demo-customer", usedforsecurity=False).hexdigest(), 16))[:16]
DEMO_GBM_CONVERSATION = str(uuid.uuid5(uuid.NAMESPACE_URL, "switchboard-demo-customer"))


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


def sign_facebook(account: dict[str, Any], secret: dict[str, Any], text: str, user: str | None, mid: str | None) -> Signed:
    """Both signatures, as Meta still sends them; the account's page as the entry id, so the page check passes."""
    from switchboard.channels.facebook import build_message, sign_sha1, sign_sha256

    body = build_message(str(account.get("page_id") or ""), user or DEMO_FACEBOOK_PSID, text, mid=mid)
    headers = {
        "X-Hub-Signature-256": sign_sha256(secret["app_secret"], body),
        "X-Hub-Signature": sign_sha1(secret["app_secret"], body),
    }
    return Signed(f"/webhooks/facebook/{account['id']}", body, headers)


def sign_gbm(account: dict[str, Any], secret: dict[str, Any], text: str, user: str | None, message_id: str | None) -> Signed:
    """Signed with whichever key the account names, as its deliveries are checked."""
    from switchboard.channels.gbm import build_message, sign, signing_key_name
    from switchboard.settings import account_from_dict

    key = secret[signing_key_name(account_from_dict(account))]
    body = build_message(
        user or DEMO_GBM_CONVERSATION,
        text,
        brand_id=str(account.get("brand_id") or "BRAND_ID"),
        agent_id=str(account.get("agent_id") or "AGENT_ID"),
        message_id=message_id,
    )
    return Signed(f"/webhooks/gbm/{account['id']}", body, {"X-Goog-Signature": sign(key, body)})


SIGNERS: dict[str, Callable[[dict[str, Any], dict[str, Any], str, str | None, str | None], Signed]] = {
    "line": sign_line,
    "facebook": sign_facebook,
    "gbm": sign_gbm,
}


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
        secret = safe_json.loads(
            sm.get_secret_value(SecretId=secret_name(resources.secrets_prefix, "account", account_id, channel))["SecretString"]
        )
    except sm.exceptions.ResourceNotFoundException:
        return 2, f"account {account_id!r} has no stored secrets: apply its configuration first"
    except safe_json.JsonError:
        return 2, f"account {account_id!r}'s stored secret is not JSON: apply its configuration again"
    signer = SIGNERS.get(channel)
    if signer is None:
        return 2, f"sending as {channel} is not available yet"
    if not isinstance(secret, dict):
        return 2, f"account {account_id!r}'s stored secret is not a JSON object: apply its configuration again"
    try:
        signed = signer(account, secret, text, user, event_id)
    except KeyError as exc:
        return 2, f"account {account_id!r} has no stored {exc.args[0]}: apply its configuration again"
    if not resources.api_url:
        return 2, "the target has no API URL"
    answer = requests.post(
        resources.api_url + signed.path,
        data=signed.body,
        headers={"Content-Type": "application/json", **signed.headers},
        timeout=10,
    )
    return (0 if answer.ok else 1), f"{answer.status_code} {answer.text}"
