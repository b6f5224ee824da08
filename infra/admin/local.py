"""``switchboard local``: start the local stack, apply a configuration to it, then let requests in.

The composition lives here, in the command, so the stack (``infra.local``) never imports the admin
code that configures it. It prints ``ready <gateway URL>`` once the configuration is applied and
stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.admin.apply import apply_file
from infra.admin.resources import Resources
from infra.local.demo_chat import DemoPortal
from infra.local.demo_platform import DemoLine
from infra.local.gateway import LocalPages
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


def configured_stack(
    config: Path | None, *, port: int = 0, stack: str = "switchboard-local", pages: LocalPages | None = None
) -> LocalStack:
    """A local stack that applies ``config`` as it starts: for the command, the load run and benchmarks."""
    return LocalStack(port=port, stack=stack, configure=applying(config), pages=pages)


def demo_with_platform(folder: Path, portal: DemoPortal | None = None) -> tuple[Path, DemoLine]:
    """The demo configuration with its LINE accounts pointed at a local stand-in for LINE (infra/local/demo_platform.py),
    so `switchboard reply` in the README's walk-through reaches something and shows on this command's output; and its
    chat widget's auth setting at the demo portal's public key (infra/local/demo_chat.py), when ``portal`` is given."""
    import yaml

    document = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    lines = [a for a in document.get("accounts") or [] if a.get("channel") == DemoLine.channel]
    token = str(lines[0]["secrets"]["channel_access_token"]) if lines else "demo"
    platform = DemoLine(token, announce=lambda text: print(text, flush=True)).start()
    for account in lines:
        account["api_base_url"] = account["data_base_url"] = platform.url
    if portal is not None:
        portal.configure(document)
    path = folder / "demo-config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path, platform


def run(port: int, config: Path | None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request lines
    with tempfile.TemporaryDirectory(prefix="switchboard-demo-") as folder:
        platform: DemoLine | None = None
        portal: DemoPortal | None = None
        if config is None:  # the demo: its stand-in for LINE, and its portal page at /demo/chat
            portal = DemoPortal().start()
            config, platform = demo_with_platform(Path(folder), portal)
        try:
            return _serve(port, config, portal.page if portal is not None else None)
        finally:
            if platform is not None:
                platform.stop()
            if portal is not None:
                portal.stop()


def _serve(port: int, config: Path, pages: LocalPages | None = None) -> int:
    stack = configured_stack(config, port=port, pages=pages)
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
    if pages is not None:
        print(f"demo chat page: {state['api_url']}/demo/chat", flush=True)
    stopped.wait()
    print("stopping", flush=True)
    stack.stop()
    print("stopped", flush=True)
    return 0
