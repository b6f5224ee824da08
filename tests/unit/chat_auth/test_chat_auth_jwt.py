"""The JWT attack matrix and the happy paths, each refusal pinned to its interface code."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from switchboard.chat_auth import AuthSettingError, ChatAuthError, KeyStore, bearer_token, validate_jwt
from switchboard.settings import AuthSetting

from ._support import (
    CONTACT,
    ISSUER,
    KEY_URL,
    NOW,
    FakeGetter,
    KeyPair,
    b64url,
    claims,
    forge,
    jwt_setting,
    key_array,
    rs256,
    sign,
)


def refused(token: str | None, store: KeyStore, setting: AuthSetting | None = None, now: float = NOW) -> str:
    with pytest.raises(ChatAuthError) as info:
        validate_jwt(token, setting or jwt_setting(), store, now=now)
    assert info.value.http_status == 401
    return info.value.code


@pytest.fixture
def single(getter: FakeGetter, pair_a: KeyPair) -> FakeGetter:
    getter.bodies[KEY_URL] = pair_a.public_pem
    return getter


# -- happy paths ----------------------------------------------------------------------------------


def test_valid_token_single_pem_endpoint(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    result = validate_jwt(sign(pair_a), jwt_setting(), store, now=NOW)
    assert result.sub == CONTACT
    assert result.iss == ISSUER
    assert result.exp == NOW + 3600
    assert result.context == {"msdyn_cartvalue": "10000", "msdyn_isvip": "false", "portalcontactid": CONTACT}


def test_single_pem_endpoint_ignores_a_kid(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    assert validate_jwt(sign(pair_a, kid="whatever"), jwt_setting(), store, now=NOW).kid == "whatever"


def test_valid_token_json_array_endpoint_with_crlf_pems(
    getter: FakeGetter, store: KeyStore, pair_a: KeyPair, pair_b: KeyPair
) -> None:
    # The doc's kids are opaque strings with "/" and "=": they must round-trip untouched.
    kid_a, kid_b = "qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp4in7hu4=", "qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp__valid="
    document = key_array((kid_a, pair_a, NOW + 86400), (kid_b, pair_b, NOW + 86400))
    assert b"\\r\\n" not in document  # base64 hides the CRLFs, as in the doc
    getter.bodies[KEY_URL] = document
    assert validate_jwt(sign(pair_b, kid=kid_b), jwt_setting(), store, now=NOW).kid == kid_b
    assert validate_jwt(sign(pair_a, kid=kid_a), jwt_setting(), store, now=NOW).sub == CONTACT
    assert getter.count() == 1  # cached


def test_no_issuer_configured_accepts_any_issuer(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    token = sign(pair_a, claims(iss="someone.else"))
    assert validate_jwt(token, jwt_setting(issuer=None), store, now=NOW).iss == "someone.else"


def test_lwicontexts_optional_and_primitives_kept(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    assert validate_jwt(sign(pair_a, claims(lwicontexts=None)), jwt_setting(), store, now=NOW).context == {}
    ctx = {"s": "x", "i": 5000, "f": 1.5, "b": True, "n": None}
    token = sign(pair_a, claims(lwicontexts=json.dumps(ctx)))
    assert validate_jwt(token, jwt_setting(), store, now=NOW).context == ctx


def test_nbf_optional(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    assert validate_jwt(sign(pair_a, claims(nbf=None)), jwt_setting(), store, now=NOW).sub == CONTACT


@pytest.mark.parametrize(("seconds_ago", "accepted"), [(30, True), (59, True), (60, False), (90, False)])
def test_exp_leeway_is_60_seconds(single: FakeGetter, store: KeyStore, pair_a: KeyPair, seconds_ago: int, accepted: bool) -> None:
    token = sign(pair_a, claims(exp=NOW - seconds_ago, iat=NOW - 600, nbf=NOW - 600))
    if accepted:
        assert validate_jwt(token, jwt_setting(), store, now=NOW).exp == NOW - seconds_ago
    else:
        assert refused(token, store) == "token_expired"


def test_nbf_within_leeway_accepted(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    assert validate_jwt(sign(pair_a, claims(nbf=NOW + 30)), jwt_setting(), store, now=NOW).sub == CONTACT


# -- the attack matrix ----------------------------------------------------------------------------


def test_alg_none(single: FakeGetter, store: KeyStore) -> None:
    token = forge({"alg": "none", "typ": "JWT"}, claims(), lambda _: b"")
    assert refused(token, store) == "invalid_token"
    assert refused(token.rstrip("."), store) == "invalid_token"  # the two-part spelling too
    assert single.calls == []  # refused before any key fetch


@pytest.mark.parametrize("alg", ["None", "NONE", "HS256", "RS384", "RS512", "PS256", "ES256", "EdDSA", ""])
def test_every_other_alg_refused(single: FakeGetter, store: KeyStore, pair_a: KeyPair, alg: str) -> None:
    # Even with a genuine RS256 signature underneath, a header that says otherwise is refused.
    genuine = sign(pair_a)
    _, payload, sig = genuine.split(".")
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    assert refused(f"{header}.{payload}.{sig}", store) == "invalid_token"


def test_alg_missing_refused(single: FakeGetter, store: KeyStore) -> None:
    assert refused(forge({"typ": "JWT"}, claims(), lambda _: b"x"), store) == "invalid_token"


def test_hs256_signed_with_the_public_key_pem(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    pem = pair_a.public_pem  # the key confusion attack: the verifier's own public key as HMAC secret
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(), lambda m: hmac.new(pem, m, hashlib.sha256).digest())
    assert refused(token, store) == "invalid_token"


def test_hs256_with_rs256_header_claimed_is_a_bad_signature(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    # Header says RS256 but the "signature" is an HMAC with the PEM: the RSA check must fail.
    pem = pair_a.public_pem
    token = forge({"alg": "RS256", "typ": "JWT"}, claims(), lambda m: hmac.new(pem, m, hashlib.sha256).digest())
    assert refused(token, store) == "invalid_signature"


def test_tampered_payload(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    header, _, sig = sign(pair_a).split(".")
    richer = b64url(json.dumps(claims(lwicontexts=json.dumps({"msdyn_isvip": "true"}))).encode())
    assert refused(f"{header}.{richer}.{sig}", store) == "invalid_signature"


def test_signed_by_another_key(single: FakeGetter, store: KeyStore, pair_b: KeyPair) -> None:
    assert refused(sign(pair_b), store) == "invalid_signature"


def test_pss_signature_under_rs256_header(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    def pss(message: bytes) -> bytes:
        return pair_a.private.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())

    assert refused(forge({"alg": "RS256"}, claims(), pss), store) == "invalid_signature"


def test_expired_token(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    assert refused(sign(pair_a, claims(exp=NOW - 3600, iat=NOW - 7200, nbf=NOW - 7200)), store) == "token_expired"


def test_nbf_in_the_future(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    assert refused(sign(pair_a, claims(nbf=NOW + 600)), store) == "token_not_yet_valid"


def test_iat_in_the_future(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    assert refused(sign(pair_a, claims(iat=NOW + 600, nbf=None)), store) == "token_not_yet_valid"


def test_wrong_issuer(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    assert refused(sign(pair_a, claims(iss="evil.example")), store) == "invalid_issuer"


@pytest.mark.parametrize("claim", ["iss", "iat", "exp", "sub"])
def test_each_required_claim_missing(single: FakeGetter, store: KeyStore, pair_a: KeyPair, claim: str) -> None:
    assert refused(sign(pair_a, claims(**{claim: None})), store) == "invalid_token"


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "tomorrow"), ("iat", True), ("nbf", [1]), ("sub", 42), ("sub", ""), ("iss", {"a": 1}), ("exp", 1e300)],
)
def test_wrongly_typed_claims(single: FakeGetter, store: KeyStore, pair_a: KeyPair, claim: str, value: Any) -> None:
    assert refused(forge({"alg": "RS256"}, claims(**{claim: value}), rs256(pair_a)), store) == "invalid_token"


def test_unknown_kid(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 3600))
    assert refused(sign(pair_a, kid="k2"), store) == "unknown_key"


def test_no_kid_with_array_endpoint(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 3600))
    assert refused(sign(pair_a), store) == "unknown_key"


def test_expired_key(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW - 1))
    assert refused(sign(pair_a, kid="k1"), store) == "unknown_key"


def test_key_expires_while_cached(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 100))
    token = sign(pair_a, claims(exp=NOW + 3600), kid="k1")
    assert validate_jwt(token, jwt_setting(), store, now=NOW).kid == "k1"
    assert refused(token, store, now=NOW + 100) == "unknown_key"


def test_non_string_kid(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    genuine = sign(pair_a)
    _, payload, sig = genuine.split(".")
    header = b64url(json.dumps({"alg": "RS256", "kid": 7}).encode())
    assert refused(f"{header}.{payload}.{sig}", store) == "invalid_token"


def test_crit_header_refused(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    token = forge(
        {"alg": "RS256", "crit": ["exp"]}, claims(), lambda m: pair_a.private.sign(m, padding.PKCS1v15(), hashes.SHA256())
    )
    assert refused(token, store) == "invalid_token"


@pytest.mark.parametrize(
    "lwicontexts",
    [
        {"msdyn_isvip": "true"},  # an object instead of a JSON string
        json.dumps({"nested": {"a": 1}}),  # a nested object value
        json.dumps({"list": [1, 2]}),  # a nested array value
        json.dumps(["not", "an", "object"]),
        json.dumps("a string"),
        "{not json",
        "",
        42,
        ["a"],
        '{"x": NaN}',
    ],
)
def test_bad_lwicontexts(single: FakeGetter, store: KeyStore, pair_a: KeyPair, lwicontexts: Any) -> None:
    assert refused(sign(pair_a, claims(lwicontexts=lwicontexts)), store) == "invalid_token"


def test_lwicontexts_null_refused(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    payload = claims()
    payload["lwicontexts"] = None
    assert refused(sign(pair_a, payload), store) == "invalid_token"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "....",
        "eyJhbGciOiJSUzI1NiJ9.%%%.sig",
        "eyJhbGciOiJSUzI1NiJ9.e30.!!!",
        b64url(b"[1,2]") + ".e30.AAAA",
        "x" * 20000 + ".a.b",
        "\u00e9.\u00e9.\u00e9",
    ],
)
def test_garbage_token(single: FakeGetter, store: KeyStore, token: str) -> None:
    assert refused(token, store) == "invalid_token"


def test_payload_not_an_object(single: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    rs = rs256(pair_a)
    header = b64url(json.dumps({"alg": "RS256"}).encode())
    for body in (b"[1, 2]", b"not json", b'"str"'):
        signing_input = f"{header}.{b64url(body)}"
        assert refused(f"{signing_input}.{b64url(rs(signing_input.encode()))}", store) == "invalid_token"


@pytest.mark.parametrize("token", [None, "", "   "])
def test_missing_token(single: FakeGetter, store: KeyStore, token: str | None) -> None:
    assert refused(token, store) == "missing_token"
    assert single.calls == []


# -- the setting and the header -------------------------------------------------------------------


def test_setting_of_wrong_type_is_a_configuration_error(store: KeyStore) -> None:
    with pytest.raises(AuthSettingError):
        validate_jwt("a.b.c", AuthSetting(id="x", type="oauth2"), store, now=NOW)
    with pytest.raises(AuthSettingError):
        validate_jwt("a.b.c", AuthSetting(id="x", type="jwt"), store, now=NOW)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc ", "abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected
