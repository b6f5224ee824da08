"""The one place chat authentication talks HTTP.

Every outbound call here goes to a URL taken from an auth setting, which an administrator wrote in
the configuration file: never to a URL found in a request or in a token header (``jku``, ``x5u``).
That is the SSRF guard, together with three limits that hold whatever the far end does:

* only ``https`` unless the caller opts into ``http`` (the local stack serves keys on 127.0.0.1);
* redirects are not followed, so a configured URL cannot bounce the call elsewhere;
* a deadline and a byte cap are enforced while the body streams in, so a slow or endless answer
  costs at most about ``timeout`` seconds and ``max_bytes`` of memory.

``requests`` is imported on first use: a cold start that only checks an HMAC state never pays for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_MAX_BYTES = 64 * 1024
_CHUNK = 8192


class FetchError(Exception):
    """A call that produced no usable answer. The message names the failure kind, never a body."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def check_url(url: str, *, allow_http: bool) -> None:
    """Refuse a URL before any socket is opened, so a bad setting fails the same way every time."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise FetchError("the URL cannot be parsed") from None
    allowed = {"https", "http"} if allow_http else {"https"}
    if parts.scheme not in allowed:
        raise FetchError(f"only {' or '.join(sorted(allowed))} URLs are allowed, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise FetchError("the URL has no host")


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_http: bool = False,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
) -> HttpResponse:
    """One bounded HTTP call; any status is returned, only transport failures raise."""
    check_url(url, allow_http=allow_http)
    import requests  # lazy: see the module docstring

    send_headers = {"Accept-Encoding": "identity"}  # count the bytes we really receive, no zip bombs
    send_headers.update(headers or {})
    deadline = time.monotonic() + timeout
    try:
        with requests.request(
            method,
            url,
            headers=send_headers,
            data=dict(data) if data is not None else None,
            timeout=(timeout, timeout),
            stream=True,
            allow_redirects=False,
        ) as resp:
            declared = resp.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"the answer is larger than {max_bytes} bytes")
            chunks: list[bytes] = []
            total = 0
            for chunk in _chunks(resp):
                total += len(chunk)
                if total > max_bytes:
                    raise FetchError(f"the answer is larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"no complete answer within {timeout:g} s")
                chunks.append(chunk)
            return HttpResponse(resp.status_code, b"".join(chunks), dict(resp.headers))
    except requests.Timeout:
        raise FetchError(f"no answer within {timeout:g} s") from None
    except requests.RequestException as exc:
        # The exception text may quote the URL with a query string; keep only its kind.
        raise FetchError(f"the connection failed ({type(exc).__name__})") from None


def _chunks(resp: Any) -> Iterator[bytes]:
    """Whatever bytes have arrived, as they arrive.

    ``iter_content(n)`` blocks until ``n`` bytes are in, so a server dripping one byte at a time
    would stretch the deadline check to ``n`` read timeouts; ``read1`` returns after one socket read.
    The socket timeout still bounds each read, so the worst case is about twice ``timeout``.
    """
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:  # pragma: no cover - urllib3 < 2
        yield from resp.iter_content(_CHUNK)
        return
    while chunk := read1(_CHUNK):
        yield chunk


def get_bytes(url: str, timeout: float, max_bytes: int) -> bytes:
    """The default key getter: a 2xx body or :class:`FetchError`.

    The scheme is not checked here because :class:`~switchboard.chat_auth.keys.KeyStore` checks it
    (with its own ``allow_http``) before any getter, default or injected, is called.
    """
    resp = request("GET", url, timeout=timeout, max_bytes=max_bytes, allow_http=True, headers={"Accept": "*/*"})
    if not resp.ok:
        raise FetchError(f"the endpoint answered HTTP {resp.status}")
    return resp.body
