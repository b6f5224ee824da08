"""The local stack (`switchboard local`) the e2e session runs against, and helpers to drive it as a user would."""

from __future__ import annotations

import contextlib
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

from . import _hygiene

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).resolve().parent / "config.yaml"
SWITCHBOARD = Path(sys.executable).parent / "switchboard"
READY_TIMEOUT = 60.0
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once
WAIT = 30.0  # bound for the pipeline to show a result
T = TypeVar("T")


class _NoAliases(yaml.SafeDumper):
    """`switchboard apply` refuses YAML aliases to mappings or lists (alias bombs), so a test that reuses one
    dict in several places must write it out each time."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_config(document: Any) -> str:
    """A configuration document as YAML that `switchboard apply` accepts: no anchors, keys in written order."""
    return yaml.dump(document, Dumper=_NoAliases, sort_keys=False)


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
        if len(args) > 1 and args[0] == "apply":  # its secrets must then never show in a log or an error body
            _hygiene.register_config(ROOT / args[1])
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

    def wait_stored(self, account_id: str, user: str, *, messages: int = 1) -> dict[str, Any]:
        """Like wait_conversation, but only until route has stored the messages (stages after it may still be busy)."""

        def ready() -> dict[str, Any] | None:
            rows = self.conversations_of(account_id, user)
            return self.show(rows[0]["conversation_id"]) if len(rows) == 1 and rows[0]["message_count"] >= messages else None

        return wait_for(ready, f"{messages} stored message(s) of {user} on {account_id}")

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

    def account_secrets(self, account_id: str) -> dict[str, str]:
        account = next(a for a in self.config["accounts"] if a["id"] == account_id)
        return {k: str(v) for k, v in account["secrets"].items()}

    def post_facebook(self, account_id: str, body: bytes, *, headers: dict[str, str] | None = None) -> requests.Response:
        """Signed with the account's app secret as Meta does (X-Hub-Signature-256) unless ``headers`` says otherwise."""
        from switchboard.channels.facebook import sign_sha256

        if headers is None:
            headers = {"X-Hub-Signature-256": sign_sha256(self.account_secrets(account_id)["app_secret"], body)}
        sent = {"Content-Type": "application/json", **headers}
        return requests.post(f"{self.url}/webhooks/facebook/{account_id}", data=body, headers=sent, timeout=10)

    def post_gbm(
        self, account_id: str, body: bytes, *, key: str | None = "client_token", headers: dict[str, str] | None = None
    ) -> requests.Response:
        """Signed as Google does (X-Goog-Signature) with the account's secret named ``key``; None sends it unsigned."""
        from switchboard.channels.gbm import sign as sign_gbm

        sent = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            sent["X-Goog-Signature"] = sign_gbm(self.account_secrets(account_id)[key], body)
        return requests.post(f"{self.url}/webhooks/gbm/{account_id}", data=body, headers=sent, timeout=10)

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
    with start_stack(CONFIG, tmp_path_factory.mktemp("switchboard-home")) as running:
        yield running


@contextlib.contextmanager
def start_stack(config_path: Path | None, home: Path, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """`switchboard local --config config_path` with its state in ``home``; stopped (and checked) on exit.

    For a module whose settings must not meet the session stack's (the CRM is global to a stack).
    ``None`` runs the demo exactly as the README's `make demo` does (no ``--config``).
    """
    demo = config_path is None
    if config_path is None:
        from infra.admin.local import DEMO_CONFIG

        config_path = DEMO_CONFIG
    out_path, err_path = home / "local.out", home / "local.err"
    _hygiene.register_config(config_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # The recorded payloads name real CDN and storage URLs: every fetch beyond this machine goes to a
    # closed proxy and fails at once, as it would in CI, while the fake servers on 127.0.0.1 answer.
    env.update({"HTTPS_PROXY": NOWHERE, "HTTP_PROXY": NOWHERE, "NO_PROXY": "127.0.0.1,localhost"})
    # An admin debugging turns event logging on; every stack runs so, and the hygiene check at its stop
    # proves that no function logs a request (signatures, tokens, JWTs) even then.
    env["POWERTOOLS_LOGGER_LOG_EVENT"] = "true"
    env.update(extra_env or {})
    env["SWITCHBOARD_HOME"] = str(home)
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(
            [str(SWITCHBOARD), "local", "--port", "0", *([] if demo else ["--config", str(config_path)])],
            stdout=out,
            stderr=err,
            env=env,
            cwd=ROOT,
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
        _hygiene.REGISTRY.stack_urls.add(url)
        yield Stack(url=url, home=home, config=yaml.safe_load(config_path.read_text()))
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
    leaks = _hygiene.check_stack(url, home)
    assert not leaks, "a configured secret or token appears in the stack's logs or error bodies:\n" + "\n".join(leaks)
