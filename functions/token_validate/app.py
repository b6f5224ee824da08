"""Web chat start and sign-in callback: answers 501 until the signed-in chat issue lands."""

from __future__ import annotations

from typing import Any

from switchboard import apigw
from switchboard.channels.base import NotImplementedYet


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return apigw.response(NotImplementedYet("signed-in web chat is not implemented yet").response())
