"""Secrets hygiene for the e2e session: no configured secret or token may appear in a log line or an error body.

What counts as a secret, collected while the session runs:

- every value under a ``secrets`` mapping of every configuration document a stack starts with or
  is given by ``switchboard apply`` (tests/e2e/config.yaml, the modules' extra documents, the fake
  CRM's credentials as ``FakeCrm.config`` puts them into a document);
- the bearer tokens the tests send to a stack (chat JWTs), and the access tokens and client
  secrets the fake IdP and fake CRM hand out or hold.

What is scanned, when a stack stops (``_stack.start_stack``): each line of its captured stdout and
stderr, and the body of every response with status >= 400 the tests got from it (recorded by a
hook on ``requests.Session.send``, through which ``requests.get``/``post`` go as well).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

MIN_LENGTH = 8  # shorter values ("true", a port) would match ordinary text; no configured secret is this short


@dataclass
class Registry:
    secrets: set[str] = field(default_factory=set)
    error_bodies: list[tuple[str, str]] = field(default_factory=list)  # (request line, body) of answers >= 400
    stack_urls: set[str] = field(default_factory=set)
    fakes: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, values: Iterable[Any]) -> None:
        with self.lock:
            self.secrets.update(str(v) for v in values if isinstance(v, str | int) and len(str(v)) >= MIN_LENGTH)

    def known(self) -> set[str]:
        """The registered values plus what the live fakes have issued so far."""
        found: set[str] = set()
        with self.lock:
            fakes = list(self.fakes)
        for fake in fakes:
            for tokens in getattr(fake, "_tokens", {}).values():  # FakeCrm: access tokens per provider
                found.update(tokens)
            found.update(getattr(getattr(fake, "_state", None), "access", {}).keys())  # FakeIdp: access tokens
            secret = getattr(fake, "client_secret", None)
            if isinstance(secret, str):
                found.add(secret)
        with self.lock:
            return self.secrets | {v for v in found if len(v) >= MIN_LENGTH}


REGISTRY = Registry()


def secrets_in(document: Any) -> list[str]:
    """Every leaf value under a ``secrets`` key, at any depth."""
    out: list[str] = []

    def leaves(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                leaves(value)
        elif isinstance(node, list):
            for value in node:
                leaves(value)
        elif node is not None and not isinstance(node, bool):
            out.append(str(node))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "secrets":
                    leaves(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return out


def register_config(path: Path) -> None:
    """The secrets of a configuration file about to be applied (literal values; env:/file: references resolve elsewhere)."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return  # a test applying a broken file on purpose: apply refuses it, nothing is stored
    REGISTRY.add(v for v in secrets_in(document) if not v.startswith(("env:", "file:")))


def mask(line: str, value: str) -> str:
    return line.replace(value, f"<secret {value[:3]}…, {len(value)} chars>")


def scan(lines: Iterable[tuple[str, str]], values: Iterable[str]) -> list[str]:
    """(where, text) pairs -> one masked finding per line that contains any of ``values``."""
    wanted = sorted(set(values), key=len, reverse=True)
    findings: list[str] = []
    for where, text in lines:
        for number, line in enumerate(text.splitlines(), start=1):
            hits = [v for v in wanted if v in line]
            if hits:
                masked = line
                for value in hits:
                    masked = mask(masked, value)
                findings.append(f"{where}:{number}: {masked[:400]}")
    return findings


def check_stack(url: str, home: Path) -> list[str]:
    """Findings for one stopped stack: its captured logs and the error bodies it answered the tests."""
    sources = [(str(home / name), (home / name).read_text(errors="replace")) for name in ("local.out", "local.err")]
    with REGISTRY.lock:
        sources += [(f"error body of {line}", body) for line, body in REGISTRY.error_bodies if line.split()[1].startswith(url)]
    return scan(sources, REGISTRY.known())


def track_fakes() -> None:
    """Remember every fake IdP and fake CRM started in this session, to read what they issue."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fakes, as the modules import them
    from fakes.crm import FakeCrm
    from fakes.idp import FakeIdp

    for cls in (FakeCrm, FakeIdp):
        if getattr(cls.start, "_tracked", False):
            continue
        original = cls.start

        def start(self: Any, _original: Any = original) -> Any:
            with REGISTRY.lock:
                REGISTRY.fakes.append(self)
            return _original(self)

        start._tracked = True  # type: ignore[attr-defined]
        cls.start = start  # type: ignore[method-assign]


def record_requests() -> None:
    """Record what the tests send to a stack (bearer tokens) and every error body it answers."""
    if getattr(requests.Session.send, "_recorded", False):
        return
    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = original(self, request, **kwargs)
        url = request.url or ""
        with REGISTRY.lock:
            to_stack = any(url.startswith(u) for u in REGISTRY.stack_urls)
        if to_stack:
            auth = request.headers.get("Authorization") or ""
            if auth.startswith("Bearer "):
                REGISTRY.add([auth[7:]])
            if response.status_code >= 400:
                with REGISTRY.lock:
                    REGISTRY.error_bodies.append((f"{request.method} {url} -> {response.status_code}", response.text))
        return response

    send._recorded = True  # type: ignore[attr-defined]
    requests.Session.send = send  # type: ignore[method-assign]
