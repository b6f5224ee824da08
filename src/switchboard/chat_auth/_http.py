"""Chat authentication's outbound calls: key endpoints and identity providers, over :mod:`switchboard.outbound_http`.

Every call here goes to a URL taken from an auth setting, which an administrator wrote in the
configuration file: never to a URL found in a request or in a token header (``jku``, ``x5u``).
That is the first SSRF guard; :mod:`switchboard.outbound_http` adds the rest, whatever the far end does:

* the address policy: deployed, https to public addresses only; the local stack (and only it,
  ``allow_http``) also plain http and loopback, where its key servers and IdPs listen;
* redirects are not followed, so a configured URL cannot bounce the call elsewhere (a 3xx is an answer);
* one overall deadline per call covering connect, TLS, headers and body, and a byte cap enforced
  while the body streams in: a slow or endless answer costs at most ``timeout`` seconds and
  ``max_bytes`` of memory, however it dribbles.

``requests`` is imported on first use: a cold start that only checks an HMAC state never pays for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from switchboard import outbound_http
from switchboard.outbound_http import AddressPolicy, Limits, OutboundError

DEFAULT_MAX_BYTES = 64 * 1024

_CLIENTS: dict[AddressPolicy, outbound_http.Client] = {}


class FetchError(Exception):
    """A call that produced no usable answer. The message names the failure kind, never a URL's query or a body."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def policy_for(allow_http: bool) -> AddressPolicy:
    """``allow_http`` is the local stack's switch (``SWITCHBOARD_ALLOW_HTTP``): http and loopback, nothing more."""
    return outbound_http.LOCAL if allow_http else outbound_http.DEPLOYED


def limits(timeout: float, max_bytes: int) -> Limits:
    """A chat start waits on these calls: the whole call, and each connect and read within it, fit ``timeout``."""
    return Limits(deadline=timeout, max_bytes=max_bytes, connect_timeout=timeout, read_timeout=timeout, max_redirects=0)


def check_url(url: str, *, allow_http: bool = False, policy: AddressPolicy | None = None) -> None:
    """Refuse a URL before any socket is opened, so a bad setting fails the same way every time."""
    try:
        (policy or policy_for(allow_http)).check_url(url)
    except OutboundError as exc:
        raise FetchError(exc.reason) from None


def _client(policy: AddressPolicy) -> outbound_http.Client:
    client = _CLIENTS.get(policy)
    if client is None:
        client = _CLIENTS[policy] = outbound_http.Client(policy)
    return client


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_http: bool = False,
    policy: AddressPolicy | None = None,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
) -> HttpResponse:
    """One bounded HTTP call; any status is returned, only transport failures (and refusals) raise :class:`FetchError`."""
    try:
        resp = _client(policy or policy_for(allow_http)).request(
            method,
            url,
            limits=limits(timeout, max_bytes),
            headers=headers,
            data=dict(data) if data is not None else None,
        )
    except outbound_http.TooLarge:
        raise FetchError(f"the answer is larger than {max_bytes} bytes") from None
    except outbound_http.TimedOut:
        raise FetchError(f"no answer within {timeout:.3g} s") from None
    except OutboundError as exc:  # its reason names the kind of failure only: no URL, no library text
        raise FetchError(f"the {exc.reason}" if isinstance(exc, outbound_http.ConnectionFailed) else exc.reason) from None
    return HttpResponse(resp.status, resp.body, dict(resp.headers))


def get_bytes(url: str, timeout: float, max_bytes: int, *, policy: AddressPolicy = outbound_http.DEPLOYED) -> bytes:
    """The default key getter: a 2xx body or :class:`FetchError`.

    :class:`~switchboard.chat_auth.keys.KeyStore` binds ``policy`` to its own (and checks the URL
    before any getter, default or injected, is called).
    """
    resp = request("GET", url, timeout=timeout, max_bytes=max_bytes, policy=policy, headers={"Accept": "*/*"})
    if not resp.ok:
        raise FetchError(f"the endpoint answered HTTP {resp.status}")
    return resp.body
