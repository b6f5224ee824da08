"""Cold import and init of each function against its floor, `import boto3` plus one client.

Each sample is a fresh interpreter that imports the handler module the way Lambda's init phase
does (which, for our functions, also builds the clients they use), timed inside the process so
interpreter start-up is excluded from both. Goal: ratio <= 1.25 for every function.

Run: .venv/bin/python bench/cold_start.py [--runs N] [--profile]

``--profile`` also prints, per function, where its import time goes beyond the floor's (``python -X
importtime``): the heaviest modules the floor does not load, and the handler module's own top-level code
(the boto3 clients it makes at init). What a deployed cold start adds on top (no bytecode in the layer
unless `sam build` found a python3.12; Lambda's own start) is outside this measure; SnapStart (template
parameter ``SnapStart``) takes import and init off the cold path altogether.
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
# Every function of the template (functions/<name>/app.py): a new one is measured without a change here.
FUNCTIONS = tuple(sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")))
FLOOR = "import boto3\nboto3.client('sqs')"
CLIENT_ONLY = """
import boto3, sys, time
start = time.perf_counter()
boto3.client('sqs')
sys.stdout.write(repr(time.perf_counter() - start))
"""
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
            "INBOUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo",
            "CRM_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/c.fifo",
            "INBOUND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/d.fifo",
            "CRM_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/e.fifo",
            "OUTBOUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/o.fifo",
            "OUTBOUND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/f.fifo",
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


def import_times(code: str, env: dict[str, str]) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, module with its nesting indent) per import, as ``python -X importtime`` reports them."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, cumulative, name = line.split(":", 1)[1].split("|")
            rows.append((int(own), int(cumulative), name.rstrip()))
    return rows


def profile(name: str, env: dict[str, str]) -> str:
    """The function's imports that the floor does not make, heaviest first, outermost only (children are inside)."""
    floor = {row[2].strip() for row in import_times(FLOOR.split("\n", maxsplit=1)[0], env)}
    rows = import_times(f"import functions.{name}.app", env)
    extra: list[tuple[int, str]] = []
    counted: list[int] = []  # nesting levels of the extra imports enclosing the current row
    for _own, cumulative, module in reversed(rows):  # importtime lists children first: reversed, parents come first
        level = len(module) - len(module.lstrip())
        while counted and counted[-1] >= level:
            counted.pop()
        bare = module.strip()
        if (
            counted
            or bare in floor
            or bare.startswith(("switchboard", "functions", "encodings", "site", "__editable__", "_distutils"))
        ):
            continue  # our own modules are looked into: what they pull in is listed, their own time summed below
        extra.append((cumulative, bare))
        counted.append(level)
    handler = next(own for own, _, module in rows if module.strip() == f"functions.{name}.app")
    ours = sum(own for own, _, module in rows if module.strip().startswith("switchboard"))
    listed = ", ".join(f"{module} {us / 1000:.0f}" for us, module in sorted(extra, reverse=True)[:5])
    return f"  {name:<17} init code (its clients) {handler / 1000:3.0f} ms, switchboard's modules {ours / 1000:3.0f} ms; {listed}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--profile", action="store_true", help="where each function's import time goes beyond the floor's")
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
    if args.profile:
        print("cold_start profile: one run each; imports beyond the floor's, heaviest first, in ms (each includes its own)")
        client_ms = (
            float(
                subprocess.run(
                    [sys.executable, "-c", CLIENT_ONLY], cwd=ROOT, env=env, capture_output=True, text=True, check=True
                ).stdout
            )
            * 1000
        )
        print(f"  (the floor's one client costs about {client_ms:.0f} ms of its figure; each function makes two or three)")
        for name in FUNCTIONS:
            print(profile(name, env))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
