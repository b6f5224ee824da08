"""The one way Switchboard talks HTTP to the outside world, and the only module that imports ``requests``.

Three kinds of caller fetch from URLs they do not fully control: the route stage (attachment bytes
and customer profiles, from URLs in platform payloads and redirects), chat auth (key endpoints and
identity providers named in auth settings) and the CRM adapters (base URLs an administrator wrote,
plus whatever instance URL the vendor hands back). Each used to carry its own timeouts, deadline,
byte cap and redirect rules; a fix to one (headers dribbled past a deadline, a redirect to an
internal address) did not reach the others. Here every call gets, whoever makes it:

* **one overall deadline** (:attr:`Limits.deadline`) covering connect, TLS, headers and body: each
  socket read waits at most what is left of it, so a server sending a byte or a header line every
  second cannot stretch a call, and an expired budget raises :class:`TimedOut`;
* **connect and read timeouts**, both also clamped to what is left of the deadline;
* **a byte cap** on the body, enforced while it streams in (a lying or missing Content-Length
  changes nothing); the body is asked for uncompressed, and counted decoded if it comes compressed;
* **a redirect policy**: at most :attr:`Limits.max_redirects` hops (0: a 3xx is handed back as an
  answer), each hop checked like the first, credentials dropped once a hop leaves the origin;
* **an address policy** (:class:`AddressPolicy`) checked on the address actually connected to,
  after DNS resolution and before a byte is sent, on every hop and every new connection. A DNS
  answer that changes between a check and the connect (rebinding) cannot slip through, because no
  separate earlier look-up is trusted: the socket is opened to a resolved address that passed the
  policy, and its ``getpeername()`` is checked again before TLS or the request line;
* **retry classification**: :class:`Retryable` (timeouts, connection failures, 5xx, 408, 429 with
  its Retry-After) versus `NotRetryable` (policy refusals, caps, other 4xx);
* **redaction**: errors name the URL as scheme, host and path only (no userinfo, no query: Graph
  API tokens and storage signatures travel there), never a header, and never the text of a library
  exception (which quotes URLs); urllib3's debug log loses its queries too.

``requests`` and ``urllib3`` are imported on first use, so a cold start that makes no outbound
call (every webhook, a chat start validating an HMAC state) never pays for them.
"""

from __future__ import annotations

import contextvars
import io
import ipaddress
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urljoin, urlsplit

from switchboard import errors, safe_json

if TYPE_CHECKING:
    from requests import Session
else:

    def __getattr__(name: str) -> Any:
        """``Session`` for callers that type a session they pass in (CRM adapters), without importing requests here."""
        if name == "Session":
            import requests

            return requests.Session
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEPLOYED",
    "LOCAL",
    "TRUSTED",
    "AddressPolicy",
    "Client",
    "ConnectionFailed",
    "FinalStatus",
    "Headers",
    "InvalidRequest",
    "Limits",
    "NotRetryable",
    "OutboundError",
    "Redactor",
    "Refused",
    "Response",
    "Retryable",
    "RetryableStatus",
    "Session",
    "TimedOut",
    "TooLarge",
    "TooManyRedirects",
    "classify_status",
    "parse_retry_after",
    "policy_from_env",
    "redact_url",
]

ALLOW_HTTP_ENV: Final = "SWITCHBOARD_ALLOW_HTTP"
USER_AGENT: Final = "switchboard"
CHUNK_BYTES: Final = 64 * 1024
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
# Headers that carry who we are: never sent to an origin other than the one they were meant for.
CREDENTIAL_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
MAX_RETRY_AFTER: Final = 3600.0
REDACTED: Final = "***"


# -- limits ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What one call may cost. Each caller states its own; none re-implements the enforcement.

    ``deadline`` is the whole call in seconds, from the first connect to the last body byte of the
    last redirect hop. ``connect_timeout`` and ``read_timeout`` bound one connect and one socket read
    (each also clamped to what is left of ``deadline``).
    """

    deadline: float
    max_bytes: int
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    max_redirects: int = 0

    def __post_init__(self) -> None:
        for name in ("deadline", "connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must not be negative")


# -- errors ------------------------------------------------------------------------------------------


class OutboundError(errors.SwitchboardError):
    """A call that produced no usable answer.

    ``reason`` says what went wrong without naming the URL; ``target`` is the redacted URL of the hop
    that failed. Neither ever holds a query string, a header value or a library exception's text.
    """

    retryable: bool = False

    def __init__(self, reason: str, *, target: str = "", status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(f"{target}: {reason}" if target else reason)
        self.reason = reason
        self.target = target
        self.status = status
        self.retry_after = retry_after


class Retryable(OutboundError, errors.Retryable):
    """Another attempt later may succeed: a timeout, a failed connection, a 5xx, 408 or 429."""

    retryable = True


class NotRetryable(OutboundError, errors.Permanent):
    """Another attempt will fail the same way: refused by policy, over a cap, or a 4xx."""


class TimedOut(Retryable):
    pass


class ConnectionFailed(Retryable):
    pass


class RetryableStatus(Retryable):
    pass


class Refused(NotRetryable):
    """The address policy refused the URL's scheme or the address its host resolved to. Nothing was sent."""


class InvalidRequest(NotRetryable):
    """The URL or a header cannot be sent at all (no host, a bad port, a control character)."""


class TooLarge(NotRetryable):
    pass


class TooManyRedirects(NotRetryable):
    pass


class FinalStatus(NotRetryable):
    pass


def classify_status(status: int, headers: Mapping[str, str] | None = None) -> OutboundError | None:
    """``None`` for a 2xx; otherwise the error that says whether trying again may help.

    5xx, 408 and 429 are worth another attempt (429 and 503 carry the server's Retry-After, in
    seconds, when it sent one); any other status is final.
    """
    if 200 <= status < 300:
        return None
    retry_after = parse_retry_after((headers or {}).get("Retry-After")) if status in (429, 503) else None
    if status >= 500 or status in (408, 429):
        return RetryableStatus(f"HTTP {status}", status=status, retry_after=retry_after)
    return FinalStatus(f"HTTP {status}", status=status)


def parse_retry_after(value: str | None, *, default: float | None = None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date, RFC 9110 10.2.3), capped at an hour.

    ``default`` when the header is absent or unreadable.
    """
    if value is None or not value.strip():
        return default
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
        seconds = (when - current).total_seconds()
    if not math.isfinite(seconds):
        return default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# -- redaction ---------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path``: what identifies a call in an error, without userinfo, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an unparseable URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else parts.path


class Redactor:
    """Replaces every known secret in text meant for errors and logs.

    Vendors and identity providers sometimes echo what they were sent; redacting where messages are
    built is cheaper than auditing every far end's error bodies.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        for value in secrets:
            self.add(value)

    def add(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._values.add(value)

    def __call__(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


class _DropQueries(logging.Filter):
    """urllib3 logs each request line, query included, at DEBUG: cut the query so no token reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.split("?", 1)[0] if isinstance(a, str) and "?" in a else a for a in record.args)
        return True


def _quiet_urllib3_queries() -> None:
    log = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _DropQueries) for f in log.filters):
        log.addFilter(_DropQueries())


# -- address policy ----------------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints (EC2/Lambda IMDS over IPv4 and IPv6): refused by every policy, trusted included.
METADATA_ADDRESSES: Final = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _address(raw: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(raw.split("%", 1)[0])  # an IPv6 scope id is not part of the address
    except ValueError:
        return None


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64): judged as that IPv4 address."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which URLs a caller may reach: schemes, and the addresses their hosts may resolve to.

    * :data:`DEPLOYED`: https to public unicast addresses only. Refused: loopback, private (10/8,
      172.16/12, 192.168/16, fc00::/7), shared (100.64/10), link-local (169.254/16, fe80::/10),
      unspecified (0.0.0.0, ::), multicast, reserved and documentation ranges, the cloud metadata
      addresses, and IPv6 forms of any of those (::ffff:a.b.c.d, 6to4, NAT64).
    * :data:`LOCAL`: the local stack's platform fakes, key servers and IdPs listen on
      ``http://127.0.0.1``: adds plain http and loopback (127.0.0.0/8, ::1), nothing else.
    * :data:`TRUSTED`: CRM base URLs, written by an administrator: http or https to any address
      (the e2e fake CRM is on 127.0.0.1; a private CRM host is legitimate) except the metadata
      addresses and the unspecified ones.

    ``allow`` and ``deny`` add networks (checked deny first, then allow, then the rules above):
    tests use them to admit exactly one loopback address while another stands for "internal".
    """

    name: str
    schemes: frozenset[str] = frozenset({"https"})
    loopback: bool = False
    any_address: bool = False
    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    def allows_address(self, raw: str) -> bool:
        ip = _address(raw)
        if ip is None:
            return False
        judged: IPAddress = _embedded_v4(ip) or ip
        if judged in METADATA_ADDRESSES or ip in METADATA_ADDRESSES or judged.is_unspecified or ip.is_unspecified:
            return False
        if any(judged in net or ip in net for net in self.deny):
            return False
        if any(judged in net or ip in net for net in self.allow):
            return True
        if self.any_address:
            return True
        if judged.is_loopback:
            return self.loopback
        if judged.is_multicast or judged.is_reserved or judged.is_link_local or judged.is_private:
            return False
        if isinstance(judged, ipaddress.IPv6Address) and judged.is_site_local:
            return False
        return judged.is_global

    def check_url(self, url: str) -> None:
        """Refuse a URL before any socket is opened: its scheme, a missing host, or a literal address refused."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise InvalidRequest("the URL cannot be parsed") from None
        if parts.scheme not in self.schemes:
            allowed = " or ".join(sorted(self.schemes))
            raise Refused(f"only {allowed} URLs are allowed, not {parts.scheme or 'no scheme'!r}", target=redact_url(url))
        if not host:
            raise InvalidRequest("the URL has no host", target=redact_url(url))
        if _address(host) is not None and not self.allows_address(host):
            raise Refused(f"{host} is not an address the {self.name} policy allows", target=redact_url(url))


DEPLOYED: Final = AddressPolicy("deployed")
LOCAL: Final = AddressPolicy("local", schemes=frozenset({"http", "https"}), loopback=True)
TRUSTED: Final = AddressPolicy("trusted", schemes=frozenset({"http", "https"}), loopback=True, any_address=True)


def local_stack() -> bool:
    """Whether this process is the local stack: the one switch that admits http and loopback."""
    return os.environ.get(ALLOW_HTTP_ENV) == "1"


def policy_from_env() -> AddressPolicy:
    """:data:`LOCAL` where the local stack set ``SWITCHBOARD_ALLOW_HTTP=1``, else :data:`DEPLOYED` (never set when deployed)."""
    return LOCAL if local_stack() else DEPLOYED


# -- responses ---------------------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively (repeated headers joined with ', ', as urllib3 does)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            known = self._items.get(key)
            self._items[key] = (name, value if known is None else f"{known[1]}, {value}")

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"


@dataclass(frozen=True)
class Response:
    """A complete answer: status, headers and the whole body (within the caller's cap)."""

    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=Headers)
    reason: str = ""
    url: str = ""  # of the hop that answered, redacted

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def content(self) -> bytes:
        return self.body

    @property
    def text(self) -> str:
        return self.body.decode(_charset(self.headers.get("Content-Type")), errors="replace")

    def json(self) -> Any:
        """The body as JSON (:func:`switchboard.safe_json.loads`); raises a ``ValueError`` when it is not."""
        return safe_json.loads(self.body)


def _charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or "utf-8"
            try:
                "".encode(charset)
            except LookupError:
                return "utf-8"
            return charset
    return "utf-8"


Inspect = Callable[[int, Headers], None]


# -- the deadline, as every socket read sees it -------------------------------------------------------


@dataclass(frozen=True)
class _Budget:
    deadline: float  # time.monotonic()
    read_timeout: float

    def left(self) -> float:
        return self.deadline - time.monotonic()


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("switchboard_outbound_budget", default=None)


class _BoundedReader(io.RawIOBase):
    """The socket's reads for http.client (status line, headers, body), each waiting only what is left.

    Wraps the socket's own unbuffered ``makefile`` (so the socket's reference counting is intact:
    http.client closes the connection while the response still reads from it).
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        budget = _BUDGET.get()
        if budget is not None:
            left = budget.left()
            if left <= 0:
                raise TimeoutError("the call's deadline has passed")
            self._sock.settimeout(min(left, budget.read_timeout))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _MakefileShim:
    """What http.client's response is built on: a socket whose ``makefile`` is the bounded reader."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_BoundedReader(self._sock))


def _clamp(timeout: Any) -> float | None:
    """A connect timeout shortened to what is left of the call's deadline."""
    value = float(timeout) if isinstance(timeout, int | float) else None
    budget = _BUDGET.get()
    if budget is None:
        return value
    left = budget.left()
    if left <= 0:
        raise TimeoutError("the call's deadline has passed")
    return left if value is None else min(value, left)


def _bound_send(sock: socket.socket | None) -> None:
    """Before the request goes out on a reused connection: its socket waits only what is left of this call."""
    budget = _BUDGET.get()
    if sock is None or budget is None:
        return  # a new connection: _open_checked already bounded it
    left = budget.left()
    if left <= 0:
        raise TimeoutError("the call's deadline has passed")
    sock.settimeout(min(left, budget.read_timeout))


def _open_checked(conn: Any, policy: AddressPolicy) -> socket.socket:
    """urllib3's ``_new_conn``, with every candidate address checked before connecting and the peer after.

    One resolution per connection; the address connected to is one that passed the policy, and the
    connected socket's peer is checked again before anything (TLS, the request line) is sent.
    """
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    host, port = conn._dns_host, conn.port
    try:
        timeout = _clamp(conn.timeout)
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, "no time left to connect") from exc
    try:
        candidates = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    refused: list[str] = []
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in candidates:
        address = str(sockaddr[0])
        if not policy.allows_address(address):
            refused.append(address)
            continue
        sock = socket.socket(family, kind, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
            peer = str(sock.getpeername()[0])
        except OSError as exc:
            sock.close()
            last = exc
            continue
        if not policy.allows_address(peer):
            sock.close()
            refused.append(peer)
            continue
        return sock
    if last is None:
        shown = ", ".join(dict.fromkeys(refused)) or "no address"
        raise Refused(f"{host} resolves to {shown}, not an address the {policy.name} policy allows")
    if isinstance(last, TimeoutError):
        raise ConnectTimeoutError(conn, f"connecting to {host} timed out") from last
    raise NewConnectionError(conn, f"could not connect to {host} ({type(last).__name__})") from last


_ADAPTERS: dict[AddressPolicy, type] = {}


def _adapter_class(policy: AddressPolicy) -> type:
    """A requests transport adapter whose connections obey ``policy`` and the call's deadline (built once per policy)."""
    found = _ADAPTERS.get(policy)
    if found is not None:
        return found
    import http.client

    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class BoundedResponse(http.client.HTTPResponse):
        def __init__(self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None) -> None:
            super().__init__(_MakefileShim(sock), debuglevel, method, url)  # type: ignore[arg-type]

    class CheckedHTTPConnection(HTTPConnection):
        response_class = BoundedResponse

        def _new_conn(self) -> socket.socket:
            return _open_checked(self, policy)

        def send(self, data: Any) -> None:
            _bound_send(self.sock)
            super().send(data)

    class CheckedHTTPSConnection(CheckedHTTPConnection, HTTPSConnection):
        """TLS over the same checked socket: the checks above come first in the MRO, then HTTPS's own."""

    class CheckedHTTPPool(HTTPConnectionPool):
        ConnectionCls = CheckedHTTPConnection

    class CheckedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = CheckedHTTPSConnection

    class CheckedAdapter(HTTPAdapter):
        """``send`` is requests' own (so ``responses`` can still stand in for the network in tests)."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            # Through a proxy the peer is the proxy, so the policy could not see the target.
            raise InvalidRequest("outbound calls do not go through proxies")

    _ADAPTERS[policy] = CheckedAdapter
    return CheckedAdapter


# -- the client ---------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class Client:
    """Outbound calls under one :class:`AddressPolicy`, over one pooled ``requests.Session``.

    Pass ``session`` to share or inspect one (the CRM adapters' tests do); it gets this client's
    transport adapters mounted, ignores proxy and netrc settings from the environment, and keeps no
    cookies (one platform's cookie must not ride along to the next customer's download).
    """

    def __init__(self, policy: AddressPolicy, *, session: Session | None = None, user_agent: str = USER_AGENT) -> None:
        self.policy = policy
        self.user_agent = user_agent
        self._session = session
        self._prepared = False

    @property
    def session(self) -> Session:
        if self._session is None:
            import requests  # lazy: see the module docstring

            self._session = requests.Session()
        if not self._prepared:
            self._prepare(self._session)
        return self._session

    def _prepare(self, session: Session) -> None:
        from http.cookiejar import DefaultCookiePolicy

        adapter = _adapter_class(self.policy)()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.trust_env = False
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        _quiet_urllib3_queries()
        self._prepared = True

    def request(
        self,
        method: str,
        url: str,
        *,
        limits: Limits,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        inspect: Inspect | None = None,
        credential_headers: Iterable[str] = (),
    ) -> Response:
        """One call within ``limits``: any status comes back as a :class:`Response`; failures raise :class:`OutboundError`.

        ``inspect`` sees the status and headers of the final answer before its body is read and may
        raise to stop (what it raises propagates; the connection is closed). A 3xx is followed only
        when ``limits.max_redirects`` allows; then ``params`` and ``data`` go to the first hop only,
        and ``credential_headers`` (besides Authorization, Proxy-Authorization and Cookie) are
        dropped for good once a hop leaves the first URL's origin.
        """
        started = time.monotonic()
        deadline = started + limits.deadline
        sensitive = CREDENTIAL_HEADERS | {h.lower() for h in credential_headers}
        send_headers: dict[str, str] = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        send_headers.update(headers or {})
        origin = _origin(url) if _parses(url) else None
        hops = 0
        while True:
            self.policy.check_url(url)
            target = redact_url(url)
            response = self._send(method, url, target, limits, deadline, send_headers, params, data)
            location = response.headers.get("Location") if response.status_code in REDIRECT_STATUSES else None
            if location is None or limits.max_redirects == 0:
                return self._read(response, target, limits, deadline, inspect)
            response.close()
            hops += 1
            if hops > limits.max_redirects:
                raise TooManyRedirects(f"more than {limits.max_redirects} redirects", target=target)
            try:
                url = urljoin(url, location.strip())
            except ValueError:
                raise InvalidRequest("a redirect's Location cannot be parsed", target=target) from None
            params = None  # the first request's query must not be appended to another URL
            if response.status_code == 303 or (response.status_code in (301, 302) and method.upper() == "POST"):
                method, data = "GET", None
                send_headers = {k: v for k, v in send_headers.items() if k.lower() != "content-type"}
            if not _parses(url) or _origin(url) != origin:
                send_headers = {k: v for k, v in send_headers.items() if k.lower() not in sensitive}

    def _send(
        self,
        method: str,
        url: str,
        target: str,
        limits: Limits,
        deadline: float,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        data: bytes | Mapping[str, str] | None,
    ) -> Any:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimedOut(f"no answer within {limits.deadline:g} s", target=target)
        session = self.session
        token = _BUDGET.set(_Budget(deadline, limits.read_timeout))
        failure: OutboundError | None = None
        try:
            return session.request(
                method,
                url,
                headers=dict(headers),
                params=dict(params) if params else None,
                data=dict(data) if isinstance(data, Mapping) else data,
                timeout=(min(limits.connect_timeout, left), min(limits.read_timeout, left)),
                stream=True,
                allow_redirects=False,
            )
        except OutboundError as exc:
            failure = _with_target(exc, target)
        except Exception as exc:
            if not (_is_transport_error(exc) or isinstance(exc, ValueError | UnicodeError)):
                raise  # a bug of ours, not the far end's doing
            failure = _transport_error(exc, target, limits, deadline)
        finally:
            _BUDGET.reset(token)
        # Raised outside the except block: the library's exception (which may quote the URL with its
        # query, or a header) must not ride along as __context__ into logs and dead letters.
        raise failure

    def _read(self, response: Any, target: str, limits: Limits, deadline: float, inspect: Inspect | None) -> Response:
        headers = Headers(response.headers.items())
        status = int(response.status_code)
        token = _BUDGET.set(_Budget(deadline, limits.read_timeout))
        failure: OutboundError | None = None
        try:
            with response:
                if inspect is not None:  # first: a 503's large error page is a 503 to its caller, not "too large"
                    inspect(status, headers)
                declared = headers.get("Content-Length", "").strip()
                if declared.isdigit() and int(declared) > limits.max_bytes:
                    raise TooLarge(f"the answer is larger than {limits.max_bytes} bytes ({declared} declared)", target=target)
                body = self._body(response.raw, target, limits, deadline)
        except OutboundError as exc:
            failure = _with_target(exc, target)
        except Exception as exc:
            if not _is_transport_error(exc):
                raise  # inspect's own exception: the caller's business
            failure = _transport_error(exc, target, limits, deadline)
        finally:
            _BUDGET.reset(token)
        if failure is not None:
            raise failure
        return Response(status=status, body=body, headers=headers, reason=str(response.reason or ""), url=target)

    @staticmethod
    def _body(raw: Any, target: str, limits: Limits, deadline: float) -> bytes:
        # read1 returns whatever one socket read brought (read(n) would wait for n bytes); decoding
        # counts what would be kept if a server compresses although asked not to.
        read = getattr(raw, "read1", None) or raw.read
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise TimedOut(f"no complete answer within {limits.deadline:g} s", target=target)
            chunk = read(CHUNK_BYTES, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limits.max_bytes:
                raise TooLarge(f"the answer is larger than {limits.max_bytes} bytes", target=target)
            chunks.append(chunk)


def _parses(url: str) -> bool:
    try:
        _origin(url)
    except ValueError:
        return False
    return True


def _with_target(exc: OutboundError, target: str) -> OutboundError:
    if exc.target:
        return exc
    fresh = type(exc)(exc.reason, target=target, status=exc.status, retry_after=exc.retry_after)
    return fresh


def os_reason(exc: BaseException) -> str | None:
    """The operating system's words (``Connection refused``, ``Name or service not known``) in an exception's chain."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return str(current.strerror)
        if isinstance(current, BaseException):
            stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return None


def _is_transport_error(exc: BaseException) -> bool:
    import http.client

    import requests
    import urllib3.exceptions

    return isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError | OSError | http.client.HTTPException)


def _transport_error(exc: BaseException, target: str, limits: Limits, deadline: float) -> OutboundError:
    """What a library exception means, named by its kind only (its text may quote the URL or a header)."""
    import requests
    import urllib3.exceptions

    kind = type(exc).__name__
    if time.monotonic() >= deadline:
        return TimedOut(f"no answer within {limits.deadline:g} s", target=target)
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return TimedOut(f"no answer within {limits.deadline:g} s", target=target)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidHeader | requests.exceptions.InvalidSchema):
        return InvalidRequest(f"the request cannot be sent ({kind})", target=target)
    if isinstance(exc, requests.exceptions.MissingSchema | urllib3.exceptions.LocationParseError):
        return InvalidRequest(f"the request cannot be sent ({kind})", target=target)
    if isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError | OSError):
        said = os_reason(exc)  # the operating system's words only: they never quote a URL or a header
        return ConnectionFailed(f"connection failed: {said}" if said else f"connection failed ({kind})", target=target)
    if isinstance(exc, ValueError | UnicodeError):  # a header or URL requests would not send
        return InvalidRequest(f"the request cannot be sent ({kind})", target=target)
    return ConnectionFailed(f"request failed ({kind})", target=target)
