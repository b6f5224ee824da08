"""Loads the very handler functions Lambda runs and invokes them one at a time per function.

Lambda gives each execution environment one request at a time; the local stack keeps one
environment per function, so a per-function lock reproduces that (and keeps Powertools' logger
state, such as the correlation id, from crossing between concurrent requests).
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.local import faults
from infra.local.template import ACCOUNT, REGION, Function


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float
    log_group_name: str = ""
    log_stream_name: str = ""
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class LocalFunction:
    def __init__(self, spec: Function, stack: str) -> None:
        self.spec = spec
        self.name = f"{stack}-{spec.logical_id}"
        module_name, _, attr = spec.handler.rpartition(".")
        package = spec.code_dir.replace("/", ".")
        module = importlib.import_module(f"{package}.{module_name}")
        self.handler: Callable[[dict[str, Any], Any], Any] = getattr(module, attr)
        # One request at a time per environment, as Lambda runs them; Powertools' logger state (the correlation id)
        # is per process, so only a function that asks for several environments lets its log lines interleave.
        self.lock = threading.BoundedSemaphore(spec.environments)
        faults.install()

    def invoke(self, event: dict[str, Any]) -> Any:
        context = LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=512,
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.name}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + self.spec.timeout,
        )
        with self.lock, faults.invocation(self.spec.logical_id, event):  # a no-op unless `make load` asks for crashes
            return self.handler(event, context)
