"""Gaps found reviewing the chat auth core against the issue's key rules, and the hot-path changes.

* A token cannot point the key fetch anywhere: ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are ignored.
* The header is parsed once by us (cached per header segment) and again by PyJWT: the two must
  agree on what is refused, and the cache must not let one token's header stand in for another's.
* The state key secret's format, shared by ``switchboard apply`` and the handler.
"""

from __future__ import annotations

import json

import pytest

from switchboard.chat_auth import ChatAuthError, KeyStore, validate_jwt
from switchboard.chat_auth import jwt_validate as jv
from switchboard.chat_auth.state import decode_key, new_key_secret, sign, verify

from ._support import KEY_URL, NOW, FakeGetter, KeyPair, b64url, claims, forge, jwt_setting, key_array, rs256
from ._support import sign as sign_jwt


def _code(token: str, store: KeyStore) -> str:
    with pytest.raises(ChatAuthError) as info:
        validate_jwt(token, jwt_setting(), store, now=NOW)
    return info.value.code


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256", "kid": "k1", "jku": "https://evil.example/keys"},
        {"alg": "RS256", "kid": "k1", "x5u": "https://evil.example/cert.pem"},
        {"alg": "RS256", "kid": "k1", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
        {"alg": "RS256", "kid": "k1", "x5c": ["MIIB"]},
    ],
)
def test_key_location_headers_are_ignored(
    getter: FakeGetter, store: KeyStore, pair_a: KeyPair, pair_b: KeyPair, header: dict[str, object]
) -> None:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 3600))
    # Signed by the attacker's key, which the header "offers": still checked against the setting's key only.
    assert _code(forge(header, claims(), rs256(pair_b)), store) == "invalid_signature"
    assert {url for url, _, _ in getter.calls} == {KEY_URL}
    # The genuine key still works with those headers present: they are ignored, not refused.
    assert validate_jwt(forge(header, claims(), rs256(pair_a)), jwt_setting(), store, now=NOW).kid == "k1"


def test_a_padded_header_is_read_as_pyjwt_reads_it(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    # Some issuers (AWS ALB) pad base64url segments; PyJWT accepts that, so the pre-check must too.
    getter.bodies[KEY_URL] = pair_a.public_pem
    header = b64url(json.dumps({"alg": "RS256"}).encode())  # 16 bytes of JSON: two '=' of padding
    padded = header + "=="
    signing_input = f"{padded}.{b64url(json.dumps(claims()).encode())}"
    token = f"{signing_input}.{b64url(rs256(pair_a)(signing_input.encode()))}"
    assert validate_jwt(token, jwt_setting(), store, now=NOW).sub


@pytest.mark.parametrize("segment", ["e30=====", "!!!!", "", "bnVsbA", "WzFd", "IlJTMjU2Ig", "e30"])
def test_unreadable_headers_are_invalid_token(getter: FakeGetter, store: KeyStore, pair_a: KeyPair, segment: str) -> None:
    getter.bodies[KEY_URL] = pair_a.public_pem
    _, payload, signature = sign_jwt(pair_a).split(".")
    assert _code(f"{segment}.{payload}.{signature}", store) == "invalid_token"
    assert getter.calls == []  # refused before any key fetch


def test_the_header_cache_never_lets_one_header_stand_for_another(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 3600))
    good = sign_jwt(pair_a, kid="k1")
    assert validate_jwt(good, jwt_setting(), store, now=NOW).kid == "k1"
    # Same payload and signature under a different header: parsed afresh, and refused.
    _, payload, signature = good.split(".")
    for header in ({"alg": "HS256", "kid": "k1"}, {"alg": "RS256", "kid": "k2"}, {"alg": "RS256"}):
        code = _code(f"{b64url(json.dumps(header).encode())}.{payload}.{signature}", store)
        assert code in {"invalid_token", "unknown_key", "invalid_signature"}
    assert validate_jwt(good, jwt_setting(), store, now=NOW).kid == "k1"  # and the cached one still works


def test_the_header_cache_is_bounded(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    getter.bodies[KEY_URL] = pair_a.public_pem
    for i in range(jv._MAX_CACHED_HEADERS * 3):
        header = b64url(json.dumps({"alg": "RS256", "kid": f"invented-{i}"}).encode())
        _code(f"{header}.e30.AAAA", store)
        assert len(jv._HEADERS) <= jv._MAX_CACHED_HEADERS


def test_the_parsed_key_object_is_reused(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> None:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 3600))
    first = store.key_for(KEY_URL, "k1", now=NOW)
    assert store.key_for(KEY_URL, "k1", now=NOW + 10) is first  # parsed once per fetch, not per token
    assert len(getter.calls) == 1


# -- the state key secret -----------------------------------------------------------------------------------


def test_state_key_secret_round_trip() -> None:
    secret = new_key_secret()
    assert set(secret) == {"key"}
    key = decode_key(secret)
    assert len(key) == 32 and decode_key(new_key_secret()) != key
    assert verify(sign("conv-1", "oidc", NOW + 60, key), "oidc", key, now=NOW) == "conv-1"


@pytest.mark.parametrize("secret", [{}, {"key": 7}, {"key": "c2hvcnQ"}, {"key": "not base64!"}, {"value": "x" * 60}])
def test_unusable_state_key_secrets_are_refused_without_showing_them(secret: dict[str, object]) -> None:
    with pytest.raises(ValueError) as info:
        decode_key(secret)
    assert "c2hvcnQ" not in str(info.value) and "not base64!" not in str(info.value)
