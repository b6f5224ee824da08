"""No refusal ever repeats a token, key, client secret, access token or authorization code."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import pytest
import responses

from switchboard.chat_auth import ChatAuthError, KeyStore, exchange_code, sign_state, validate_jwt, verify_state
from switchboard.settings import AuthSetting

from ._support import KEY_URL, NOW, FakeGetter, KeyPair, claims, jwt_setting, key_array, sign

SECRET = "client-secret-VALUE-0123456789"
CODE = "authorization-code-VALUE-0123456789"
ACCESS = "access-token-VALUE-0123456789"
STATE_KEY = b"state-key-VALUE-0123456789-abcdef"


def _oauth_setting() -> AuthSetting:
    return AuthSetting(
        id="idp",
        type="oauth2",
        options={
            "token_url": "https://idp.example.com/token",
            "userinfo_url": "https://idp.example.com/userinfo",
            "client_id": "cid",
            "token_endpoint_auth": "client_secret_basic",
        },
    )


def _collect(attempts: list[Callable[[], object]]) -> list[ChatAuthError]:
    errors = []
    for attempt in attempts:
        with pytest.raises(ChatAuthError) as info:
            attempt()
        errors.append(info.value)
    return errors


@responses.activate
def test_no_secret_in_any_error_message(getter: FakeGetter, store: KeyStore, pair_a: KeyPair, pair_b: KeyPair) -> None:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 3600))
    setting = jwt_setting()
    tokens = [
        sign(pair_a, claims(exp=NOW - 3600), kid="k1"),
        sign(pair_a, claims(nbf=NOW + 3600), kid="k1"),
        sign(pair_b, kid="k1"),
        sign(pair_a, kid="nope"),
        sign(pair_a, claims(iss="evil"), kid="k1"),
        sign(pair_a, claims(sub=None), kid="k1"),
        sign(pair_a, claims(lwicontexts=json.dumps({"x": {"secret": "nested"}})), kid="k1"),
        sign(pair_a, claims(lwicontexts="{broken"), kid="k1"),
        "garbage-token-VALUE-0123456789",
    ]
    attempts: list[Callable[[], object]] = [functools.partial(validate_jwt, t, setting, store, now=NOW) for t in tokens]

    # The provider echoes everything it was sent, as some do in error descriptions.
    echo = json.dumps({"error": "invalid_grant", "error_description": f"{CODE} {SECRET} {ACCESS}"})
    responses.add(responses.POST, "https://idp.example.com/token", status=400, body=echo)
    responses.add(responses.POST, "https://idp.example.com/token", json={"access_token": ACCESS, "token_type": "bearer"})
    responses.add(responses.GET, "https://idp.example.com/userinfo", status=401, body=echo)
    attempts += [lambda: exchange_code(CODE, _oauth_setting(), SECRET, now=NOW)] * 2

    state = sign_state("conv-1", "idp", NOW + 60, STATE_KEY)
    attempts += [
        lambda: verify_state(state, "other", STATE_KEY, now=NOW),
        lambda: verify_state(state, "idp", STATE_KEY, now=NOW + 61),
        lambda: verify_state(state + "x", "idp", STATE_KEY, now=NOW),
    ]

    errors = _collect(attempts)
    assert {e.code for e in errors} >= {
        "token_expired",
        "token_not_yet_valid",
        "invalid_signature",
        "unknown_key",
        "invalid_issuer",
        "invalid_token",
        "code_exchange_failed",
    }
    pems = [p.public_pem.decode() for p in (pair_a, pair_b)]
    forbidden = [*tokens, SECRET, CODE, ACCESS, state, STATE_KEY.decode(), "nested"]
    for error in errors:
        shown = f"{error} {error.message} {error.to_body()} {error!r}"
        for value in forbidden:
            assert value not in shown, (error.code, error.message)
        for pem in pems:
            assert pem.splitlines()[1] not in shown
        for token in tokens:  # not even one segment of a token
            for segment in token.split("."):
                if len(segment) > 8:
                    assert segment not in shown
        assert (error.__cause__ is None and error.__suppress_context__) or error.__context__ is None
