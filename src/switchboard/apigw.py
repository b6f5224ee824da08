"""API Gateway REST (v1) proxy events in and out.

The edge core works on :class:`WebhookRequest`; this is the one place that knows API Gateway's
event shape, so the same handler serves Lambda and the local gateway (which builds the same events).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from switchboard.channels.base import BadRequest, WebhookError, WebhookRequest, WebhookResponse


def request(event: dict[str, Any]) -> WebhookRequest:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("body is marked base64 but does not decode") from None
    else:
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    context = event.get("requestContext") or {}
    return WebhookRequest(
        method=str(event.get("httpMethod", "POST")).upper(),
        path=str(event.get("path", "")),
        path_params=dict(event.get("pathParameters") or {}),
        query=dict(event.get("queryStringParameters") or {}),
        headers=headers,
        body=raw,
        request_id=str(context.get("requestId") or ""),
    )


def serve(event: dict[str, Any], answer: Callable[[WebhookRequest], WebhookResponse]) -> dict[str, Any]:
    """Every handler's path: a request API Gateway could not have sent well (a body marked base64
    that does not decode) is the client's 400, never an exception that API Gateway turns into a 502
    the platform would retry."""
    try:
        parsed = request(event)
    except WebhookError as refused:
        return response(refused.response())
    return response(answer(parsed))


def response(answer: WebhookResponse) -> dict[str, Any]:
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": answer.content_type, "Cache-Control": "no-store"},
        "body": answer.body,
        "isBase64Encoded": False,
    }
