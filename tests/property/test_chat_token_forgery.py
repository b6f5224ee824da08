"""Chat token forgery properties: a changed, re-algorithmed, re-keyed or stripped token never validates.

The genuine token (RS256, signed by the portal's key, every required claim) must validate, so the
refusals are about the change. Each property calls ``validate_jwt`` exactly as the chat start does,
with the key endpoint served in memory: once as a single PEM, once as a Dynamics-style key array.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from hypothesis import assume, event, given
from hypothesis import strategies as st

from switchboard.chat_auth import ChatAuthError, KeyStore, ValidatedToken, validate_jwt
from switchboard.settings import AuthSetting

from ._support import B64URL_ALPHABET, PROFILE, Draw, case, mutated_text

NOW = 1_750_000_000
KEY_URL = "https://portal.example.com/_services/auth/publickey"
ISSUER = "contosohelp.com"
KID_A = "qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp4in7hu4="
KID_B = "qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp__valid="
REQUIRED = ("iss", "iat", "exp", "sub")

PORTAL = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the portal's second key (KID_B)
ATTACKER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_256 = ec.generate_private_key(ec.SECP256R1())
EC_384 = ec.generate_private_key(ec.SECP384R1())
ED = ed25519.Ed25519PrivateKey.generate()
PEM = PORTAL.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
OTHER_PEM = OTHER.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_array() -> bytes:
    entries = [(KID_A, PEM), (KID_B, OTHER_PEM)]
    return json.dumps(
        [
            {"kid": kid, "publicKey": base64.b64encode(pem.replace(b"\n", b"\r\n")).decode(), "expiry": NOW + 86400}
            for kid, pem in entries
        ]
    ).encode()


DOCUMENTS = {"single-pem": PEM, "key-array": key_array()}
SETTING = AuthSetting(id="portal", type="jwt", options={"public_key_url": KEY_URL, "issuer": ISSUER})


def validate(token: str, document: str) -> ValidatedToken:
    body = DOCUMENTS[document]

    def getter(url: str, timeout: float, max_bytes: int, /) -> bytes:
        assert url == KEY_URL  # the key URL comes from the setting, never from the token
        return body

    return validate_jwt(token, SETTING, KeyStore(getter=getter, clock=lambda: NOW), now=NOW)


def assert_never_validated(token: str, document: str) -> None:
    with pytest.raises(ChatAuthError) as refused:
        validate(token, document)
    assert refused.value.http_status == 401
    assert token not in refused.value.message  # a refusal never repeats the token


def same_token(a: str, b: str) -> bool:
    """The same token as far as a verifier can tell: surrounding whitespace, and ``=`` padding on the signature.

    PyJWT decodes a padded signature segment to the same bytes (RFC 7515 omits padding; a padded
    copy is malleability of the encoding, not a forgery: it needs the genuine signature).
    """
    pa, pb = a.strip().split("."), b.strip().split(".")
    if len(pa) != 3 or len(pb) != 3:
        return a.strip() == b.strip()
    return pa[:2] == pb[:2] and pa[2].rstrip("=") == pb[2].rstrip("=")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb",
        "lwicontexts": json.dumps({"msdyn_cartvalue": "10000", "portalcontactid": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"}),
        "iat": NOW - 10,
        "iss": ISSUER,
        "exp": NOW + 3600,
        "nbf": NOW - 10,
    }
    return base | changes


def rs256(message: bytes) -> bytes:
    return PORTAL.sign(message, padding.PKCS1v15(), hashes.SHA256())


def assemble(header: dict[str, Any], payload: dict[str, Any], signer: Callable[[bytes], bytes]) -> str:
    """A token built by hand, for headers and algorithms an honest encoder refuses to write."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(signer(signing_input.encode()))}"


def genuine(payload: dict[str, Any] | None = None, *, kid: str | None = KID_A) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload if payload is not None else claims(), PORTAL, algorithm="RS256", headers=headers)


documents = st.sampled_from(sorted(DOCUMENTS))
subjects = st.text(min_size=1, max_size=40).filter(str.strip)


@PROFILE
@given(document=documents, sub=subjects, pad=st.sampled_from(["", " ", "\t", "\n"]))
def test_the_genuine_token_validates(document: str, sub: str, pad: str) -> None:
    with case("jwt"):
        assert validate(pad + genuine(claims(sub=sub)) + pad, document).sub == sub


# -- segments -----------------------------------------------------------------------------------------


@st.composite
def mutated_token(draw: Draw, token: str) -> str:
    parts = token.split(".")
    kind = draw(st.sampled_from(["segment", "swap-segments", "drop-segment", "extra-segment", "cut-and-paste", "dots"]))
    event(f"token: {kind}")
    if kind == "segment":
        index = draw(st.integers(0, 2))
        event(f"token: segment {('header', 'payload', 'signature')[index]}")
        parts[index] = draw(mutated_text(parts[index], B64URL_ALPHABET))
        return ".".join(parts)
    if kind == "swap-segments":
        i, j = draw(st.sampled_from([(0, 1), (0, 2), (1, 2)]))
        parts[i], parts[j] = parts[j], parts[i]
        return ".".join(parts)
    if kind == "drop-segment":
        del parts[draw(st.integers(0, 2))]
        return ".".join(parts) + draw(st.sampled_from(["", "."]))
    if kind == "extra-segment":
        parts.insert(draw(st.integers(0, 3)), draw(st.text(B64URL_ALPHABET, max_size=12)))
        return ".".join(parts)
    if kind == "cut-and-paste":  # header and payload of another genuine token, this token's signature
        other = genuine(claims(sub=draw(subjects), lwicontexts=json.dumps({"msdyn_isvip": "true"}))).split(".")
        keep = draw(st.sampled_from([(0, 1), (1,), (0,)]))
        return ".".join(other[i] if i in keep else parts[i] for i in range(3))
    return token.replace(".", draw(st.sampled_from(["..", ". ", ".\n", "%2E"])), draw(st.integers(1, 2)))


@PROFILE
@given(data=st.data(), document=documents)
def test_a_changed_token_never_validates(data: st.DataObject, document: str) -> None:
    with case("jwt"):
        token = genuine()
        forged = data.draw(mutated_token(token))
        assume(not same_token(forged, token))
        assert_never_validated(forged, document)


# -- algorithms ---------------------------------------------------------------------------------------
_PEM_FORMS: dict[str, bytes] = {
    "pem": PEM,
    "pem-crlf": PEM.replace(b"\n", b"\r\n"),
    "pem-stripped": PEM.strip(),
    "der": PORTAL.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    "base64-crlf": base64.b64encode(PEM.replace(b"\n", b"\r\n")),
    "pkcs1": PORTAL.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
}


_SIGNABLE_ORDERED = ("HS256", "HS384", "HS512", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
_SIGNABLE = frozenset(_SIGNABLE_ORDERED)


def _signer(alg: str, hmac_key: bytes) -> Callable[[bytes], bytes]:
    """A real signature for ``alg``: HMAC with ``hmac_key``, RSA with the portal's own private key, or EC/EdDSA keys."""
    digests = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
    if alg.startswith("HS"):
        return lambda m: hmac.new(hmac_key, m, getattr(hashlib, "sha" + alg[2:])).digest()
    if alg.startswith("RS"):
        return lambda m: PORTAL.sign(m, padding.PKCS1v15(), digests[alg[2:]])
    if alg.startswith("PS"):
        return lambda m: PORTAL.sign(m, padding.PSS(mgf=padding.MGF1(digests[alg[2:]]), salt_length=32), digests[alg[2:]])
    if alg == "ES256":
        return lambda m: EC_256.sign(m, ec.ECDSA(hashes.SHA256()))
    if alg == "ES384":
        return lambda m: EC_384.sign(m, ec.ECDSA(hashes.SHA384()))
    if alg == "EdDSA":
        return ED.sign
    return lambda m: b""


@st.composite
def swapped_algorithm(draw: Draw) -> str:
    header_alg = draw(
        st.sampled_from(
            [
                *_SIGNABLE_ORDERED,
                "none",
                "None",
                "NONE",
                "nOnE",
                "rs256",
                "RS256 ",
                " RS256",
                "RS256\u0000",
                "",
                "missing",
                "number",
                "list",
            ]
        )
    )
    event(f"alg: {header_alg!r}")
    # Sign as the header claims (the PEM as HMAC secret for HS*), or with a genuine RS256 signature underneath.
    signed_as = header_alg if header_alg in _SIGNABLE else "RS256"
    if draw(st.booleans()):
        signed_as = "RS256"
    pem_form = draw(st.sampled_from(sorted(_PEM_FORMS)))
    header: dict[str, Any] = {"typ": "JWT", "kid": KID_A, "alg": header_alg}
    if header_alg == "missing":
        del header["alg"]
    elif header_alg == "number":
        header["alg"] = 256
    elif header_alg == "list":
        header["alg"] = ["RS256"]
    if header_alg.lower() == "none" and draw(st.booleans()):
        return assemble(header, claims(), lambda m: b"")[:-1] + draw(st.sampled_from(["", ".", "x"]))
    return assemble(header, claims(), _signer(signed_as, _PEM_FORMS[pem_form]))


@PROFILE
@given(token=swapped_algorithm(), document=documents)
def test_any_algorithm_but_rs256_never_validates(token: str, document: str) -> None:
    with case("jwt"):
        assert_never_validated(token, document)


@st.composite
def smuggled_key(draw: Draw) -> str:
    """RS256 signed with an attacker's key, which the header points to or carries (jku, x5u, jwk, x5c)."""
    where = draw(st.sampled_from(["jku", "x5u", "jwk", "x5c", "kid-path", "none"]))
    event(f"key smuggled in: {where}")
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "kid": KID_A}
    if where in ("jku", "x5u"):
        header[where] = "https://evil.example/keys"
    elif where == "jwk":
        numbers = ATTACKER.public_key().public_numbers()
        header["jwk"] = {"kty": "RSA", "n": b64url(numbers.n.to_bytes(256, "big")), "e": "AQAB"}
    elif where == "x5c":
        der = ATTACKER.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        header["x5c"] = [base64.b64encode(der).decode()]
    elif where == "kid-path":
        header["kid"] = draw(st.sampled_from(["../../../dev/null", "' OR '1'='1", KID_B, "", "*"]))
    return assemble(header, claims(), lambda m: ATTACKER.sign(m, padding.PKCS1v15(), hashes.SHA256()))


@PROFILE
@given(token=smuggled_key(), document=documents)
def test_a_token_signed_by_any_key_but_the_portals_never_validates(token: str, document: str) -> None:
    with case("jwt"):
        assert_never_validated(token, document)


# -- kid ----------------------------------------------------------------------------------------------
kids = st.one_of(
    st.text(max_size=60),
    st.sampled_from([KID_B, KID_A.lower(), KID_A + " ", KID_A.rstrip("="), KID_A.replace("/", "_")]),
    mutated_text(KID_A, B64URL_ALPHABET + "/=+"),
)


@PROFILE
@given(kid=st.one_of(kids, st.integers(), st.none(), st.lists(st.just(KID_A), max_size=1)))
def test_a_kid_other_than_the_signing_keys_never_validates_against_a_key_array(kid: Any) -> None:
    with case("jwt"):
        assume(kid != KID_A)
        header = {"alg": "RS256", "typ": "JWT"} | ({} if kid is None else {"kid": kid})
        assert_never_validated(assemble(header, claims(), rs256), "key-array")


@PROFILE
@given(kid=kids, document=documents)
def test_a_kid_changed_after_signing_never_validates(kid: str, document: str) -> None:
    with case("jwt"):
        assume(kid != KID_A)
        _, payload, signature = genuine().split(".")
        header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
        assert_never_validated(f"{header}.{payload}.{signature}", document)


# -- claims -------------------------------------------------------------------------------------------
_BAD_VALUES: dict[str, list[Any]] = {
    "iss": [None, "", 42, ["contosohelp.com"], "contosohelp.com.evil.example", "CONTOSOHELP.COM", " contosohelp.com"],
    "sub": [None, "", 42, ["x"], {"id": "x"}, True],
    "exp": [None, "tomorrow", str(NOW + 3600), True, [NOW + 3600], 1e300, float("nan"), NOW - 61, 0],
    "iat": [None, "now", True, NOW + 3600, 1e300],
    "nbf": ["later", True, NOW + 3600],
    "lwicontexts": [{"msdyn_isvip": "true"}, "not json", '{"nested": {"a": 1}}', "[1, 2]", 7, '{"x": NaN}'],
}


@st.composite
def damaged_claims(draw: Draw) -> dict[str, Any]:
    """Genuine claims with required ones removed or mistyped, or time and issuer claims that fail."""
    payload = claims()
    removed = draw(st.lists(st.sampled_from(REQUIRED), unique=True, max_size=4))
    for name in removed:
        event(f"claim removed: {name}")
        del payload[name]
    changed = draw(st.lists(st.sampled_from(sorted(_BAD_VALUES)), unique=True, min_size=0 if removed else 1, max_size=3))
    for name in changed:
        value = draw(st.sampled_from(_BAD_VALUES[name]))
        event(f"claim changed: {name}")
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    assume(payload != claims())
    return payload


@PROFILE
@given(payload=damaged_claims(), document=documents)
def test_missing_or_bad_claims_never_validate_even_when_genuinely_signed(payload: dict[str, Any], document: str) -> None:
    with case("jwt"):
        token = assemble({"alg": "RS256", "typ": "JWT", "kid": KID_A}, payload, rs256)
        assert_never_validated(token, document)
