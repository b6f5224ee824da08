"""The HTTP request and response every API function works on, whatever calls it.

API Gateway's event shape is known only to :mod:`switchboard.apigw`; webhooks, chat and (later) CRM
events all see these two types, so none of them depends on another's module for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class WebhookRequest:
    """An HTTP request as the caller sent it. ``body`` is the raw bytes signatures are computed over."""

    method: str
    path: str
    path_params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    request_id: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: str
    content_type: str = "application/json"
    # Extra response headers (CORS, caching); API Gateway passes them to the caller as they are.
    headers: Mapping[str, str] = field(default_factory=dict)

    def with_headers(self, headers: Mapping[str, str]) -> WebhookResponse:
        return replace(self, headers={**self.headers, **headers}) if headers else self

    @classmethod
    def json(cls, status: int, payload: object) -> WebhookResponse:
        return cls(status, json.dumps(payload, separators=(",", ":")))

    @classmethod
    def text(cls, status: int, body: str) -> WebhookResponse:
        return cls(status, body, "text/plain")
