"""CORS for the chat routes (interface section 7): which pages may call a widget's API from a browser.

A browser on the portal's page calls the API on another origin, so it needs
``Access-Control-Allow-Origin``. The widget's ``allowed_origins`` lists the origins allowed
(``"*"``: any). The answer names the request's own origin, never a literal ``*``: the routes take an
``Authorization`` header, and echoing the origin keeps caches honest (``Vary: Origin``).

A request from an origin not allowed is refused (403 ``origin_not_allowed``) before anything is
read or enqueued: a page that may not read the answer must not be able to start or feed a chat
either. A request without ``Origin`` is not from a browser page (curl, a server, a script tag) and
is not refused for it: CORS protects browsers' users, it is no authentication. A page on the API's
own origin (the local demo) is same-origin and needs no listing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from switchboard.errors import Forbidden
from switchboard.settings import Widget
from switchboard.web import WebhookRequest, WebhookResponse

ANY: Final = "*"
ALLOWED_HEADERS: Final = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE: Final = "600"  # seconds a browser may reuse a preflight's answer
MAX_ORIGIN_CHARS: Final = 300


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


def _same_origin(origin: str, request: WebhookRequest) -> bool:
    host = request.header("host")
    if not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


def allowed(widget: Widget, request: WebhookRequest) -> Mapping[str, str]:
    """The CORS headers for this request's answer, or raise :class:`OriginNotAllowed`.

    No ``Origin``: no headers, no refusal. An allowed ``Origin``: that origin, echoed.
    """
    origin = request.header("origin")
    if origin is None:
        return {}
    origin = origin.strip()
    if (
        origin
        and len(origin) <= MAX_ORIGIN_CHARS
        and origin != "null"  # sandboxed frames and file:// pages: no origin anyone could list
        and (ANY in widget.allowed_origins or origin.rstrip("/") in widget.allowed_origins or _same_origin(origin, request))
    ):
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    raise OriginNotAllowed("this page's origin may not call this chat; add it to the widget's allowed_origins")


def preflight(widget: Widget, request: WebhookRequest, methods: str) -> WebhookResponse:
    """The answer to ``OPTIONS``: 204 with what the route allows, for an allowed origin."""
    headers = dict(allowed(widget, request))
    headers.update(
        {
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        }
    )
    return WebhookResponse(204, "", "text/plain").with_headers(headers)
