"""A sign-in link signs in once: its first use is recorded before the code is spent, a second is 401.

Before this, the same ``state`` could be replayed for as long as it lived (24 hours) with any other
code, and each replay re-bound the conversation's identity to whoever signed in last.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import responses

from switchboard import chat_start
from switchboard.chat_auth import KeyStore, sign_state, verify_state
from switchboard.chat_start import ChatDeps
from switchboard.secret_names import secret_name

from ._chat_fakes import (
    PREFIX,
    STATE_KEY,
    TOKEN_URL,
    USERINFO_URL,
    FakeUsedLinks,
    _b64,
    callback_request,
    error_of,
    line_conversation,
    make_deps,
    oauth_setting,
    published,
    used_links,
)
from ._support import NOW

SETTING = oauth_setting("apple-oidc")
OPEN = line_conversation("c-open")
CLOSED = line_conversation("c-closed").with_(closed=True)
EXPIRES = int(NOW) + 600


@pytest.fixture
def deps(store: KeyStore) -> ChatDeps:
    return make_deps(store, auth_settings=(SETTING,), conversations=(OPEN, CLOSED))


def state_for(conversation_id: str = "c-open", *, expires_at: int = EXPIRES) -> str:
    return sign_state(conversation_id, "apple-oidc", expires_at, STATE_KEY)


def provider(sub: str, *, token_status: int = 200) -> None:
    body = {"access_token": f"access-{sub}", "token_type": "Bearer"} if token_status == 200 else {"error": "invalid_grant"}
    responses.add(responses.POST, TOKEN_URL, status=token_status, json=body)
    responses.add(responses.GET, USERINFO_URL, json={"sub": sub})


def call(deps: ChatDeps, query: dict[str, str], *, accept: str = "application/json") -> Any:
    return chat_start.handle(callback_request("apple-oidc", query, accept=accept), deps)


def token_calls() -> list[str]:
    return [str(c.request.body) for c in responses.calls if c.request.url == TOKEN_URL]


@responses.activate
def test_the_same_state_with_a_second_code_is_401_and_the_first_identity_stays(deps: ChatDeps) -> None:
    provider("first-user")
    provider("second-user")
    state = state_for()
    assert call(deps, {"code": "code-first", "state": state}).status == 200

    replay = call(deps, {"code": "code-second", "state": state})
    assert error_of(replay, 401) == "invalid_token"
    assert "already used" in json.loads(replay.body)["message"]
    assert [e.identity.contact_id for e in published(deps)] == ["first-user"]  # nothing re-binds the conversation
    assert len(token_calls()) == 1 and "code-second" not in token_calls()[0]  # the second code is never spent


@responses.activate
def test_a_replay_is_refused_however_the_state_is_spelled(deps: ChatDeps) -> None:
    """base64 decoders ignore a final character's unused bits, so one link has several spellings."""
    provider("first-user")
    provider("second-user")
    state = state_for()
    assert call(deps, {"code": "code-first", "state": state}).status == 200
    version, conversation, expires, mac = state.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = mac[:-1] + alphabet[alphabet.index(mac[-1]) ^ 1]  # same bytes, other unused bits
    for variant in (f"{version}.{conversation}.{expires}.{respelled}", f" {state} "):
        assert error_of(call(deps, {"code": "code-second", "state": variant}), 401) == "invalid_token"
    assert [e.identity.contact_id for e in published(deps)] == ["first-user"]
    assert len(token_calls()) == 1


def test_a_non_canonical_spelling_is_not_a_valid_state() -> None:
    state = state_for()
    version, conversation, expires, mac = state.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = mac[:-1] + alphabet[alphabet.index(mac[-1]) ^ 1]
    assert verify_state(state, "apple-oidc", STATE_KEY, now=NOW) == "c-open"
    with pytest.raises(Exception, match="not valid"):
        verify_state(f"{version}.{conversation}.{expires}.{respelled}", "apple-oidc", STATE_KEY, now=NOW)


@responses.activate
def test_the_first_use_is_recorded_with_the_links_expiry_and_no_state(deps: ChatDeps) -> None:
    from switchboard.chat_auth.state import check as check_state

    provider("first-user")
    state = state_for()
    assert call(deps, {"code": "code-first", "state": state}).status == 200
    ((link_id, expires_at),) = used_links(deps).items()
    assert expires_at == EXPIRES  # the record's TTL: the table forgets it once the link could not work anyway
    assert re.fullmatch(r"[0-9a-f]{64}", link_id)
    assert link_id == check_state(state, "apple-oidc", STATE_KEY, now=NOW).link_id
    assert state not in link_id and hashlib.sha256(state.encode()).hexdigest() != state


@responses.activate
def test_the_use_is_recorded_before_the_code_is_spent(deps: ChatDeps) -> None:
    links = deps.links
    assert isinstance(links, FakeUsedLinks)
    seen: list[int] = []

    def token_endpoint(request: Any) -> tuple[int, dict[str, str], str]:
        seen.append(len(links.used))
        return 200, {}, json.dumps({"access_token": "a", "token_type": "Bearer"})

    responses.add_callback(responses.POST, TOKEN_URL, callback=token_endpoint)
    responses.add(responses.GET, USERINFO_URL, json={"sub": "first-user"})
    assert call(deps, {"code": "code-first", "state": state_for()}).status == 200
    assert seen == [1]


@responses.activate
def test_an_exchange_failure_spends_the_link_and_says_to_ask_for_a_new_one(deps: ChatDeps) -> None:
    provider("nobody", token_status=400)  # every exchange in this test is refused
    state = state_for()
    failed = call(deps, {"code": "code-old", "state": state})
    assert error_of(failed, 401) == "code_exchange_failed"
    assert "ask for a new" in json.loads(failed.body)["message"]
    page = call(deps, {"code": "code-old", "state": state_for(expires_at=EXPIRES + 1)}, accept="text/html")
    assert page.status == 401 and "ask for a new" in page.body

    again = call(deps, {"code": "code-2", "state": state})
    assert error_of(again, 401) == "invalid_token"
    assert len(token_calls()) == 2 and published(deps) == []


@responses.activate
@pytest.mark.parametrize(
    "query",
    [
        {"code": "c", "state": "v1.forged.1.AAAA"},
        {"code": "c", "state": "EXPIRED"},
        {"code": "c", "state": "CLOSED"},
        {"error": "access_denied", "state": "OPEN"},  # the customer cancelled: they may try the same link again
        {"state": "OPEN"},
    ],
    ids=["forged", "expired", "closed", "cancelled", "no-code"],
)
def test_a_refused_link_records_nothing(deps: ChatDeps, query: dict[str, str]) -> None:
    provider("someone")
    which = {"EXPIRED": state_for(expires_at=int(NOW) - 1), "CLOSED": state_for("c-closed"), "OPEN": state_for()}
    query = {k: which.get(v, v) for k, v in query.items()}
    assert call(deps, query).status in (400, 401)
    assert used_links(deps) == {}
    assert token_calls() == [] and published(deps) == []


def test_a_missing_client_secret_records_nothing(store: KeyStore) -> None:
    secrets = {secret_name(PREFIX, "stack", "state-key"): {"key": _b64(STATE_KEY)}}
    deps = make_deps(store, auth_settings=(SETTING,), conversations=(OPEN,), secrets=secrets)
    answer = call(deps, {"code": "c", "state": state_for()})
    assert (answer.status, json.loads(answer.body)["error"]) == (500, "configuration_error")
    assert used_links(deps) == {}  # a configuration fault must not cost the customer their link


@responses.activate
def test_the_ledger_unavailable_is_503_and_spends_no_code(deps: ChatDeps) -> None:
    provider("first-user")
    links = deps.links
    assert isinstance(links, FakeUsedLinks)
    links.refuse = True
    answer = call(deps, {"code": "code-first", "state": state_for()})
    assert error_of(answer, 503) == "unavailable"
    assert token_calls() == [] and published(deps) == []
    links.refuse = False
    assert call(deps, {"code": "code-first", "state": state_for()}).status == 200  # nothing was spent: it still works


@responses.activate
def test_the_page_names_the_conversation_signed_in_to(store: KeyStore) -> None:
    hostile = line_conversation('c-<img src=x onerror="alert(1)">&')
    deps = make_deps(store, auth_settings=(SETTING,), conversations=(hostile,))
    provider("first-user")
    page = call(deps, {"code": "code-first", "state": state_for(hostile.conversation_id)}, accept="text/html")
    assert page.status == 200, page.body
    assert "LINE" in page.body
    started = "2025-06-15 15:05 UTC"  # created_at of line_conversation: NOW - 60 s
    assert started in page.body
    assert "c-&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page.body
    assert "<img" not in page.body and 'onerror="' not in page.body


@responses.activate
def test_the_json_answer_names_the_conversation_too(deps: ChatDeps) -> None:
    provider("first-user")
    answer = call(deps, {"code": "code-first", "state": state_for()})
    assert json.loads(answer.body) == {
        "signed_in": True,
        "conversation_id": "c-open",
        "channel": "line",
        "started_at": OPEN.created_at // 1000,
    }


@responses.activate
def test_the_queue_refusing_after_the_link_was_spent_says_to_ask_for_a_new_one(deps: ChatDeps) -> None:
    from ._chat_fakes import RecordingPublisher

    provider("first-user")
    publisher = deps.publisher
    assert isinstance(publisher, RecordingPublisher)
    publisher.refuse = True
    answer = call(deps, {"code": "code-first", "state": state_for()})
    assert error_of(answer, 503) == "unavailable"
    assert "ask for a new one" in json.loads(answer.body)["message"]  # not "try again": this link is spent
    assert len(used_links(deps)) == 1
