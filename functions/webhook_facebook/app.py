"""Facebook Messenger webhook: GET /webhooks/facebook/{account_id} answers Meta's subscription check;
POST verifies X-Hub-Signature-256, normalises every entry and item, enqueues, then answers 200 EVENT_RECEIVED."""

from __future__ import annotations

from typing import Any

from switchboard import apigw, edge
from switchboard.aws.wiring import edge_deps
from switchboard.channels.facebook import FacebookAdapter
from switchboard.observability import logger, metrics

ADAPTER = FacebookAdapter()
DEPS = edge_deps()


# log_event=False even if POWERTOOLS_LOGGER_LOG_EVENT is set: the GET's query string carries the verify token.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return apigw.serve(event, lambda request: edge.receive(ADAPTER, request, DEPS))
