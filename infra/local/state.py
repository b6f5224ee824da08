"""Where a running local stack can be found: its state file, and pointing boto3 at its moto server.

Shared by the stack (which writes the state) and the command (which reads it to find its target),
so neither has to import the other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    return Path(os.environ.get("SWITCHBOARD_HOME") or Path.home() / ".switchboard")


def state_file() -> Path:
    return state_dir() / "local.json"


def write_state(state: dict[str, Any]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def point_at_local(endpoint: str, region: str) -> None:
    """Every boto3 client this process makes from now on talks to the local moto server."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_REGION"] = region
    os.environ["AWS_ACCESS_KEY_ID"] = "local"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "local"  # noqa: S105 - the local moto server accepts any credentials
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
