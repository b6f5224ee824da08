"""Writes events/: one sample event per function, for `sam local invoke` and the deploy rehearsal.

The webhook samples are signed with the secrets of tests/deploy/config.yaml, so on a stack configured
with that file they are accepted (200, 201); on any other stack the edge refuses them (401), which still
shows the function runs. The SQS samples carry the envelopes token_validate and route write.
Everything is fixed (times, ids), so the files only change when the formats do:

    .venv/bin/python tests/deploy/_events.py          # rewrite events/
    .venv/bin/python tests/deploy/_events.py --check  # exit 1 if events/ differs (tests/deploy/test_events.py)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
CONFIG = Path(__file__).resolve().parent / "config.yaml"
SENT_MS = 1767225600000  # 2026-01-01T00:00:00Z
CONVERSATION_ID = f"{SENT_MS:012x}5a3f0c1e9b2d4e67"  # the form conversations.new_conversation_id makes
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:switchboard-{}.fifo"


def _accounts() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(CONFIG.read_text())
    return {a["id"]: a for a in config["accounts"]}


def api_event(
    method: str,
    resource: str,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    body: bytes | None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A REST API (v1) proxy event as API Gateway sends it to the `live` alias."""
    text = body.decode("utf-8") if body is not None else None
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTimeEpoch": SENT_MS,
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "sample"},
            "accountId": "123456789012",
            "apiId": "sample",
        },
        "body": text,
        "isBase64Encoded": False,
    }


def sqs_event(queue: str, bodies: list[tuple[str, str]]) -> dict[str, Any]:
    """An SQS batch as the event source mapping delivers it (FIFO attributes included)."""
    records = []
    for n, (group, body) in enumerate(bodies, start=1):
        records.append(
            {
                "messageId": f"0f6b1f9e-3c1d-4c53-9a51-00000000000{n}",
                "receiptHandle": f"sample-receipt-handle-{n}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(SENT_MS),
                    "SenderId": "AROASAMPLE:switchboard",
                    "ApproximateFirstReceiveTimestamp": str(SENT_MS + 20),
                    "SequenceNumber": f"1882741298642800000{n}",
                    "MessageGroupId": group,
                    "MessageDeduplicationId": f"sample-dedup-{n}",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN.format(queue),
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def events() -> dict[str, Any]:
    from switchboard.channels import facebook, gbm, instagram, line, whatsapp
    from switchboard.envelope import Customer, Envelope, Routing

    accounts = _accounts()
    out: dict[str, Any] = {}

    a = accounts["line-sample"]
    body = json.dumps(
        {
            "destination": "U0123456789abcdef0123456789abcdef",
            "events": [
                {
                    "type": "message",
                    "mode": "active",
                    "timestamp": SENT_MS,
                    "source": {"type": "user", "userId": "U4af4980629f4b2c3b5f2a1c8a7e6d5c4"},
                    "webhookEventId": "01JGKZ5X6Y7Z8A9B0C1D2E3F4G",
                    "deliveryContext": {"isRedelivery": False},
                    "replyToken": "b60d432864f44d079f6d8efe86cf404b",
                    "message": {"id": "444573844083572737", "type": "text", "text": "Hello, I would like a refund"},
                }
            ],
        },
        separators=(",", ":"),
    ).encode()
    out["webhook_line"] = api_event(
        "POST",
        "/webhooks/line/{account_id}",
        f"/webhooks/line/{a['id']}",
        {"account_id": a["id"]},
        {"Content-Type": "application/json", "X-Line-Signature": line.sign(a["secrets"]["channel_secret"], body)},
        body,
    )

    a = accounts["facebook-sample"]
    body = facebook.build_message(a["page_id"], "6543210987654321", "Hello from Messenger", mid="m_sample-1", now_ms=SENT_MS)
    out["webhook_facebook"] = api_event(
        "POST",
        "/webhooks/facebook/{account_id}",
        f"/webhooks/facebook/{a['id']}",
        {"account_id": a["id"]},
        {"Content-Type": "application/json", "X-Hub-Signature-256": facebook.sign_sha256(a["secrets"]["app_secret"], body)},
        body,
    )
    out["webhook_facebook_verify"] = api_event(
        "GET",
        "/webhooks/facebook/{account_id}",
        f"/webhooks/facebook/{a['id']}",
        {"account_id": a["id"]},
        {},
        None,
        query={"hub.mode": "subscribe", "hub.verify_token": a["secrets"]["verify_token"], "hub.challenge": "1158201444"},
    )

    a = accounts["gbm-sample"]
    body = gbm.build_message(
        "7c2d4f5a-1b3e-4c6d-8e9f-0a1b2c3d4e5f",
        "Hello from Google",
        brand_id=a["brand_id"],
        agent_id=a["agent_id"],
        message_id="4D1F6C0A-SAMPLE",
        request_id="9E2B7A3C-SAMPLE",
        now_ms=SENT_MS,
    )
    out["webhook_gbm"] = api_event(
        "POST",
        "/webhooks/gbm/{account_id}",
        f"/webhooks/gbm/{a['id']}",
        {"account_id": a["id"]},
        {"Content-Type": "application/json", "X-Goog-Signature": gbm.sign(a["secrets"]["client_token"], body)},
        body,
    )

    a = accounts["whatsapp-sample"]
    body = whatsapp.build_message(
        a["phone_number_id"], "16505551234", "Hello from WhatsApp", wamid="wamid.SAMPLE-1", now_s=SENT_MS // 1000
    )
    out["webhook_whatsapp"] = api_event(
        "POST",
        "/webhooks/whatsapp/{account_id}",
        f"/webhooks/whatsapp/{a['id']}",
        {"account_id": a["id"]},
        {"Content-Type": "application/json", "X-Hub-Signature-256": facebook.sign_sha256(a["secrets"]["app_secret"], body)},
        body,
    )

    a = accounts["instagram-sample"]
    body = instagram.build_message(
        a["instagram_id"], "1234567890123456", "Hello from Instagram", mid="m_ig-sample-1", now_ms=SENT_MS
    )
    out["webhook_instagram"] = api_event(
        "POST",
        "/webhooks/instagram/{account_id}",
        f"/webhooks/instagram/{a['id']}",
        {"account_id": a["id"]},
        {"Content-Type": "application/json", "X-Hub-Signature-256": facebook.sign_sha256(a["secrets"]["app_secret"], body)},
        body,
    )

    # The widget's configuration as the embedded script asks for it (the visitor's other calls need a session).
    out["chat"] = api_event(
        "GET",
        "/chat/{widget_id}/config",
        "/chat/web-sample/config",
        {"widget_id": "web-sample"},
        {"Origin": "https://portal.example.com"},
        None,
    )

    body = json.dumps({"text": "Hello from the web chat", "customer": {"name": "Sam Sample"}}).encode()
    out["token_validate"] = api_event(
        "POST",
        "/chat/{widget_id}/conversations",
        "/chat/web-sample/conversations",
        {"widget_id": "web-sample"},
        {"Content-Type": "application/json", "Origin": "https://portal.example.com"},
        body,
    )

    # What token_validate enqueues for a new chat (route opens the conversation under its id), then what
    # route forwards to the CRM stage once it has routed it.
    chat = Envelope(
        id="chat:web-sample:sample-message-1",
        channel="chat",
        account_id="web-sample",
        customer=Customer(id="v-sample-visitor", name="Sam Sample"),
        kind="text",
        sent_at=SENT_MS,
        received_at=SENT_MS + 5,
        correlation_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        text="Hello from the web chat",
        conversation_id=CONVERSATION_ID,
    )
    out["route"] = sqs_event("inbound", [(CONVERSATION_ID, chat.to_json())])
    routed = chat.with_(routing=Routing(workstream="social", queue="general", priority=5, rule=None))
    out["crm_writer"] = sqs_event("crm", [(CONVERSATION_ID, routed.to_json())])
    # What `switchboard reply` enqueues for the sender: the stored reply's id and its conversation.
    reply = chat.with_(
        id="r018c2e5b9a00a1b2c3d4e5f6a7b8c9d0",
        text="Thanks, an agent is on it.",
        correlation_id="r018c2e5b9a00a1b2c3d4e5f6a7b8c9d0",
        data={"direction": "out"},
    )
    out["sender"] = sqs_event("outbound", [(CONVERSATION_ID, reply.to_json())])

    # A Zendesk trigger's webhook call about a ticket, signed as Zendesk signs (timestamp + body) with a sample
    # signing secret. The rehearsal's stack has no CRM, so crm_events answers 404 unknown_provider: it runs.
    body = b'{"ticket_id":"35436"}'
    stamp = "2026-01-01T00:00:00Z"
    signature = base64.b64encode(hmac.new(b"sample-zendesk-signing-secret", stamp.encode() + body, hashlib.sha256).digest())
    out["crm_events"] = api_event(
        "POST",
        "/crm/{provider}/events",
        "/crm/zendesk/events",
        {"provider": "zendesk"},
        {
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Signature": signature.decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        },
        body,
    )
    return out


def rendered() -> dict[Path, str]:
    return {EVENTS / f"{name}.json": json.dumps(event, indent=2, ensure_ascii=False) + "\n" for name, event in events().items()}


def main(argv: list[str]) -> int:
    files = rendered()
    if "--check" in argv:
        stale = [p.name for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print(f"events/ is stale ({', '.join(stale)}): run .venv/bin/python tests/deploy/_events.py", file=sys.stderr)
            return 1
        return 0
    EVENTS.mkdir(exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
