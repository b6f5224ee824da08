"""Shared set-up for the attachment and name tests: accounts per channel, their secrets, recorded payloads, a bucket."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from fakes.ports import FakeSecrets, FakeSettings

from switchboard import channels
from switchboard.attachments import AttachmentKeeper
from switchboard.aws.blob_store import S3BlobStore
from switchboard.envelope import Envelope
from switchboard.http_fetch import RequestsFetcher
from switchboard.secret_names import secret_name
from switchboard.settings import Account, Workstream
from switchboard.web import WebhookRequest

from ._fakes import LINE_SECRET, LINE_TOKEN, PREFIX

TESTDATA = Path(__file__).resolve().parents[3] / "src" / "switchboard" / "channels" / "testdata"
T0 = 1_700_000_000_000
BUCKET = "unit-attachments"
FB_TOKEN = "fb-page-token-EAAG-7c7c7c-do-not-log"
FB_APP_SECRET = "fb-app-secret-4d4d4d-do-not-log"
GBM_CLIENT_TOKEN = "GBMCLIENTTOKEN00"
LINE_DATA = "https://api-data.line.test"
LINE_API = "https://api.line.test"
GRAPH = "https://graph.facebook.test/v19.0"
LIMITS: dict[str, Any] = {"max_bytes": 4096, "extensions": ["jpg", "jpeg", "png", "pdf", "txt", "mp4"]}
CONVERSATION_ID = "018bcfe56800aaaabbbbccccdddd"


def accounts(limits: dict[str, Any] | None = None) -> dict[str, Account]:
    attachments = LIMITS if limits is None else limits
    return {
        "line-tokyo": Account(
            id="line-tokyo",
            channel="line",
            workstream="social",
            options={"data_base_url": LINE_DATA, "api_base_url": LINE_API, "attachments": attachments},
        ),
        "fb-store": Account(
            id="fb-store",
            channel="facebook",
            workstream="social",
            options={"page_id": "104123456789012", "graph_base_url": GRAPH, "attachments": attachments},
        ),
        "gbm-agent": Account(
            id="gbm-agent",
            channel="gbm",
            workstream="social",
            # The placeholder agent of Google's samples and build_message: deliveries for other agents are skipped.
            options={"attachments": attachments, "brand_id": "BRAND_ID", "agent_id": "AGENT_ID"},
        ),
    }


def secrets() -> FakeSecrets:
    return FakeSecrets(
        values={
            secret_name(PREFIX, "account", "line-tokyo", "line"): {
                "channel_secret": LINE_SECRET,
                "channel_access_token": LINE_TOKEN,
            },
            secret_name(PREFIX, "account", "fb-store", "facebook"): {
                "app_secret": FB_APP_SECRET,
                "verify_token": "fb-verify",
                "page_access_token": FB_TOKEN,
            },
            secret_name(PREFIX, "account", "gbm-agent", "gbm"): {"client_token": GBM_CLIENT_TOKEN},
        }
    )


def settings(limits: dict[str, Any] | None = None) -> FakeSettings:
    return FakeSettings(
        accounts=accounts(limits),
        workstreams={"social": Workstream(id="social", fallback_queue="general", close_after_minutes=60)},
    )


def parse(account_id: str, body: dict[str, Any]) -> list[Envelope]:
    """Envelopes exactly as the edge makes them from a platform's body."""
    account = accounts()[account_id]
    request = WebhookRequest("POST", "/", {}, {}, {}, json.dumps(body).encode(), "req-1")
    return channels.adapter(account.channel).parse(request, account, received_at=T0, correlation_id="corr-1").envelopes


def line_events(predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    recorded = json.loads((TESTDATA / "line" / "line_webhook_all_events_v3.json").read_text())
    return [e for e in recorded["events"] if predicate(e)]


def line_message(message_type: str, provider: str | None = None, *, user: str = "U206d25c2ea6bd87c17655609a1c37cb8") -> Envelope:
    """A recorded LINE media event (the recording's own ids and URLs), sent by ``user`` in a 1:1 chat."""

    def wanted(e: dict[str, Any]) -> bool:
        m = e.get("message") or {}
        return m.get("type") == message_type and (provider is None or (m.get("contentProvider") or {}).get("type") == provider)

    event = dict(line_events(wanted)[0])
    event["source"] = {"type": "user", "userId": user}
    (envelope,) = parse("line-tokyo", {"destination": "U" + "0" * 32, "events": [event]})
    return envelope


def facebook(file: str) -> list[Envelope]:
    return parse("fb-store", json.loads((TESTDATA / "facebook" / file).read_text()))


def gbm(file: str) -> Envelope:
    (envelope,) = parse("gbm-agent", json.loads((TESTDATA / "gbm" / file).read_text()))
    return envelope


@dataclass
class Sleeps:
    seen: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)


def bucket() -> S3BlobStore:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return S3BlobStore(BUCKET)


def stored_objects() -> dict[str, tuple[bytes, str]]:
    s3 = boto3.client("s3")
    out: dict[str, tuple[bytes, str]] = {}
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        got = s3.get_object(Bucket=BUCKET, Key=item["Key"])
        out[item["Key"]] = (got["Body"].read(), got["ContentType"])
    return out


def keeper(limits: dict[str, Any] | None = None, **kw: Any) -> AttachmentKeeper:
    return AttachmentKeeper(
        settings=settings(limits),
        secrets=kw.pop("secret_store", None) or secrets(),
        secrets_prefix=PREFIX,
        fetcher=RequestsFetcher(),
        blobs=S3BlobStore(BUCKET),
        sleep=kw.pop("sleep", None) or Sleeps(),
        **kw,
    )
