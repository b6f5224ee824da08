"""Cold import and init of each function against its floor, `import boto3` plus one client.

Each sample is a fresh interpreter that imports the handler module the way Lambda's init phase
does (which, for our functions, also builds the clients they use), timed inside the process so
interpreter start-up is excluded from both. Goal: ratio <= 1.25 for every function.

Run: .venv/bin/python bench/cold_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.25
FUNCTIONS = ("webhook_line", "webhook_facebook", "webhook_gbm", "token_validate", "route", "crm_writer")
FLOOR = "import boto3\nboto3.client('sqs')"
TIMER = """
import time, sys
start = time.perf_counter()
{code}
sys.stdout.write(repr(time.perf_counter() - start))
"""


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "SETTINGS_TABLE": "t",
            "CONVERSATIONS_TABLE": "t",
            "IDEMPOTENCY_TABLE": "t",
            "INBOUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo",
            "CRM_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/c.fifo",
            "INBOUND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/d.fifo",
            "CRM_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/e.fifo",
            "SECRETS_PREFIX": "switchboard/bench",
            "ATTACHMENTS_BUCKET": "bench-attachments",
            "PYTHONDONTWRITEBYTECODE": "",
        }
    )
    return env


def sample(code: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(code=code)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    return float(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    env = environment()
    candidates = {"floor": FLOOR} | {name: f"import functions.{name}.app" for name in FUNCTIONS}
    for code in candidates.values():  # one untimed pass fills the bytecode cache, as a deployed package would have it
        sample(code, env)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.runs):
        for name, code in candidates.items():  # interleaved: machine noise hits every candidate alike
            samples[name].append(sample(code, env))
    floor = statistics.median(samples["floor"]) * 1000
    print(f"cold_start floor (import boto3 + one client) {floor:7.1f} ms")
    for name in FUNCTIONS:
        ours = statistics.median(samples[name]) * 1000
        print(f"cold_start {name:<17} {ours:7.1f} ms   ratio {ours / floor:.2f}x   (goal <= {GOAL}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
