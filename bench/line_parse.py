"""LINE verify + parse of a 28-event webhook body: our adapter against line-bot-sdk's WebhookParser.

Both sides start from what the Lambda receives, the body as text plus the X-Line-Signature value,
and end with one object per event after checking the signature in constant time:

- floor: ``linebot.v3.webhook.WebhookParser(secret).parse(body, signature)``, the official SDK's
  own verify-and-parse (HMAC-SHA256 over the body, then one typed model per event);
- ours: ``LineAdapter().verify(...)`` then ``.parse(...)``, which builds the versioned envelopes
  the edge enqueues (envelope ids, customer, kind, text, attachments, data).

The body is LINE's recorded all-events payload (28 events: every message type, follow, join,
postback, beacon, member events, unsend, video, edited and an unknown type), sent compact as
LINE sends it, with a distinct webhookEventId and Japanese text per event as live traffic has.
Rounds alternate between the two so machine noise hits both alike. Goal: ratio <= 1.0.

Run: .venv/bin/python bench/line_parse.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._support import interleaved, median_ms

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "switchboard" / "channels" / "testdata" / "line" / "line_webhook_all_events_v3.json"
SECRET = "bench-line-channel-secret-0c9d"
GOAL = 1.0


def realistic_body() -> str:
    """The recorded 28 events as one live delivery: compact JSON, a distinct id per event, Japanese text."""
    payload: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    for i, event in enumerate(payload["events"]):
        event["webhookEventId"] = f"01HQZ8B7J4K6M2N8P0R3S5T{i:03d}"
        message = event.get("message")
        if isinstance(message, dict) and message.get("type") == "text":
            message["text"] = f"注文番号 {1000 + i} の返金をお願いします。Thanks!"
    assert len(payload["events"]) == 28, len(payload["events"])
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    from linebot.v3.webhook import WebhookParser

    from switchboard.channels.line import LineAdapter, sign
    from switchboard.settings import Account
    from switchboard.web import WebhookRequest

    body = realistic_body()
    signature = sign(SECRET, body.encode("utf-8"))
    sdk = WebhookParser(SECRET)
    adapter = LineAdapter()
    account = Account(id="bench-line", channel="line", workstream="w")
    secrets = {"channel_secret": SECRET, "channel_access_token": "t"}

    def floor(_: int) -> Any:
        return sdk.parse(body, signature)

    def ours(_: int) -> Any:
        request = WebhookRequest(
            method="POST",
            path="/webhooks/line/bench-line",
            path_params={"account_id": "bench-line"},
            query={},
            headers={"x-line-signature": signature},
            body=body.encode("utf-8"),  # the SDK encodes the text inside parse(); so do we, here
            request_id="bench",
        )
        adapter.verify(request, account, secrets)
        return adapter.parse(request, account, received_at=1_800_000_000_000, correlation_id="bench").envelopes

    # Both must do the whole job, or the comparison means nothing.
    events, envelopes = floor(0), ours(0)
    if len(events) != 28 or len(envelopes) != 28:
        raise AssertionError(f"expected 28 events from both, got sdk {len(events)} ours {len(envelopes)}")

    samples = interleaved({"floor": floor, "ours": ours}, args.rounds, warmup=100)
    floor_ms, ours_ms = median_ms(samples["floor"]), median_ms(samples["ours"])
    print(
        f"line_parse 28 events, {len(body.encode())} bytes   ours {ours_ms:7.3f} ms   "
        f"line-bot-sdk WebhookParser {floor_ms:7.3f} ms   ratio {ours_ms / floor_ms:.2f}x   (goal <= {GOAL}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
