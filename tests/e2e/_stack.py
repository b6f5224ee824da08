"""The local stack (`switchboard local`) the e2e session runs against, and helpers to drive it as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml

from switchboard.channels.line import sign

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).resolve().parent / "config.yaml"
SWITCHBOARD = Path(sys.executable).parent / "switchboard"
READY_TIMEOUT = 60.0
WAIT = 30.0  # bound for the pipeline to show a result
T = TypeVar("T")


def new_user() -> str:
    """A LINE userId of the real shape (U + 32 hex), unique per test."""
    return "U" + uuid.uuid4().hex


def new_event_id() -> str:
    return uuid.uuid4().hex.upper()[:26]


def line_event(
    text: str, user: str, *, event_id: str | None = None, timestamp: int | None = None, redelivery: bool = False
) -> dict[str, Any]:
    return {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000) if timestamp is None else timestamp,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id or new_event_id(),
        "deliveryContext": {"isRedelivery": redelivery},
        "replyToken": uuid.uuid4().hex,
        "message": {"id": str(uuid.uuid4().int % 10**18), "type": "text", "text": text, "quoteToken": uuid.uuid4().hex},
    }


def line_body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"destination": "U" + "e" * 32, "events": list(events)}, ensure_ascii=False).encode("utf-8")


@dataclass
class Stack:
    url: str
    home: Path
    config: dict[str, Any]

    # -- the command -------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["SWITCHBOARD_HOME"] = str(self.home)
        return env

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(SWITCHBOARD), *args], capture_output=True, text=True, env=self.env(), timeout=timeout, check=False, cwd=ROOT
        )
        if check:
            assert done.returncode == 0, f"switchboard {' '.join(args)} exited {done.returncode}: {done.stderr}{done.stdout}"
        return done

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def conversations(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.cli_json("conversations", "list", "--limit", "1000")
        return rows

    def show(self, conversation_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.cli_json("conversations", "show", conversation_id)
        return view

    def conversations_of(self, account_id: str, user: str) -> list[dict[str, Any]]:
        return [r for r in self.conversations() if r["account_id"] == account_id and r["customer"]["id"] == user]

    def wait_conversation(self, account_id: str, user: str, *, messages: int = 1) -> dict[str, Any]:
        """The customer's conversation once it holds at least ``messages`` messages and its CRM stage has run for them."""

        def ready() -> dict[str, Any] | None:
            rows = self.conversations_of(account_id, user)
            if len(rows) != 1 or rows[0]["message_count"] < messages:
                return None
            view = self.show(rows[0]["conversation_id"])
            return view if view["crm"]["messages_written"] >= messages else None

        return wait_for(ready, f"a conversation of {user} on {account_id} with {messages} message(s)")

    # -- the webhook -------------------------------------------------------------------------------
    def secret(self, account_id: str) -> str:
        account = next(a for a in self.config["accounts"] if a["id"] == account_id)
        return str(account["secrets"]["channel_secret"])

    def post_line(
        self, account_id: str, body: bytes, *, signature: str | None = "sign", headers: dict[str, str] | None = None
    ) -> requests.Response:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if signature == "sign":
            sent["X-Line-Signature"] = sign(self.secret(account_id), body)
        elif signature is not None:
            sent["X-Line-Signature"] = signature
        return requests.post(f"{self.url}/webhooks/line/{account_id}", data=body, headers=sent, timeout=10)

    def send_text(self, account_id: str, user: str, text: str, **event: Any) -> dict[str, Any]:
        sent = line_event(text, user, **event)
        answer = self.post_line(account_id, line_body(sent))
        assert (answer.status_code, answer.text) == (200, "{}")
        return sent

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.home / "local.json").read_text())
        return state


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll ``probe`` until it returns something other than None/False; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last is not None and last is not False:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("switchboard-home")
    out_path, err_path = home / "local.out", home / "local.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SWITCHBOARD_HOME"] = str(home)
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(
            [str(SWITCHBOARD), "local", "--port", "0", "--config", str(CONFIG)], stdout=out, stderr=err, env=env, cwd=ROOT
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        url = None
        while url is None:
            for line in out_path.read_text().splitlines():
                if line.startswith("ready "):
                    url = line.split()[1]
            if url is None:
                if process.poll() is not None:
                    pytest.fail(f"switchboard local exited {process.returncode}:\n{out_path.read_text()}\n{err_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"switchboard local was not ready within {READY_TIMEOUT:.0f}s:\n{out_path.read_text()}")
                time.sleep(0.1)
        assert url.startswith("http://127.0.0.1:")
        yield Stack(url=url, home=home, config=yaml.safe_load(CONFIG.read_text()))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail("switchboard local did not stop within 30 s of SIGTERM")
    output = out_path.read_text()
    assert process.returncode == 0, f"switchboard local exited {process.returncode}:\n{err_path.read_text()}"
    assert "stopped" in output.splitlines(), output[-2000:]
    assert not (home / "local.json").exists(), "the state file outlived the stack"
