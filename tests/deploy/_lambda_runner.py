"""Runs one built function the way Lambda's runtime does: import the handler once (init), then invoke it per event.

Started by tests/deploy/_rehearsal.py as ``python -S _lambda_runner.py HANDLER`` with PYTHONPATH naming the
function's build folder first, then the layer's pure-Python packages, then this venv (for what the layer
ships only as aarch64/cp312 binaries, and boto3, which Lambda's runtime provides). Events arrive as JSON
lines on stdin; each answer is one JSON line on the original stdout. Everything the function prints
(its logs) goes to stderr, so logs can never be mistaken for an answer.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from typing import Any


class Context:
    def __init__(self, timeout: float) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}:live"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"))
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "rehearsal"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # fd 1 (print, Powertools' logger and metrics) now reaches stderr
    sys.stdout = sys.stderr
    module_name, _, attr = sys.argv[1].rpartition(".")
    timeout = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "10"))
    started = time.perf_counter()
    handler = getattr(importlib.import_module(module_name), attr)
    files = {
        name: getattr(sys.modules.get(name), "__file__", None) for name in ("switchboard", "aws_lambda_powertools", module_name)
    }
    answers.write(json.dumps({"init_ms": (time.perf_counter() - started) * 1000, "files": files}) + "\n")
    answers.flush()
    for line in sys.stdin:
        event: Any = json.loads(line)
        try:
            answer = {"result": handler(event, Context(timeout))}
        except Exception as exc:  # Lambda reports an error to the caller (API Gateway's 502, SQS's retry)
            traceback.print_exc()
            answer = {"error": type(exc).__name__}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
