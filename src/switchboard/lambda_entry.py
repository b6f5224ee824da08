"""Every Lambda's entry point: the one place that owns logging, metrics and the last-resort error.

The handlers used to be six copies of the same decorators, and their flags drifted: with
``POWERTOOLS_LOGGER_LOG_EVENT=true`` (a common debugging switch) two of them logged whole events,
``X-Line-Signature``, a customer's ``Bearer`` JWT and the text with them. Here event logging is off
whatever the environment says (an event is a request: its headers, query and body carry
credentials), and an exception that escapes an HTTP handler becomes the interface's JSON error
instead of API Gateway's bare 502, logged by type and stack frames only (an exception's message can
quote the input).

Kept small on purpose: the edge functions import it at init, and LINE gives up after 2 s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from switchboard import apigw
from switchboard.observability import logger, metrics

if TYPE_CHECKING:
    from switchboard.web import WebhookRequest, WebhookResponse

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

INTERNAL_ERROR = {
    "statusCode": 500,
    "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
    "body": '{"error":"internal_error","message":"the request could not be handled; it was not accepted"}',
    "isBase64Encoded": False,
}


class BatchStage(Protocol):
    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]: ...


def http(answer: Callable[[WebhookRequest], WebhookResponse]) -> Handler:
    """An API Gateway handler around ``answer``, which sees a parsed request and returns a response."""

    @logger.inject_lambda_context(log_event=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return apigw.serve(event, answer)
        except Exception as exc:  # the last resort: answered in the interface's form, nothing was accepted
            logger.error("unhandled error", extra={"error": type(exc).__name__, "at": where(exc)})
            metrics.add_metric(name="UnhandledErrors", unit="Count", value=1)
            return dict(INTERNAL_ERROR)

    return handler


def where(exc: BaseException) -> str:
    """Where ``exc`` was raised (the innermost frame's file, line and function): enough to find the bug,
    and unlike the exception's text or a formatted traceback, it quotes nothing the code was handed."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} {code.co_name}"


def sqs(stage: BatchStage, before: Callable[[Any], None] | None = None) -> Handler:
    """An SQS batch handler around ``stage``; ``before`` sees the Lambda context first (time budgets)."""

    @logger.inject_lambda_context(log_event=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if before is not None:
            before(context)
        return stage.handle(event, context)

    return handler
