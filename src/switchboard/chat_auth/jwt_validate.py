"""Validating the JWT a signed-in visitor's portal hands the chat widget.

The rules are Dynamics 365 Omnichannel's chat authentication (interface section 2): RS256 only, the
key from the auth setting's key URL, required ``iss``/``iat``/``exp``/``sub``, ``nbf`` honoured, 60 s
leeway, ``sub`` is the contact id and ``lwicontexts`` (a JSON *string*) carries context variables.

PyJWT verifies the signature, through a ``PyJWS`` whose algorithm registry holds RS256 alone and
with ``algorithms=["RS256"]``; the header's ``alg`` is also checked here first, before any key is
fetched, so ``none``, HS256 (including the classic trick of using the public PEM as an HMAC secret)
and everything else is refused without a network call. Time claims are checked here rather than by
PyJWT so that ``now`` can be passed in and each failure gets its own interface code.

This is the chat start's hot path (``bench/jwt_validate.py`` holds it to 1.1x PyJWT's bare
``jwt.decode``): the header is parsed once and cached by its segment, the key object is parsed once
per fetch, and PyJWT decodes the token once.

Every JSON in a token (header, payload, ``lwicontexts``) is read under :mod:`switchboard.safe_json`'s
rules (its depth limit and error): ``json.loads`` raises RecursionError, not a ValueError, on a
document nested past the interpreter's limit, and a header of 5,000 nested arrays fits in a 16 KiB
token. That reached API Gateway as a 502 before any signature was checked; now it is
``invalid_token`` like any other unreadable token.

Order of checks, which decides the code when a token has several faults: presence, shape and
header (``invalid_token``), key (``unknown_key``), signature (``invalid_signature``), required
claims (``invalid_token``), ``exp`` (``token_expired``), ``nbf``/``iat`` (``token_not_yet_valid``),
``iss`` (``invalid_issuer``), ``lwicontexts`` (``invalid_token``). Nothing from an unsigned
payload is ever reported back.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from switchboard.chat_auth.errors import (
    INVALID_ISSUER,
    INVALID_SIGNATURE,
    INVALID_TOKEN,
    MISSING_TOKEN,
    TOKEN_EXPIRED,
    TOKEN_NOT_YET_VALID,
    AuthSettingError,
    ChatAuthError,
)
from switchboard.chat_auth.keys import KeyStore
from switchboard.safe_json import MAX_DEPTH, JsonError, depth_exceeds

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from jwt import PyJWS

    from switchboard.settings import AuthSetting

ALGORITHM: Final = "RS256"
LEEWAY_SECONDS: Final = 60
MAX_TOKEN_CHARS: Final = 16 * 1024  # API Gateway caps headers near 10 KiB; anything longer is not a portal token
REQUIRED_CLAIMS: Final = ("iss", "iat", "exp", "sub")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


# One decoder, built once: ``json.loads`` with any keyword (and so ``safe_json.loads(parse_constant=...)``)
# builds a new one per call, which alone cost this hot path 6% of its budget. NaN and Infinity are
# not JSON, and a number rules cannot compare, so they are refused.
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def _json(raw: str) -> Any:
    """:func:`switchboard.safe_json.loads` with the decoder above: the same depth rule and error."""
    try:
        doc = _DECODER.decode(raw)
    except RecursionError:
        raise JsonError(f"JSON is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # JSONDecodeError, or a constant refused by the hook
        raise JsonError("not valid JSON") from None
    if depth_exceeds(doc, MAX_DEPTH):
        raise JsonError(f"JSON is nested deeper than {MAX_DEPTH} levels")
    return doc


# A portal signs every token with the same header ({"alg":"RS256","typ":"JWT","kid":...}), so
# the parsed header is kept by its segment. Callers only read it; it decides nothing by itself.
_HEADERS: dict[str, dict[str, Any]] = {}
_MAX_CACHED_HEADERS: Final = 64
_B64URL_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]+={0,2}")  # base64url; some issuers pad, as PyJWT tolerates

ContextValue = str | int | float | bool | None
_PRIMITIVES: Final = (str, int, float, bool)  # tuples: isinstance with a union type is slower, and this is the hot path
_NUMBERS: Final = (int, float)


@dataclass(frozen=True)
class ValidatedToken:
    """What a valid token says about the visitor."""

    sub: str  # the contact id (Dynamics recommends the contact's GUID)
    iss: str
    exp: int
    iat: int
    context: dict[str, ContextValue] = field(default_factory=dict)  # from lwicontexts
    kid: str | None = None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when there is none."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def validate(token: str | None, setting: AuthSetting, keys: KeyStore, now: float | None = None) -> ValidatedToken:
    """Validate a chat token against a ``jwt`` auth setting, or raise :class:`ChatAuthError`.

    Raises :class:`AuthSettingError` when the setting is not a usable ``jwt`` setting (a server fault).
    """
    if setting.type != "jwt":
        raise AuthSettingError(f"auth setting {setting.id!r} is of type {setting.type!r}, not 'jwt'")
    url = setting.option("public_key_url")
    if not isinstance(url, str) or not url:
        raise AuthSettingError(f"auth setting {setting.id!r} has no public_key_url")
    t = keys.now() if now is None else now

    if token is None or not isinstance(token, str) or not token.strip():
        raise ChatAuthError(MISSING_TOKEN, "No token was sent; sign in and send the portal's token as a Bearer token.")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise ChatAuthError(INVALID_TOKEN, "The token is not a JWT (three dot-separated parts).")

    header = _unverified_header(token)
    alg = header.get("alg")
    if alg != ALGORITHM:
        shown = alg if isinstance(alg, str) and alg.isalnum() and len(alg) <= 10 else "unsupported"
        raise ChatAuthError(INVALID_TOKEN, f"The token is signed with {shown}; only RS256 is accepted.")
    if "crit" in header:
        raise ChatAuthError(INVALID_TOKEN, "The token requires header extensions (crit) that are not supported.")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise ChatAuthError(INVALID_TOKEN, "The token's kid header is not a string.")

    key = keys.key_for(url, kid, now=t)
    try:
        payload = _verify_signature(token, key)
    except ChatAuthError as exc:
        if exc.code != INVALID_SIGNATURE:
            raise
        rotated = keys.rotated_key(url, kid, key, now=t)
        if rotated is None:
            raise
        payload = _verify_signature(token, rotated)

    return _check_claims(payload, setting, t, kid)


def _unverified_header(token: str) -> dict[str, Any]:
    """The header alone, to pick the key and refuse a wrong ``alg`` before any fetch.

    Not ``jwt.get_unverified_header``: that decodes all three segments, and PyJWT decodes them
    again in ``jwt.decode``, which made validation cost twice PyJWT's own parse. Nothing here is
    trusted: ``jwt.decode`` re-reads the header and enforces ``algorithms=["RS256"]`` itself.
    """
    segment = token.partition(".")[0]
    known = _HEADERS.get(segment)
    if known is not None:
        return known
    if not _B64URL_SEGMENT.fullmatch(segment):
        raise ChatAuthError(INVALID_TOKEN, "The token header cannot be read.")
    segment = segment.rstrip("=")
    try:
        header = _json(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8"))
    except (JsonError, binascii.Error, UnicodeDecodeError):  # too deep, not JSON, not UTF-8, not base64
        raise ChatAuthError(INVALID_TOKEN, "The token header cannot be read.") from None
    if not isinstance(header, dict):
        raise ChatAuthError(INVALID_TOKEN, "The token header is not a JSON object.")
    if len(_HEADERS) >= _MAX_CACHED_HEADERS:  # bounded: invented headers cannot grow it
        _HEADERS.clear()
    _HEADERS[segment] = header
    return header


@functools.cache
def _jws() -> PyJWS:
    """A verifier whose algorithm registry holds RS256 and nothing else (built once per container)."""
    import jwt

    return jwt.PyJWS(algorithms=[ALGORITHM])


def _verify_signature(token: str, key: RSAPublicKey) -> dict[str, Any]:
    """Signature only, through PyJWT's JWS layer; every claim check is ours (see the module docstring).

    The JWS layer rather than ``jwt.decode``: the claims PyJWT would check are switched off here
    anyway, and skipping its JWT layer keeps the hot path at PyJWT's own parse plus one RSA verify.
    """
    import jwt

    try:
        raw = _jws().decode_complete(token, key=key, algorithms=[ALGORITHM])["payload"]
    except jwt.InvalidSignatureError:
        raise ChatAuthError(INVALID_SIGNATURE, "The token's signature does not match the published public key.") from None
    except jwt.InvalidAlgorithmError:
        raise ChatAuthError(INVALID_TOKEN, "Only RS256 tokens are accepted.") from None
    except jwt.InvalidTokenError:
        raise ChatAuthError(INVALID_TOKEN, "The token cannot be decoded.") from None
    try:
        payload = _json(raw.decode("utf-8"))  # UTF-8 only (RFC 7519 7.2): json.loads would also guess UTF-16/32
    except (UnicodeDecodeError, JsonError):  # not UTF-8, not JSON, NaN/Infinity, or nested too deep
        raise ChatAuthError(INVALID_TOKEN, "The token payload is not JSON, or has too many levels.") from None
    if not isinstance(payload, dict):
        raise ChatAuthError(INVALID_TOKEN, "The token payload is not a JSON object.")
    return payload


def _numeric_date(payload: dict[str, Any], claim: str) -> int:
    value = payload[claim]
    if isinstance(value, bool) or not isinstance(value, _NUMBERS) or not math.isfinite(value) or abs(value) > 1e11:
        raise ChatAuthError(INVALID_TOKEN, f"The {claim} claim is not a numeric date (unix seconds).")
    return int(value)


def _check_claims(payload: dict[str, Any], setting: AuthSetting, now: float, kid: str | None) -> ValidatedToken:
    for claim in REQUIRED_CLAIMS:
        if payload.get(claim) is None:
            raise ChatAuthError(INVALID_TOKEN, f"The token lacks the required {claim} claim.")
    iss, sub = payload["iss"], payload["sub"]
    if not isinstance(iss, str) or not iss:
        raise ChatAuthError(INVALID_TOKEN, "The iss claim is not a string.")
    if not isinstance(sub, str) or not sub:
        raise ChatAuthError(INVALID_TOKEN, "The sub claim is not a non-empty string.")
    exp = _numeric_date(payload, "exp")
    iat = _numeric_date(payload, "iat")
    nbf = _numeric_date(payload, "nbf") if payload.get("nbf") is not None else None

    if now >= exp + LEEWAY_SECONDS:
        raise ChatAuthError(TOKEN_EXPIRED, "The token has expired; ask the portal for a new one.")
    if nbf is not None and nbf > now + LEEWAY_SECONDS:
        raise ChatAuthError(TOKEN_NOT_YET_VALID, "The token is not valid yet (nbf is in the future).")
    if iat > now + LEEWAY_SECONDS:
        raise ChatAuthError(TOKEN_NOT_YET_VALID, "The token is not valid yet (iat is in the future).")

    expected_iss = setting.option("issuer")
    if expected_iss and iss != expected_iss:
        raise ChatAuthError(INVALID_ISSUER, "The token's issuer is not the one configured for this widget.")

    context = parse_lwicontexts(payload["lwicontexts"]) if "lwicontexts" in payload else {}
    return ValidatedToken(sub=sub, iss=iss, exp=exp, iat=iat, context=context, kid=kid)


def parse_lwicontexts(raw: object) -> dict[str, ContextValue]:
    """Context variables from the ``lwicontexts`` claim, which must be a JSON string of a flat object.

    Dynamics 365 sends it serialised ("only primitive values are allowed for any key"). An object in
    place of the string is refused rather than accepted, so portals that would break on Dynamics
    break here too, and a nested value is refused because routing rules compare primitives only.
    """
    if not isinstance(raw, str):
        raise ChatAuthError(INVALID_TOKEN, "The lwicontexts claim must be a JSON string of an object, not a JSON value.")
    try:
        parsed = _json(raw)
    except JsonError:
        raise ChatAuthError(INVALID_TOKEN, "The lwicontexts claim is not valid JSON, or has too many levels.") from None
    if not isinstance(parsed, dict):
        raise ChatAuthError(INVALID_TOKEN, "The lwicontexts claim must encode a JSON object.")
    for name, value in parsed.items():
        if value is not None and not isinstance(value, _PRIMITIVES):
            shown = name if len(name) <= 64 else name[:64] + "..."
            raise ChatAuthError(INVALID_TOKEN, f"The lwicontexts variable {shown!r} is not a primitive value.")
    return parsed
