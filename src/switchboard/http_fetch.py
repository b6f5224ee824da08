"""Outbound GETs for media bytes and profiles (the :class:`~switchboard.ports.Fetcher` port), through outbound_http.

What comes back is untrusted and sometimes large, and the URL itself comes from a platform payload
(or a redirect from it), so every call runs under :mod:`switchboard.outbound_http`'s limits: one
overall deadline (connect to last byte, headers included), a byte cap enforced while streaming,
and redirects followed by hand so that each hop is checked like the first. The address policy is
checked on the address actually connected to: deployed, https to public addresses only; the local
stack (``SWITCHBOARD_ALLOW_HTTP=1``, see :func:`~switchboard.outbound_http.policy_from_env`) also
plain http and loopback. The credential never follows the request to another origin. Errors name
the URL without its query: the query may hold an access token (Facebook's Graph API) or a
signature (signed storage URLs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from switchboard import outbound_http
from switchboard.channels.base import FetchRequest
from switchboard.outbound_http import AddressPolicy, Headers, Limits, OutboundError
from switchboard.ports import Fetched, FetchFailed, FetchTooLarge, SecretReader

CONNECT_TIMEOUT: Final = 3.05
READ_TIMEOUT: Final = 10.0
MAX_REDIRECTS: Final = 5


class RequestsFetcher:
    """One pooled session per process (connections to the same CDN or API are reused across messages).

    ``policy`` is :data:`~switchboard.outbound_http.DEPLOYED` unless the wiring passes the local
    stack's :data:`~switchboard.outbound_http.LOCAL` (or a test its own).
    """

    def __init__(
        self,
        *,
        policy: AddressPolicy = outbound_http.DEPLOYED,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._client = outbound_http.Client(policy)

    def get(
        self,
        request: FetchRequest,
        *,
        max_bytes: int,
        timeout: float,
        check: Callable[[str | None, int | None], None] | None = None,
    ) -> Fetched:
        limits = Limits(
            deadline=timeout,  # the caller's, for the whole fetch: every hop, headers and body
            max_bytes=max_bytes,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_redirects=MAX_REDIRECTS,
        )

        def inspect(status: int, headers: Headers) -> None:
            if status != 200:
                failure = outbound_http.classify_status(status, headers)
                if failure is None or status == 425:
                    # 202 and friends: LINE answers that way while a video is still being prepared.
                    failure = outbound_http.RetryableStatus(f"HTTP {status}", status=status)
                raise failure  # the client names the hop that answered
            if check is not None:
                raw_length = headers.get("Content-Length", "").strip()
                check(headers.get("Content-Type") or None, int(raw_length) if raw_length.isdigit() else None)

        try:
            response = self._client.request(
                "GET", request.url, limits=limits, headers=request.headers, params=request.params, inspect=inspect
            )
        except outbound_http.TooLarge as exc:
            raise FetchTooLarge(f"{exc.target}: {exc.reason}") from None
        except outbound_http.TimedOut as exc:
            raise FetchFailed(f"{exc.target}: timed out", retryable=True) from None
        except OutboundError as exc:
            raise FetchFailed(str(exc), retryable=exc.retryable, status=exc.status) from None
        return Fetched(response.body, response.headers.get("Content-Type") or None)


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
