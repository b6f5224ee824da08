"""gbm webhook: answers 501 until its channel adapter lands (issue: Facebook Messenger and GBM webhooks)."""

from __future__ import annotations

from typing import Any

from switchboard import apigw
from switchboard.channels.base import NotImplementedYet


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return apigw.response(NotImplementedYet("the gbm webhook is not implemented yet").response())
