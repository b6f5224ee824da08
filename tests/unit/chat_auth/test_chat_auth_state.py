"""The callback ``state``: unforgeable, bound to one auth setting, expiring."""

from __future__ import annotations

import re

import pytest

from switchboard.chat_auth import ChatAuthError, sign_state, verify_state

from ._support import NOW

KEY = b"k" * 32
CONVERSATION = "conv-01J2Z3/ü?&=#"  # characters a query string would mangle if carried raw


def refused(state: str | None, setting_id: str = "apple-oidc", key: bytes = KEY, now: float = NOW) -> str:
    with pytest.raises(ChatAuthError) as info:
        verify_state(state, setting_id, key, now=now)
    assert info.value.http_status == 401
    return info.value.code


def test_round_trip_and_url_safe() -> None:
    state = sign_state(CONVERSATION, "apple-oidc", NOW + 600, KEY)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", state)
    assert verify_state(state, "apple-oidc", KEY, now=NOW) == CONVERSATION


def test_expired_state() -> None:
    state = sign_state(CONVERSATION, "apple-oidc", NOW + 600, KEY)
    assert verify_state(state, "apple-oidc", KEY, now=NOW + 599) == CONVERSATION
    assert refused(state, now=NOW + 600) == "token_expired"


def test_state_for_another_auth_setting() -> None:
    assert refused(sign_state(CONVERSATION, "portal-oauth", NOW + 600, KEY)) == "invalid_token"


def test_state_signed_with_another_key() -> None:
    assert refused(sign_state(CONVERSATION, "apple-oidc", NOW + 600, b"o" * 32)) == "invalid_token"


def test_tampered_conversation_and_expiry() -> None:
    version, conv, exp, mac = sign_state(CONVERSATION, "apple-oidc", NOW + 600, KEY).split(".")
    other = sign_state("someone-else", "apple-oidc", NOW + 600, KEY).split(".")[1]
    assert refused(f"{version}.{other}.{exp}.{mac}") == "invalid_token"
    assert refused(f"{version}.{conv}.{int(exp) + 86400}.{mac}") == "invalid_token"
    assert refused(f"{version}.{conv}.0{exp}.{mac}") == "invalid_token"  # same number, other spelling
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    assert refused(f"{version}.{conv}.{exp}.{flipped}") == "invalid_token"
    assert refused(f"v2.{conv}.{exp}.{mac}") == "invalid_token"


@pytest.mark.parametrize(
    "state", ["garbage", "v1.a.b.c", "v1...", "v1.YQ.123", "v1.YQ.-5.AAAA", "v1.YQ.123.AA+A", "v1.!!.1.AA", "x" * 2000]
)
def test_malformed_state(state: str) -> None:
    assert refused(state) == "invalid_token"


@pytest.mark.parametrize("state", [None, "", " "])
def test_missing_state(state: str | None) -> None:
    assert refused(state) == "missing_token"


def test_bare_conversation_id_is_not_a_state() -> None:
    assert refused(CONVERSATION) == "invalid_token"


def test_weak_keys_and_empty_ids_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        sign_state(CONVERSATION, "apple-oidc", NOW, b"short")
    with pytest.raises(ValueError):
        verify_state("v1.a.1.b", "apple-oidc", b"short", now=NOW)
    with pytest.raises(ValueError):
        sign_state("", "apple-oidc", NOW, KEY)
    with pytest.raises(ValueError):
        sign_state("c" * 2000, "apple-oidc", NOW, KEY)
