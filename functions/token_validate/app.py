"""Web chat start (POST /chat/{widget_id}/conversations) and the sign-in callback (GET /auth/{id}/callback).

The dependencies, and with them the cache of portals' public keys, live at module level: a warm
container validates tokens without fetching keys again.
"""

from __future__ import annotations

from typing import Any

from switchboard import apigw, chat_start
from switchboard.aws.wiring import chat_deps
from switchboard.observability import logger, metrics

DEPS = chat_deps()


@logger.inject_lambda_context  # chat_start sets the correlation id from API Gateway's request id
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return apigw.serve(event, lambda request: chat_start.handle(request, DEPS))
