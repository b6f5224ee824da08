"""LINE webhook: POST /webhooks/line/{account_id}. Verify, normalise, enqueue, then answer 200."""

from __future__ import annotations

from typing import Any

from switchboard import apigw, edge
from switchboard.aws.wiring import edge_deps
from switchboard.channels.line import LineAdapter
from switchboard.observability import logger, metrics

ADAPTER = LineAdapter()
DEPS = edge_deps()


@logger.inject_lambda_context  # edge.receive sets the correlation id from API Gateway's request id
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return apigw.serve(event, lambda request: edge.receive(ADAPTER, request, DEPS))
