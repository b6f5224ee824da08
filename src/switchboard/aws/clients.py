"""boto3 clients, created once per process with explicit timeouts.

Endpoints follow boto3's own resolution, so ``AWS_ENDPOINT_URL`` points every client at the local
moto server when ``switchboard local`` runs the handlers.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

_lock = threading.Lock()


@functools.cache
def _session() -> Any:
    """One session per process: each new session reloads botocore's data files, which costs most of a cold start."""
    import boto3

    return boto3.session.Session()


@functools.cache
def client(service: str) -> Any:
    from botocore.config import Config

    config = Config(
        connect_timeout=float(os.environ.get("SWITCHBOARD_AWS_CONNECT_TIMEOUT", "2")),
        read_timeout=float(os.environ.get("SWITCHBOARD_AWS_READ_TIMEOUT", "5")),
        retries={"mode": "standard", "max_attempts": 3},
        # Presigned URLs (agents' files offered to a platform) signed with SigV4, which every region accepts.
        signature_version="s3v4" if service == "s3" else None,
    )
    with _lock:  # sessions are not thread-safe; the clients they make are
        return _session().client(service, config=config)


def env(name: str) -> str:
    """A resource name the template passes in; a missing one is a deployment error, said plainly."""
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set (see template.yaml)")
    return value
