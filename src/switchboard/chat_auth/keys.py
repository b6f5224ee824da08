"""Fetching and caching the public keys a business signs its chat tokens with.

The auth setting's ``public_key_url`` answers either one PEM public key, or (for rotation) a JSON
array of ``{"kid", "publicKey": base64 of a PEM, "expiry": unix seconds}`` as Dynamics 365 defines
it. The URL comes only from the stored auth setting, never from the request or the token (a token's
``jku``/``x5u`` headers are ignored): that, plus https to public addresses only (checked on the
address connected to), no redirects, one 3 s deadline for the whole fetch (headers included) and a
64 KiB cap (see :mod:`switchboard.chat_auth._http`), is the guard against server-side request forgery.

Caching matters because the endpoint is the business's web server, and every chat start would
otherwise wait on it. The rules:

* a key set is reused for ``max_age`` seconds (default 300), then refetched; when the refetch fails
  the old set is kept, because a brief portal outage should not sign out every customer;
* a ``kid`` that the cached array does not know triggers a refetch, but at most one fetch per URL
  per ``refetch_interval`` (default 60 s), so a stream of tokens with invented kids cannot turn us
  into a load generator against the portal;
* a failed first fetch is not retried for ``failure_backoff`` seconds (default 5), so a dead
  endpoint costs one timeout, not one per request;
* a key whose ``expiry`` has passed is never returned, whatever the cache holds.

One :class:`KeyStore` per Lambda container (module level in the handler) is the intended use.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from switchboard import safe_json
from switchboard.chat_auth._http import DEFAULT_MAX_BYTES, FetchError, check_url, get_bytes, policy_for
from switchboard.chat_auth.errors import UNKNOWN_KEY, ChatAuthError, KeyFetchError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from switchboard.outbound_http import AddressPolicy

MAX_TIMEOUT = 3.0
MIN_RSA_BITS = 2048


class KeyGetter(Protocol):
    """Reads ``url`` and returns the body; raises on any failure (any exception counts as one)."""

    def __call__(self, url: str, timeout: float, max_bytes: int, /) -> bytes: ...


@dataclass(frozen=True)
class _KidKey:
    key: RSAPublicKey
    expiry: float  # unix seconds; math.inf when the endpoint gives none


@dataclass
class _KeySet:
    """What one endpoint answered: either one key, or keys by kid."""

    single: RSAPublicKey | None = None
    by_kid: dict[str, _KidKey] = field(default_factory=dict)
    fetched_at: float = 0.0

    @property
    def is_array(self) -> bool:
        return self.single is None

    def lookup(self, kid: str | None, now: float) -> RSAPublicKey | None:
        if self.single is not None:
            return self.single  # one key: a kid in the token, if any, has nothing to select
        if kid is None:
            return None
        entry = self.by_kid.get(kid)
        if entry is None or entry.expiry <= now:
            return None
        return entry.key


class KeyStore:
    """Public keys per key URL, cached across invocations of a warm Lambda container."""

    def __init__(
        self,
        *,
        getter: KeyGetter | None = None,
        clock: Callable[[], float] = time.time,
        allow_http: bool = False,
        policy: AddressPolicy | None = None,
        timeout: float = MAX_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = 300.0,
        refetch_interval: float = 60.0,
        failure_backoff: float = 5.0,
    ) -> None:
        if not 0 < timeout <= MAX_TIMEOUT:
            raise ValueError(f"timeout must be in (0, {MAX_TIMEOUT}] seconds: the chat start waits on it")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.allow_http = allow_http
        # allow_http is the local stack's switch; an explicit policy (tests) takes precedence.
        self.policy = policy if policy is not None else policy_for(allow_http)
        self._getter: KeyGetter = getter or functools.partial(get_bytes, policy=self.policy)
        self._clock = clock
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.refetch_interval = refetch_interval
        self.failure_backoff = failure_backoff
        self._sets: dict[str, _KeySet] = {}
        self._last_attempt: dict[str, float] = {}
        self._allowed_urls: set[str] = set()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock()

    def clear(self) -> None:
        """Forget every cached key (tests, or after an admin changed the settings)."""
        with self._lock:
            self._sets.clear()
            self._last_attempt.clear()

    def key_for(self, url: str, kid: str | None, *, now: float | None = None) -> RSAPublicKey:
        """The key that must have signed a token with this ``kid``, or ``unknown_key``.

        With a JSON-array endpoint the token must name an unexpired key; with a single-PEM endpoint
        the one key is returned whatever the kid says.
        """
        t = self._clock() if now is None else now
        self._check_url(url)
        with self._lock:
            keyset = self._current(url, t)
            key = keyset.lookup(kid, t)
            if key is None and keyset.is_array and kid is not None and self._may_fetch(url, t, self.refetch_interval):
                refreshed = self._try_fetch(url, t)
                if refreshed is not None:
                    keyset = refreshed
                    key = keyset.lookup(kid, t)
        if key is not None:
            return key
        if not keyset.is_array:  # pragma: no cover - lookup never misses on a single key
            raise ChatAuthError(UNKNOWN_KEY, "No public key is available.")
        if kid is None:
            raise ChatAuthError(UNKNOWN_KEY, "The token has no kid header, but the key endpoint publishes several keys.")
        raise ChatAuthError(UNKNOWN_KEY, "The token's kid names no unexpired key at the key endpoint.")

    def rotated_key(self, url: str, kid: str | None, rejected: RSAPublicKey, *, now: float | None = None) -> RSAPublicKey | None:
        """After a signature failed with ``rejected``: refetch (rate-limited) and return a different key, if any.

        This is how a single-PEM endpoint rotates: the new key has no kid to announce it, so the
        first token it signed fails against the cached key and earns one refetch per interval.
        """
        t = self._clock() if now is None else now
        self._check_url(url)
        with self._lock:
            if not self._may_fetch(url, t, self.refetch_interval):
                return None
            refreshed = self._try_fetch(url, t)
        if refreshed is None:
            return None
        key = refreshed.lookup(kid, t)
        if key is None or key.public_numbers() == rejected.public_numbers():
            return None
        return key

    # -- internals (called with the lock held) -------------------------------------------------

    def _check_url(self, url: str) -> None:
        if url in self._allowed_urls:  # parsed once per URL: this runs on every validation
            return
        try:
            check_url(url, policy=self.policy)
        except FetchError as exc:
            raise KeyFetchError(f"The public key URL is not allowed: {exc}.") from None
        self._allowed_urls.add(url)

    def _may_fetch(self, url: str, now: float, gap: float) -> bool:
        last = self._last_attempt.get(url)
        return last is None or now - last >= gap or now < last  # a clock that went back: allow

    def _current(self, url: str, now: float) -> _KeySet:
        keyset = self._sets.get(url)
        if keyset is not None and now - keyset.fetched_at < self.max_age:
            return keyset
        if keyset is not None:
            if self._may_fetch(url, now, self.refetch_interval):
                return self._try_fetch(url, now) or keyset  # stale keys beat no keys during an outage
            return keyset
        if not self._may_fetch(url, now, self.failure_backoff):
            raise KeyFetchError("The public key endpoint failed moments ago; not retrying yet.")
        return self._fetch(url, now)

    def _try_fetch(self, url: str, now: float) -> _KeySet | None:
        try:
            return self._fetch(url, now)
        except KeyFetchError:
            return None

    def _fetch(self, url: str, now: float) -> _KeySet:
        self._last_attempt[url] = now
        try:
            body = self._getter(url, self.timeout, self.max_bytes)
        except Exception as exc:  # an injected getter may raise anything; all of it means "no keys"
            detail = str(exc) if isinstance(exc, FetchError) else type(exc).__name__
            raise KeyFetchError(f"The public key endpoint at {_host(url)} could not be read: {detail}.") from None
        if len(body) > self.max_bytes:
            raise KeyFetchError(f"The public key endpoint at {_host(url)} answered more than {self.max_bytes} bytes.")
        try:
            keyset = parse_key_document(body)
        except ValueError as exc:
            raise KeyFetchError(f"The public key endpoint at {_host(url)} did not answer a usable key: {exc}.") from None
        keyset.fetched_at = now
        self._sets[url] = keyset
        return keyset


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def parse_key_document(body: bytes) -> _KeySet:
    """Read a key endpoint's answer: one PEM, or the Dynamics 365 JSON array of base64 PEMs.

    Array entries that cannot be read are skipped rather than failing the whole set, so one bad
    entry does not lock out customers whose tokens name a good one. Raises ``ValueError`` with a
    message safe to show when nothing usable is there.
    """
    try:
        text = body.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise ValueError("the answer is not UTF-8 text") from None
    if text.startswith("-----BEGIN"):
        return _KeySet(single=load_rsa_public_key(text))
    if text.startswith("["):
        try:
            entries = safe_json.loads(text, parse_constant=_refuse_constant)
        except ValueError:
            raise ValueError("the answer looks like JSON but does not parse") from None
        if not isinstance(entries, list):  # pragma: no cover - guarded by startswith("[")
            raise ValueError("the answer is not a JSON array")
        by_kid: dict[str, _KidKey] = {}
        for entry in entries:
            parsed = _parse_entry(entry)
            if parsed is None:
                continue
            kid, kidkey = parsed
            known = by_kid.get(kid)
            if known is None or kidkey.expiry > known.expiry:  # kids should be unique; keep the longest-lived
                by_kid[kid] = kidkey
        return _KeySet(by_kid=by_kid)
    raise ValueError("the answer is neither a PEM public key nor a JSON array of keys")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _parse_entry(entry: object) -> tuple[str, _KidKey] | None:
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    encoded = entry.get("publicKey")
    expiry = entry.get("expiry", math.inf)
    if not isinstance(kid, str) or not kid or not isinstance(encoded, str):
        return None
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        return None
    pem = encoded.strip()
    if not pem.startswith("-----BEGIN"):
        try:
            pem = base64.b64decode("".join(pem.split()), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
    try:
        return kid, _KidKey(load_rsa_public_key(pem), float(expiry))
    except ValueError:
        return None


def load_rsa_public_key(pem: str) -> RSAPublicKey:
    """An RSA public key of at least 2048 bits from PEM text (CRLF line ends accepted)."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    normalised = pem.replace("\r\n", "\n").replace("\r", "\n").strip() + "\n"
    try:
        key = load_pem_public_key(normalised.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValueError("the PEM public key cannot be read") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the public key is not an RSA key (RS256 needs one)")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required")
    return key
