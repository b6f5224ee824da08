"""Test helpers: a token factory, key documents, a scripted key getter, a settable clock."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from switchboard.settings import AuthSetting

NOW = 1_750_000_000  # a fixed "now" for every time-dependent test
KEY_URL = "https://portal.example.com/_services/auth/publickey"
ISSUER = "contosohelp.com"
CONTACT = "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def crlf_b64(self) -> str:
        """The Dynamics 365 array form: base64 of the PEM with CRLF line ends."""
        return base64.b64encode(self.public_pem.replace(b"\n", b"\r\n")).decode("ascii")


def _new_pair() -> KeyPair:
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def claims(**overrides: Any) -> dict[str, Any]:
    """The doc's example payload, moved to NOW; pass name=None to drop a claim."""
    base: dict[str, Any] = {
        "sub": CONTACT,
        "lwicontexts": json.dumps({"msdyn_cartvalue": "10000", "msdyn_isvip": "false", "portalcontactid": CONTACT}),
        "iat": NOW - 10,
        "iss": ISSUER,
        "exp": NOW + 3600,
        "nbf": NOW - 10,
    }
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def sign(pair: KeyPair, payload: dict[str, Any] | None = None, *, kid: str | None = None) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload if payload is not None else claims(), pair.private, algorithm="RS256", headers=headers)


def key_array(*entries: tuple[str, KeyPair, int]) -> bytes:
    return json.dumps([{"kid": kid, "publicKey": pair.crlf_b64(), "expiry": expiry} for kid, pair, expiry in entries]).encode()


@dataclass
class FakeGetter:
    """Serves scripted bodies per URL and counts fetches; a body that is an exception is raised."""

    bodies: dict[str, bytes | Exception] = field(default_factory=dict)
    calls: list[tuple[str, float, int]] = field(default_factory=list)

    def __call__(self, url: str, timeout: float, max_bytes: int, /) -> bytes:
        self.calls.append((url, timeout, max_bytes))
        body = self.bodies[url]
        if isinstance(body, Exception):
            raise body
        return body

    def count(self, url: str = KEY_URL) -> int:
        return sum(1 for u, _, _ in self.calls if u == url)


@dataclass
class Clock:
    t: float = NOW

    def __call__(self) -> float:
        return self.t


def jwt_setting(url: str = KEY_URL, issuer: str | None = ISSUER) -> AuthSetting:
    options: dict[str, Any] = {"public_key_url": url}
    if issuer is not None:
        options["issuer"] = issuer
    return AuthSetting(id="portal", type="jwt", options=options)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def forge(header: dict[str, Any], payload: dict[str, Any], signer: Callable[[bytes], bytes]) -> str:
    """A token assembled by hand, for the algorithms PyJWT (rightly) will not produce."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(signer(signing_input.encode()))}"


def new_pair() -> KeyPair:
    return _new_pair()


def rs256(pair: KeyPair) -> Callable[[bytes], bytes]:
    """A genuine RS256 signer for :func:`forge`, for payloads PyJWT's encoder would refuse."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return lambda message: pair.private.sign(message, padding.PKCS1v15(), hashes.SHA256())
