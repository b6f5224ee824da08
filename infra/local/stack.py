"""The local stack: the whole pipeline on this machine, no AWS account and no Docker.

One process tree on 127.0.0.1: a moto server holding the template's tables, queues, bucket and the
secrets; the gateway calling the edge handlers; and a worker per SQS event source calling the
stages. It writes a state file so the ``switchboard`` command finds it. The stack only runs: what
is configured in it is the command's business (``infra.admin.local`` starts it, applies the
configuration through the ``configure`` hook, then lets requests in).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.local.state import point_at_local, state_file, write_state
from infra.local.template import create_resources, plan

if TYPE_CHECKING:
    from infra.local.gateway import LocalPages

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
VISIBILITY_TIMEOUT = 2  # seconds; five receives and a message is dead-lettered well inside a minute


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalStack:
    port: int = 3000
    stack: str = "switchboard-local"
    # Called with the state once the resources exist and before any request is let in: the command
    # applies the configuration here, so "ready" means configured.
    configure: Callable[[dict[str, Any]], None] | None = None
    # Local-only pages the gateway serves before the API's routes (the demo portal, infra/local/demo_chat.py).
    pages: LocalPages | None = None
    moto_port: int = 0
    workers: list[Any] = field(default_factory=list)

    def start(self) -> dict[str, Any]:
        from moto.server import ThreadedMotoServer

        self.moto_port = self.moto_port or free_port()
        endpoint = f"http://127.0.0.1:{self.moto_port}"
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.moto_port, verbose=False)
        self.moto.start()
        point_at_local(endpoint, "us-east-1")
        self.plan = plan(TEMPLATE, stack=self.stack, endpoint=endpoint, visibility_timeout=VISIBILITY_TIMEOUT)
        self.queue_urls = create_resources(self.plan)
        self._export_function_environment()

        from infra.local.gateway import Gateway, Route
        from infra.local.runtime import LocalFunction
        from infra.local.workers import QueueWorker

        functions = {logical: LocalFunction(spec, self.stack) for logical, spec in self.plan.functions.items()}
        routes = [
            Route(method, path, functions[logical])
            for logical, spec in self.plan.functions.items()
            for method, path in spec.routes
        ]
        # Bound (not serving yet) before the configuration is applied: `apply` knows the API's URL, which a CRM's
        # events are set up to call (Zendesk's webhook), as a deployed stack's ApiUrl output.
        self.gateway = Gateway(routes, "127.0.0.1", self.port, pages=self.pages)
        api_url = f"http://127.0.0.1:{self.gateway.port}"
        state = self._state(endpoint, api_url=api_url)
        write_state(state)
        if self.configure is not None:
            self.configure(state)
        import boto3

        sqs = boto3.client("sqs")
        for logical, spec in self.plan.functions.items():
            if spec.queue:
                url = self.queue_urls[spec.queue]
                arn = f"arn:aws:sqs:us-east-1:123456789012:{self.plan.queues[spec.queue]['name']}"
                self.workers.append(
                    QueueWorker(
                        sqs, url, arn, functions[logical], batch_size=spec.batch_size, report_failures=spec.report_failures
                    )
                )
        self.gateway.start()
        for worker in self.workers:
            worker.start()
        return state

    def stop(self) -> None:
        for worker in self.workers:
            worker.stopping.set()
        for worker in self.workers:
            worker.stop()
        if getattr(self, "gateway", None):
            self.gateway.stop()
        if getattr(self, "moto", None):
            self.moto.stop()
        try:
            current = json.loads(state_file().read_text())
            if current.get("pid") == os.getpid():
                state_file().unlink()
        except (OSError, ValueError):
            pass

    def _export_function_environment(self) -> None:
        """All handlers share this process, so their environments merge; the template names each variable one way."""
        merged: dict[str, str] = {}
        for spec in self.plan.functions.values():
            for key, value in spec.env.items():
                if key in merged and merged[key] != value:
                    raise RuntimeError(f"functions disagree on {key}: {merged[key]!r} vs {value!r}")
                merged[key] = value
        os.environ.update(merged)
        os.environ.setdefault("SWITCHBOARD_SECRETS_MAX_AGE", "5")
        os.environ.setdefault("SWITCHBOARD_SETTINGS_TTL", "3")
        os.environ.setdefault("SWITCHBOARD_RETRY_BASE_SECONDS", "1")  # crm retries after 1, 2, 4, 8 s, like the 2 s visibility
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.setdefault("SWITCHBOARD_ALLOW_HTTP", "1")  # key servers and IdPs on 127.0.0.1 in tests
        os.environ.setdefault("SWITCHBOARD_KEY_REFETCH_SECONDS", "2")  # a rotated kid is picked up in seconds, not a minute

    def _state(self, endpoint: str, *, api_url: str) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "endpoint_url": endpoint,
            "api_url": api_url,
            "region": "us-east-1",
            "stack": self.stack,
            "outputs": self.plan.outputs,
        }
