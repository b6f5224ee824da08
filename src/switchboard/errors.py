"""The one error vocabulary: what a failure means for whoever handles it.

Three questions decide every failure's fate, and each has one class here:

- :class:`Permanent`: another attempt fails the same way (a body that is not an envelope, a CRM's
  validation error). A stage dead-letters it at once, with its reason.
- :class:`Retryable`: another attempt may succeed (a 5xx, a timeout, a 429 with ``retry_after``,
  a setting ``apply`` has yet to write). A stage retries it with backoff, or after ``retry_after``,
  and dead-letters it after the queue's last attempt.
- :class:`HttpError`: a request refused with a status and the interface's JSON body
  (``{"error": code, "message": text}``).

Each utility keeps its own exceptions (``CrmRejected``, ``outbound_http.TimedOut``,
``ChatAuthError``, ...) but derives them from these, and the stage runner and the entry wrapper
decide by ``isinstance`` alone. An exception that is none of them is a bug: retried (it may be a
transient fault nobody classified), then dead-lettered.

Messages are shown to people and written to logs: they never carry a secret or a token.
"""

from __future__ import annotations

from typing import ClassVar

from switchboard.web import WebhookResponse


class SwitchboardError(Exception):
    """Every failure Switchboard raises on purpose. ``message`` is safe to show and to log."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Permanent(SwitchboardError):
    """Retrying cannot help: dead-letter at once with this reason."""


class Retryable(SwitchboardError):
    """Retrying may help; ``retry_after`` (seconds) is what the other side asked for, when it did."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SecretMissing(Permanent):
    """No usable secret is stored under the name (absent, deleted, or not a JSON object).

    A set-up error another delivery cannot fix, unlike a store that is unavailable: the edge refuses
    the request as it would a wrong signature. The message names the secret, never a value.
    """


class StoreUnavailable(Retryable):
    """A store or queue refused or timed out: the caller answers 5xx or lets SQS retry."""


class ConfigurationError(Retryable):
    """The settings a message needs are missing. Retried, since `switchboard apply` may be writing
    them this minute; after the last attempt it waits in the dead-letter queue with this reason."""


class HttpError(SwitchboardError):
    """A request refused with a status and the interface's JSON error body."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code  # type: ignore[misc]

    def response(self) -> WebhookResponse:
        return WebhookResponse.json(self.status, {"error": self.code, "message": self.message})


class BadRequest(HttpError):
    """The body or the query is not what the endpoint takes (not JSON, not the platform's shape)."""

    status = 400
    code = "bad_request"


class Unauthorized(HttpError):
    """The caller did not prove who it is: a signature, a token or a key that does not verify."""

    status = 401
    code = "invalid_signature"


class Forbidden(HttpError):
    """The caller is known but may not do this (a wrong verify token, an origin not allowed)."""

    status = 403
    code = "forbidden"


class NotFound(HttpError):
    """No such enabled account, widget or setting; also any id no configuration could hold."""

    status = 404
    code = "not_found"


class PayloadTooLarge(HttpError):
    """The body, or one event in it, is larger than what could be stored."""

    status = 413
    code = "payload_too_large"


class NotImplementedYet(HttpError):
    """A route the interface names that this version does not serve yet."""

    status = 501
    code = "not_implemented"
