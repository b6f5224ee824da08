"""API Gateway REST (v1) proxy events in and out.

The edge core works on :class:`WebhookRequest`; this is the one place that knows API Gateway's
event shape, so the same handler serves Lambda and the local gateway (which builds the same events).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from switchboard.errors import BadRequest, HttpError
from switchboard.web import WebhookRequest, WebhookResponse


def request(event: dict[str, Any]) -> WebhookRequest:
    body = event.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str | bytes | bytearray):
        # API Gateway sends text or nothing; anything else is a caller's mistake, not bytes to guess at
        # (bytes(5) would be five zero bytes, bytes({...}) a TypeError and a 502).
        raise BadRequest("body is neither text nor bytes")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("body is marked base64 but does not decode") from None
    elif isinstance(body, str):
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no platform signed such a body
            raise BadRequest("body is not valid UTF-8 text") from None
    else:
        raw = bytes(body)
    context = event.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return WebhookRequest(
        method=_text(event.get("httpMethod")).upper() or "POST",
        path=_text(event.get("path")),
        path_params=_text_map(event.get("pathParameters")),
        query=_text_map(event.get("queryStringParameters")),
        headers=_text_map(event.get("headers"), lower=True),
        body=raw,
        request_id=_text(request_id),
    )


def _text(value: object) -> str:
    """A scalar from the event as text the core can encode (a lone surrogate becomes "?"); "" for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value).encode("utf-8", "replace").decode("utf-8")


def _text_map(value: object, *, lower: bool = False) -> dict[str, str]:
    """A name -> text mapping from the event; entries that are not name and scalar are left out, not crashed on.

    A header or query value that cannot be UTF-8 encoded keeps its place with "?" instead, so a
    signature computed over it fails as any wrong one does.
    """
    if not isinstance(value, dict):
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        name, text = _text(key), _text(item)
        if name and (text or item == ""):
            out[name.lower() if lower else name] = text
    return out


def serve(event: dict[str, Any], answer: Callable[[WebhookRequest], WebhookResponse]) -> dict[str, Any]:
    """Every handler's path: a request API Gateway could not have sent well (a body marked base64
    that does not decode) is the client's 400, never an exception that API Gateway turns into a 502
    the platform would retry."""
    try:
        parsed = request(event)
    except HttpError as refused:
        return response(refused.response())
    return response(answer(parsed))


def response(answer: WebhookResponse) -> dict[str, Any]:
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": answer.content_type, "Cache-Control": "no-store", **answer.headers},
        "body": answer.body,
        "isBase64Encoded": False,
    }
