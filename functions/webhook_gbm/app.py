"""Google Business Messages webhook: POST /webhooks/gbm/{account_id}. Answers Google's clientToken
handshake, or verifies X-Goog-Signature, normalises, enqueues, then answers 200."""

from __future__ import annotations

from typing import Any

from switchboard import apigw, edge
from switchboard.aws.wiring import edge_deps
from switchboard.channels.gbm import GbmAdapter
from switchboard.observability import logger, metrics

ADAPTER = GbmAdapter()
DEPS = edge_deps()


# log_event=False even if POWERTOOLS_LOGGER_LOG_EVENT is set: the handshake body carries the client token.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return apigw.serve(event, lambda request: edge.receive(ADAPTER, request, DEPS))
