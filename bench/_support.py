"""Shared set-up for the benchmarks: one in-process moto with the template's resources."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def aws_env() -> None:
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)


def create_resources() -> dict[str, str]:
    """Create the template's tables and queues in the active moto mock; export the functions' environment."""
    from infra.local.template import create_resources, plan

    p = plan(ROOT / "template.yaml", stack="bench", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=30)
    urls = create_resources(p)
    env: dict[str, str] = {}
    for fn in p.functions.values():
        env.update(fn.env)
    for key, value in env.items():
        for logical, url in urls.items():
            if value.endswith("/" + p.queues[logical]["name"]):
                env[key] = url
    os.environ.update(env)
    return env


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def interleaved(
    candidates: dict[str, Callable[[int], Any]], rounds: int, *, reset: Callable[[], Any] | None = None, warmup: int = 30
) -> dict[str, list[float]]:
    """Time each candidate ``rounds`` times, alternating, so machine noise hits all of them alike.

    ``reset`` runs untimed after every call: moto's SQS gets slower as a queue fills, which would
    otherwise measure the queue's length rather than the code.
    """
    for i in range(warmup):
        for run in candidates.values():
            run(i)
            if reset:
                reset()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for i in range(warmup, warmup + rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            run(i)
            samples[name].append(time.perf_counter() - start)
            if reset:
                reset()
    return samples


class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 5000
