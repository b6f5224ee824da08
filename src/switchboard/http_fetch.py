"""Outbound GETs for media bytes and profiles (the :class:`~switchboard.ports.Fetcher` port), over requests.

What comes back is untrusted and sometimes large, so every call is bounded: connect and read
timeouts, an overall deadline, and a byte cap enforced while streaming (a lying or missing
Content-Length changes nothing). Redirects are followed by hand so that each hop is checked like
the first (https, or http only to a loopback test server) and the credential never follows the
request to another host. Errors name the URL without its query: the query may hold an access
token (Facebook's Graph API) or a signature (signed storage URLs).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from switchboard.channels.base import FetchRequest
from switchboard.ports import Fetched, FetchFailed, FetchTooLarge, SecretReader

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_USER_AGENT = "switchboard"


class _DropQueries(logging.Filter):
    """urllib3 logs each request line, query included, at DEBUG: cut the query so no token reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.split("?", 1)[0] if isinstance(a, str) and "?" in a else a for a in record.args)
        return True


_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _DropQueries) for f in _urllib3_log.filters):
    _urllib3_log.addFilter(_DropQueries())


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _target(url: str) -> str:
    return FetchRequest(url).target


class RequestsFetcher:
    """One pooled session per process (connections to the same CDN or API are reused across messages)."""

    def __init__(self, *, connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._session: Any = None

    def _open(self) -> Any:
        if self._session is None:
            import requests  # off the init path: most route invocations fetch nothing

            self._session = requests.Session()
            self._session.headers["User-Agent"] = _USER_AGENT
        return self._session

    def get(
        self,
        request: FetchRequest,
        *,
        max_bytes: int,
        timeout: float,
        check: Callable[[str | None, int | None], None] | None = None,
    ) -> Fetched:
        import requests

        deadline = time.monotonic() + timeout
        session = self._open()
        url, headers, params = request.url, dict(request.headers), dict(request.params)
        origin = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            if not _allowed(url):
                raise FetchFailed(f"{_target(url)}: only https URLs are fetched", retryable=False)
            left = deadline - time.monotonic()
            if left <= 0:
                raise FetchFailed(f"{_target(url)}: no time left within {timeout:.0f}s", retryable=True)
            try:
                response = session.get(
                    url,
                    headers=headers,
                    params=params,
                    stream=True,
                    allow_redirects=False,
                    timeout=(min(self.connect_timeout, left), min(self.read_timeout, left)),
                )
            except requests.Timeout:
                raise FetchFailed(f"{_target(url)}: timed out", retryable=True) from None
            except requests.RequestException as exc:
                # str(exc) would repeat the URL with its query: the exception's type says enough.
                raise FetchFailed(f"{_target(url)}: {type(exc).__name__}", retryable=True) from None
            if response.status_code in _REDIRECTS and response.headers.get("Location"):
                response.close()
                url = urljoin(url, response.headers["Location"])
                params = {}  # the first request's query must not be appended to another URL
                if urlsplit(url).netloc != origin:
                    headers.pop("Authorization", None)  # a platform's token is for the platform only
                continue
            with response:
                return self._read(response, _target(url), max_bytes=max_bytes, deadline=deadline, timeout=timeout, check=check)
        raise FetchFailed(f"{_target(request.url)}: more than {MAX_REDIRECTS} redirects", retryable=False)

    def _read(
        self,
        response: Any,
        target: str,
        *,
        max_bytes: int,
        deadline: float,
        timeout: float,
        check: Callable[[str | None, int | None], None] | None,
    ) -> Fetched:
        import requests

        status = int(response.status_code)
        if status != 200:
            # 202 and friends: LINE answers that way while a video is still being prepared.
            retryable = status in _RETRYABLE_STATUS or status >= 500 or 200 <= status < 300
            raise FetchFailed(f"{target}: HTTP {status}", retryable=retryable, status=status)
        content_type = response.headers.get("Content-Type") or None
        raw_length = response.headers.get("Content-Length")
        length = int(raw_length) if raw_length and raw_length.strip().isdigit() else None
        if length is not None and length > max_bytes:
            raise FetchTooLarge(f"{target}: {length} bytes declared, more than {max_bytes}")
        if check is not None:
            check(content_type, length)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in _chunks(response):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchTooLarge(f"{target}: more than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchFailed(f"{target}: not read within {timeout:.0f}s", retryable=True)
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise FetchFailed(f"{target}: {type(exc).__name__} while reading", retryable=True) from None
        return Fetched(b"".join(chunks), content_type)


def _chunks(response: Any) -> Iterator[bytes]:
    # iter_content decodes gzip/deflate, so the cap counts what would be kept, not what was sent.
    yield from response.iter_content(chunk_size=CHUNK_BYTES)


class LazySecrets(Mapping[str, str]):
    """One account's secrets, read from the store only when an adapter first indexes them.

    Most fetches need no credential (Facebook and GBM media URLs), so most messages cost no
    Secrets Manager read. A missing secret or key is a KeyError naming the key, never a value.
    """

    def __init__(self, reader: SecretReader, name: str) -> None:
        self._reader = reader
        self._name = name
        self._values: Mapping[str, Any] | None = None

    def _load(self) -> Mapping[str, Any]:
        if self._values is None:
            self._values = self._reader.get(self._name)
        return self._values

    def __getitem__(self, key: str) -> str:
        value = self._load().get(key)
        if not isinstance(value, str) or not value:
            raise KeyError(f"secret {self._name} has no {key!r}")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())
