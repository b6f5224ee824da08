"""Every function's init (its import, as Lambda's init phase runs it) makes no network call and opens no connection.

That keeps init cheap, and it is what makes SnapStart (template parameter ``SnapStart``) safe without
restore hooks: a snapshot taken after init holds boto3 clients but no socket, no fetched secret and no
credential expiry of its own, so nothing in it goes stale on restore."""

from __future__ import annotations

import subprocess
import sys

from ._rehearsal import ROOT, offline_env

# Every function folder (functions/<name>/app.py): a new one is checked without a change here.
FUNCTIONS = tuple(sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")))
PROBE = """
import socket, sys
def refuse(*args, **kwargs):
    raise SystemExit("network call during init: " + repr(args[:2]))
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import importlib
for name in sys.argv[1:]:
    importlib.import_module(f"functions.{name}.app")
print("ok", len(sys.argv) - 1)
"""


def test_init_makes_no_network_call() -> None:
    env = offline_env(
        SETTINGS_TABLE="settings",
        CONVERSATIONS_TABLE="conversations",
        IDEMPOTENCY_TABLE="idempotency",
        INBOUND_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/s-inbound.fifo",
        CRM_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/s-crm.fifo",
        INBOUND_DLQ_URL="https://sqs.us-east-1.amazonaws.com/123456789012/s-inbound-dlq.fifo",
        CRM_DLQ_URL="https://sqs.us-east-1.amazonaws.com/123456789012/s-crm-dlq.fifo",
        OUTBOUND_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/s-outbound.fifo",
        OUTBOUND_DLQ_URL="https://sqs.us-east-1.amazonaws.com/123456789012/s-outbound-dlq.fifo",
        ATTACHMENTS_BUCKET="attachments",
        SECRETS_PREFIX="switchboard/s",
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *FUNCTIONS], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == f"ok {len(FUNCTIONS)}", done.stdout + done.stderr
