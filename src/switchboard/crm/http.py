"""The HTTP layer every CRM adapter shares, over :mod:`switchboard.outbound_http`.

Adapters differ in URLs and payloads, not in how a failed call should be treated. Keeping the
classification (rate limit, retry, auth, rejection) and the redaction of credentials in one place
means the crm stage sees the same error classes from every vendor; a vendor that spells "slow down"
another way than 429 (a daily limit reported as a 403) says so through ``rate_limited``. Calls are
counted here because the benchmark reports CRM calls per conversation and only this layer sees
every request.

The transport limits are :mod:`switchboard.outbound_http`'s: connect and read timeouts, one overall
deadline per call (headers included), a byte cap on answers, no redirects (a 3xx is classified like
any other status). CRM base URLs are written by an administrator, so they run under the
:data:`~switchboard.outbound_http.TRUSTED` address policy: http or https to any address (a CRM may
be on a private network; the e2e fake CRM is on 127.0.0.1), never the cloud metadata addresses.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from switchboard import channels, outbound_http
from switchboard.crm.base import CrmAuthError, CrmError, CrmNotice, CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.envelope import UNSUPPORTED_TEXT, Envelope
from switchboard.outbound_http import AddressPolicy, Limits, OutboundError, Response

if TYPE_CHECKING:
    from switchboard.outbound_http import Session

log = logging.getLogger("switchboard.crm")

__all__ = ["CallCounter", "CrmHttp", "CrmNotice", "Redactor"]

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0
# One call, connect to last byte: a CRM that answers a byte at a time cannot hold crm_writer (60 s).
CALL_DEADLINE = 20.0
MAX_RESPONSE_BYTES = 10 * 1024 * 1024  # a record or a search page is kilobytes; more is not an answer we use
# Retry-After is optional on some 429s (Zendesk) and absent from Kustomer's window-based limit.
DEFAULT_RETRY_AFTER = 30.0
MAX_RETRY_AFTER = outbound_http.MAX_RETRY_AFTER
_MAX_VENDOR_TEXT = 500
REDACTED = outbound_http.REDACTED

CallKind = Literal["token", "whoami", "api"]


@dataclass
class CallCounter:
    """Outbound requests by purpose, so a benchmark can tell business calls from auth overhead."""

    token: int = 0
    whoami: int = 0
    api: int = 0

    @property
    def total(self) -> int:
        return self.token + self.whoami + self.api

    def add(self, kind: CallKind) -> None:
        setattr(self, kind, getattr(self, kind) + 1)

    def snapshot(self) -> dict[str, int]:
        return {"token": self.token, "whoami": self.whoami, "api": self.api, "total": self.total}

    def reset(self) -> None:
        self.token = self.whoami = self.api = 0


class Redactor(outbound_http.Redactor):
    """Replaces every known secret (and its Basic-auth encodings) in text meant for errors and logs.

    Vendors sometimes echo what they were sent; redacting at the one place messages are built is
    cheaper than auditing every vendor's error bodies.
    """

    def add_basic(self, user: str, password: str) -> None:
        """Zendesk-style credentials travel base64-encoded; a vendor echoing the header must not leak them."""
        self.add(basic_auth_value(user, password).removeprefix("Basic "))


def basic_auth_value(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def parse_retry_after(value: str | None, *, default: float = DEFAULT_RETRY_AFTER, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date, RFC 9110 10.2.3), ``default`` without one."""
    seconds = outbound_http.parse_retry_after(value, default=default, now=now)
    return default if seconds is None else seconds


def _body_json(response: Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _join(parts: Iterable[str | None]) -> str:
    return ": ".join(p for p in parts if p)


def vendor_error_text(response: Response) -> str:
    """The CRM's own words about a failed call, whatever shape its error body takes.

    Shapes: Zendesk ``{"error","description","details"}`` (or ``{"error":{"title","message"}}``),
    OAuth ``{"error","error_description"}``, the common ``{"error","message"}``, Salesforce
    ``[{"message","errorCode"}]``, Dataverse ``{"error":{"code","message"}}``, Kustomer
    ``{"errors":[{"code","message"}]}`` or JSON:API ``{"errors":[{"status","code","title","detail","source"}]}``;
    anything else as plain text.
    """
    body = _body_json(response)
    text = ""
    if isinstance(body, list):
        items = []
        for item in body:
            if isinstance(item, dict):
                fields = item.get("fields")
                suffix = f" (fields: {', '.join(map(str, fields))})" if fields else ""
                items.append(_join([item.get("errorCode"), item.get("message")]) + suffix)
        text = "; ".join(i for i in items if i)
    elif isinstance(body, dict):
        error = body.get("error")
        errors = body.get("errors")
        if isinstance(error, dict):  # Dataverse, or Zendesk's {"error": {"title", "message"}}
            text = _join([error.get("code") or error.get("title"), error.get("message")])
        elif isinstance(error, str):  # Zendesk, OAuth, or the common {"error": code, "message": text}
            detail = body.get("description") or body.get("error_description") or body.get("message")
            text = _join([error, detail if isinstance(detail, str) else None])
            details = body.get("details")
            if isinstance(details, dict):
                descriptions = [
                    str(d.get("description") or d.get("error"))
                    for entries in details.values()
                    if isinstance(entries, list)
                    for d in entries
                    if isinstance(d, dict)
                ]
                if descriptions:
                    text = f"{text} ({'; '.join(descriptions)})"
        elif isinstance(errors, list):  # Kustomer, plain or JSON:API
            items = []
            for item in errors:
                if isinstance(item, dict):
                    source = item.get("source")
                    where = None
                    if isinstance(source, dict):
                        where = source.get("pointer") or source.get("parameter")
                    items.append(_join([item.get("code") or item.get("title"), item.get("message") or item.get("detail"), where]))
                elif isinstance(item, str):
                    items.append(item)
            text = "; ".join(i for i in items if i)
        elif isinstance(body.get("message"), str):
            text = _join([body.get("code") if isinstance(body.get("code"), str) else None, body["message"]])
    if not text:
        text = (response.text or "").strip() or (response.reason or "")
    text = " ".join(text.split())
    return text[:_MAX_VENDOR_TEXT] + ("..." if len(text) > _MAX_VENDOR_TEXT else "")


def error_codes(response: Response) -> set[str]:
    """The ``errorCode`` of each item of an error body that is a list of errors."""
    body = _body_json(response)
    if isinstance(body, list):
        return {str(i.get("errorCode")) for i in body if isinstance(i, dict) and i.get("errorCode")}
    return set()


AuthHeaders = Callable[[], Mapping[str, str]]
# A vendor's own "slow down" on a status other than 429: the seconds to wait, or None when it is not one.
RateLimitRule = Callable[[Response], float | None]


class CrmHttp:
    """An :class:`~switchboard.outbound_http.Client` that counts, classifies and redacts.

    ``auth`` produces the Authorization header(s) for a call; ``refresh`` (when the credential can
    be renewed) forgets the cached token so that the retried call after a 401 gets a fresh one.
    Static credentials (an API key) pass no ``refresh``: a second try cannot help, so a 401 is an
    auth error at once. ``rate_limited`` recognises a vendor's rate limit that is not a 429.
    """

    def __init__(
        self,
        provider: str,
        *,
        session: Session | None = None,
        secrets: Iterable[str] = (),
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        deadline: float = CALL_DEADLINE,
        max_bytes: int = MAX_RESPONSE_BYTES,
        default_retry_after: float = DEFAULT_RETRY_AFTER,
        rate_limited: RateLimitRule | None = None,
        policy: AddressPolicy = outbound_http.TRUSTED,
    ) -> None:
        self.provider = provider
        self.rate_limited = rate_limited
        self.client = outbound_http.Client(policy, session=session, user_agent="switchboard-crm/1")
        self.redact = Redactor(secrets)
        self.calls = CallCounter()
        self.timeout = (connect_timeout, read_timeout)
        self.limits = Limits(
            deadline=deadline, max_bytes=max_bytes, connect_timeout=connect_timeout, read_timeout=read_timeout, max_redirects=0
        )
        self.default_retry_after = default_retry_after

    @property
    def session(self) -> Session:
        return self.client.session

    def request(
        self,
        method: str,
        url: str,
        *,
        kind: CallKind = "api",
        auth: AuthHeaders | None = None,
        refresh: Callable[[], None] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        passthrough: Collection[int] = (),
    ) -> Response:
        """Send one call (two when a 401 earns a token refresh); return a 2xx or a ``passthrough`` status.

        ``passthrough`` lets an adapter treat an expected status (a lookup's 404, a create-once 412,
        an OAuth 400 it inspects itself) as an answer instead of an error.
        """
        response = self._send(method, url, kind=kind, auth=auth, headers=headers, json_body=json_body, form=form, params=params)
        if response.status_code == 401 and refresh is not None and 401 not in passthrough:
            log.info("crm %s: 401 on %s %s, refreshing the token once", self.provider, method, _path(url))
            refresh()
            response = self._send(
                method, url, kind=kind, auth=auth, headers=headers, json_body=json_body, form=form, params=params
            )
        if response.status_code < 300 or response.status_code in passthrough:
            return response
        raise self.classify(method, url, response)

    def _send(
        self,
        method: str,
        url: str,
        *,
        kind: CallKind,
        auth: AuthHeaders | None,
        headers: Mapping[str, str] | None,
        json_body: Any,
        form: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
    ) -> Response:
        merged: dict[str, str] = {"Accept": "application/json", "User-Agent": "switchboard-crm/1"}
        if auth is not None:
            merged.update(auth())
        if headers:
            merged.update(headers)
        data: str | Mapping[str, str] | None = None
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"))
            merged.setdefault("Content-Type", "application/json; charset=utf-8")
        elif form is not None:
            data = form
        self.calls.add(kind)
        started = time.monotonic()
        where = f"{method} {_path(url)}"
        failure: OutboundError | None = None
        try:
            response = self.client.request(
                method,
                url,
                limits=self.limits,
                headers=merged,
                data=data.encode("utf-8") if isinstance(data, str) else data,
                params=params,
            )
        except OutboundError as exc:  # already free of the library's text; raised below without context
            failure = exc
        if failure is not None:
            reason = "timed out" if isinstance(failure, outbound_http.TimedOut) else failure.reason
            log.warning("crm %s: %s %s", self.provider, where, reason)
            if failure.retryable or isinstance(failure, outbound_http.TooLarge):
                raise CrmRetryable(self.redact(f"{self.provider} {where}: {reason}"))
            raise CrmRejected(self.redact(f"{self.provider} {where}: {reason}"))  # refused by policy, or unsendable
        log.debug("crm %s: %s -> %s in %.0f ms", self.provider, where, response.status_code, (time.monotonic() - started) * 1000)
        return response

    def classify(self, method: str, url: str, response: Response) -> CrmError:
        """Map a non-2xx response to the error class that tells the stage what to do next."""
        status = response.status_code
        text = vendor_error_text(response)
        message = self.redact(f"{self.provider} {method} {_path(url)}: HTTP {status}: {text}")
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), default=self.default_retry_after)
            return CrmRateLimited(message, retry_after=retry_after, status=status)
        if self.rate_limited is not None and (wait := self.rate_limited(response)) is not None:
            return CrmRateLimited(message, retry_after=wait, status=status)
        if status >= 500 or status in (408, 409):
            # 409 is Zendesk's concurrent-update conflict and Kustomer's conflict: a retry resolves it.
            return CrmRetryable(message, status=status)
        if status == 401:
            return CrmAuthError(message, status=status)
        return CrmRejected(message, status=status)

    def json_object(self, response: Response) -> dict[str, Any]:
        """A 2xx body as a JSON object; a proxy's HTML page instead of JSON is a server fault, so retry."""
        body = _body_json(response)
        if body is None:
            status = response.status_code
            raise self.error(CrmRetryable, f"HTTP {status} with a body that is not JSON", status=status)
        return body if isinstance(body, dict) else {}

    def error(self, cls: type[CrmError], message: str, *, status: int | None = None) -> CrmError:
        """Build an adapter-raised error through the same redaction as the classified ones."""
        return cls(self.redact(f"{self.provider}: {message}"), status=status)


def _path(url: str) -> str:
    """Method + path identify the call in messages; the query and host add noise, not insight."""
    return urlsplit(url).path or "/"


# ----------------------------------------------------------------------------------------------
# Helpers the adapters share for what they write (not HTTP, but identical across vendors).


def channel_info(channel: str) -> channels.ChannelInfo | None:
    """What the channel declares about itself (label, medium); None for a channel no module registers.

    CRM code never names a channel: whatever a CRM shows per channel is read from here.
    """
    try:
        return channels.info(channel)
    except KeyError:  # channels.UnknownChannel
        return None


def channel_label(channel: str) -> str:
    """How agents see the channel named ("LINE", "Facebook Messenger"); an unregistered one by its name."""
    info = channel_info(channel)
    return info.label if info is not None else channel


def describe_message(envelope: Envelope) -> str:
    """Text a human agent can read in the CRM, even for a sticker or an image without caption."""
    lines: list[str] = []
    if envelope.text:
        lines.append(envelope.text)
    elif envelope.kind == "unsupported":
        lines.append(UNSUPPORTED_TEXT)
    elif not envelope.attachments:
        if envelope.kind == "location":
            place = ", ".join(
                str(envelope.data[k]) for k in ("title", "address", "latitude", "longitude") if envelope.data.get(k) is not None
            )
            lines.append(f"[location] {place}" if place else "[location]")
        else:
            lines.append(f"[{envelope.kind}]")
    for attachment in envelope.attachments:
        where = attachment.url or attachment.name or attachment.content_id or ""
        note = f" ({attachment.error})" if attachment.error else ""
        lines.append(f"[{attachment.type}] {where}".rstrip() + note)
    return "\n".join(lines)


def summarise(text: str, limit: int) -> str:
    """A single line of at most ``limit`` characters, for subjects and titles."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: max(limit - 1, 0)].rstrip() + "\u2026"


def subject_for(channel: str, envelope: Envelope, limit: int) -> str:
    body = describe_message(envelope)
    return summarise(f"{channel_label(channel)}: {body}", limit)
