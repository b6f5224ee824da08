"""``switchboard local``: start the local stack, apply a configuration to it, then let requests in.

The composition lives here, in the command, so the stack (``infra.local``) never imports the admin
code that configures it. It prints ``ready <gateway URL>`` once the configuration is applied and
stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.admin.apply import apply_file
from infra.admin.resources import Resources
from infra.local.stack import LocalStack

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "local" / "demo.yaml"


def applying(config: Path | None) -> Callable[[dict[str, Any]], None]:
    """The stack's ``configure`` hook: apply ``config`` (the demo's without one), as `switchboard apply` would."""

    def configure(state: dict[str, Any]) -> None:
        code, lines = apply_file(config or DEMO_CONFIG, Resources.from_state(state), dry_run=False)
        for row in lines:
            print(row, flush=True)
        if code == 2:
            raise SystemExit(2)

    return configure


def configured_stack(config: Path | None, *, port: int = 0, stack: str = "switchboard-local") -> LocalStack:
    """A local stack that applies ``config`` as it starts: for the command, the load run and benchmarks."""
    return LocalStack(port=port, stack=stack, configure=applying(config))


def run(port: int, config: Path | None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request lines
    stack = configured_stack(config, port=port)
    stopped = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        state = stack.start()
    except SystemExit as exc:
        stack.stop()
        return int(exc.code or 1)
    except OSError as exc:
        stack.stop()
        print(f"switchboard local: {exc}", file=sys.stderr)
        return 1
    print(f"ready {state['api_url']}  (moto {state['endpoint_url']}; stop with Ctrl-C)", flush=True)
    stopped.wait()
    print("stopping", flush=True)
    stack.stop()
    print("stopped", flush=True)
    return 0
