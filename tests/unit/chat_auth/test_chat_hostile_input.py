"""Hostile shapes before authentication: deeply nested JSON and path ids that cannot name anything.

``json.loads`` raises RecursionError (not a ValueError) on JSON nested past the interpreter's
recursion limit; before ``safe_json`` it escaped every handler's ``except ValueError`` and API
Gateway answered 502. Each case here must get the interface's JSON error instead (400 for a body,
401 ``invalid_token`` for a token), with nothing published and nothing recorded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchboard import chat_start
from switchboard.chat_auth import ChatAuthError, KeyStore, parse_lwicontexts, validate_jwt
from switchboard.chat_start import ChatDeps
from switchboard.settings import Widget

from ._chat_fakes import callback_request, chat_request, error_of, make_deps, oauth_setting, published, settings_lookups
from ._support import KEY_URL, NOW, FakeGetter, KeyPair, b64url, claims, jwt_setting, key_array, rs256, sign

PORTAL = jwt_setting()
SIGNED_IN_ONLY = Widget(id="web", workstream="chat", auth_setting="portal")
OPEN = Widget(id="web-open", workstream="chat", auth_setting="portal", allow_anonymous=True)
DEEP = 5000  # far past the recursion limit (1000), small enough for a token under 16 KiB


@pytest.fixture
def deps(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> ChatDeps:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 3600))
    return make_deps(store, widgets=(SIGNED_IN_ONLY, OPEN), auth_settings=(PORTAL, oauth_setting()))


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def raw_token(header: bytes, payload: bytes, pair: KeyPair) -> str:
    """A token over bytes exactly as given (PyJWT's encoder cannot serialise what these tests need)."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    return f"{signing_input}.{b64url(rs256(pair)(signing_input.encode()))}"


def start(deps: ChatDeps, widget: str, **request: Any) -> Any:
    return chat_start.handle(chat_request(widget, **request), deps)


# -- item 2: nested JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        nested(30_000),  # the body: 60,000 bytes, under the 64 KiB cap
        b'{"text": "hi", "customer": {"name": ' + nested(30_000) + b"}}",
        b'{"text": "hi", "x": ' + nested(40) + b"}",  # parses, but deeper than anything we would store
    ],
    ids=["array-30000", "customer-30000", "depth-40"],
)
def test_a_deeply_nested_chat_body_is_400_json_and_enqueues_nothing(deps: ChatDeps, raw: bytes) -> None:
    answer = start(deps, "web-open", raw=raw)
    assert error_of(answer, 400) == "bad_request"
    assert "nested" in json.loads(answer.body)["message"]
    assert published(deps) == []


def test_a_jwt_whose_header_is_nested_5000_levels_is_invalid_token(deps: ChatDeps, pair_a: KeyPair, getter: FakeGetter) -> None:
    header = b'{"alg": "RS256", "kid": "k1", "x": ' + nested(DEEP) + b"}"
    token = raw_token(header, json.dumps(claims()).encode(), pair_a)
    assert len(token) < 16 * 1024
    answer = start(deps, "web-open", token=token)  # a widget that welcomes anonymous visitors still refuses it
    assert error_of(answer, 401) == "invalid_token"
    assert token not in answer.body
    assert published(deps) == [] and getter.calls == []  # refused before any key was fetched


def test_a_jwt_whose_header_is_only_a_nested_array_is_invalid_token(store: KeyStore, pair_a: KeyPair) -> None:
    token = raw_token(nested(DEEP), json.dumps(claims()).encode(), pair_a)
    with pytest.raises(ChatAuthError) as refused:
        validate_jwt(token, PORTAL, store, now=NOW)
    assert refused.value.code == "invalid_token"


def test_a_signed_payload_nested_5000_levels_is_invalid_token(deps: ChatDeps, pair_a: KeyPair) -> None:
    body = json.dumps(claims())[:-1].encode() + b', "x": ' + nested(DEEP) + b"}"
    token = raw_token(b'{"alg": "RS256", "typ": "JWT", "kid": "k1"}', body, pair_a)
    answer = start(deps, "web", token=token)
    assert error_of(answer, 401) == "invalid_token"
    assert published(deps) == []


@pytest.mark.parametrize(
    "lwicontexts",
    [
        '{"a": ' + "[" * DEEP + "]" * DEEP + "}",  # past the recursion limit
        "[" * DEEP + "]" * DEEP,
        '{"a": ' + "[" * 30 + "]" * 30 + "}",  # parses, and is not an object of primitives
        '{"a": NaN}',  # not JSON, and no rule can compare it
        '"just a string"',
    ],
    ids=["object-5000", "array-5000", "depth-30", "nan", "string"],
)
def test_a_nested_or_non_object_lwicontexts_is_invalid_token(deps: ChatDeps, pair_a: KeyPair, lwicontexts: str) -> None:
    token = sign(pair_a, claims(lwicontexts=lwicontexts), kid="k1")
    answer = start(deps, "web", token=token)
    assert error_of(answer, 401) == "invalid_token"
    assert "lwicontexts" in json.loads(answer.body)["message"]
    assert published(deps) == []


def test_parse_lwicontexts_refuses_deep_nesting_as_invalid_token() -> None:
    with pytest.raises(ChatAuthError) as refused:
        parse_lwicontexts('{"a": ' + "[" * DEEP + "]" * DEEP + "}")
    assert refused.value.code == "invalid_token"


# -- item 7: ids in the path that cannot name anything ------------------------------------------------------


@pytest.mark.parametrize(
    "widget_id",
    ["w" * 65, "w" * 5000, "../web", "web open", "-web", ".web", "web\n", "wéb"],
    ids=["65", "5000", "dotdot", "space", "dash-first", "dot-first", "newline", "non-ascii"],
)
def test_a_widget_id_outside_the_id_pattern_is_404_before_any_look_up(
    deps: ChatDeps, pair_a: KeyPair, widget_id: str, logs: pytest.CaptureFixture[str]
) -> None:
    answer = start(deps, widget_id, token=sign(pair_a, kid="k1"))
    assert error_of(answer, 404) == "not_found"
    assert settings_lookups(deps) == []
    assert published(deps) == []
    message = json.loads(answer.body)["message"]
    logged = logs.readouterr().out
    assert "w" * 65 not in message and "w" * 65 not in logged  # never echoed whole
    assert len(logged.strip().splitlines()) <= 1 and len(logged) < 1024


def test_a_valid_widget_id_is_still_looked_up(deps: ChatDeps) -> None:
    assert error_of(start(deps, "w" * 64), 404) == "not_found"
    assert settings_lookups(deps) == ["w" * 64]


@pytest.mark.parametrize("setting_id", ["s" * 65, "s" * 5000, "apple-oidc/../x", "apple oidc"])
def test_an_auth_setting_id_outside_the_id_pattern_is_404_before_any_look_up(
    deps: ChatDeps, setting_id: str, logs: pytest.CaptureFixture[str]
) -> None:
    request = callback_request(setting_id, {"code": "c", "state": "s"}, accept="application/json")
    answer = chat_start.handle(request, deps)
    assert error_of(answer, 404) == "not_found"
    assert settings_lookups(deps) == []
    logged = logs.readouterr().out
    assert "s" * 65 not in answer.body and "s" * 65 not in logged
    html = chat_start.handle(callback_request(setting_id, {"code": "c", "state": "s"}), deps)
    assert html.status == 404 and "s" * 65 not in html.body
