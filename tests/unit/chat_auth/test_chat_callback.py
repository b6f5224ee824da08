"""GET /auth/{auth_setting_id}/callback through the token_validate core: sign in the customer of any conversation."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from switchboard import chat_start
from switchboard.chat_auth import KeyStore, sign_state
from switchboard.chat_start import ChatDeps
from switchboard.secret_names import secret_name

from ._chat_fakes import (
    CLIENT_SECRET,
    PREFIX,
    STATE_KEY,
    TOKEN_URL,
    USERINFO_URL,
    callback_request,
    error_of,
    line_conversation,
    make_deps,
    oauth_setting,
    published,
)
from ._support import NOW, jwt_setting

SETTING = oauth_setting("apple-oidc")
OTHER = oauth_setting("other-oidc")
OPEN = line_conversation("c-open")
OPEN_2 = line_conversation("c-open-2")  # someone else's open conversation
QUIET = line_conversation("c-quiet", last_message_at=int(NOW * 1000) - 2 * 24 * 3600 * 1000)  # past close_after_minutes
CLOSED = line_conversation("c-closed").with_(closed=True)
MEMBER = {"sub": "member-7", "msdyn_isvip": "true", "iss": "https://idp.example.com"}


@pytest.fixture
def deps(store: KeyStore) -> ChatDeps:
    return make_deps(store, auth_settings=(SETTING, OTHER, jwt_setting()), conversations=(OPEN, OPEN_2, QUIET, CLOSED))


def state_for(conversation_id: str, setting_id: str = "apple-oidc", *, expires_at: float = NOW + 600) -> str:
    return sign_state(conversation_id, setting_id, int(expires_at), STATE_KEY)


def provider(*, token_status: int = 200) -> None:
    responses.add(
        responses.POST,
        TOKEN_URL,
        status=token_status,
        json={"access_token": "access-VALUE-1", "token_type": "Bearer"} if token_status == 200 else {"error": "invalid_grant"},
    )
    responses.add(responses.GET, USERINFO_URL, json=MEMBER)


def call(deps: ChatDeps, query: dict[str, str], *, setting_id: str = "apple-oidc", accept: str = "text/html") -> Any:
    return chat_start.handle(callback_request(setting_id, query, accept=accept), deps)


@responses.activate
def test_callback_signs_in_the_customer_of_a_line_conversation(deps: ChatDeps) -> None:
    provider()
    answer = call(deps, {"code": "code-1", "state": state_for("c-open")})
    assert (answer.status, answer.content_type) == (200, "text/html; charset=utf-8")
    assert "You are signed in" in answer.body

    (envelope,) = published(deps)
    assert envelope.conversation_id == "c-open"
    assert (envelope.channel, envelope.account_id, envelope.customer) == ("line", "line-tokyo", OPEN.customer)
    assert envelope.conversation_key == OPEN.key  # the customer's own FIFO group: in order with their messages
    assert (envelope.kind, envelope.text) == ("event", None)
    assert envelope.data == {"event": "signed_in", "auth_setting": "apple-oidc"}
    identity = envelope.identity
    assert (identity.authenticated, identity.contact_id, identity.expires_at) == (True, "member-7", int(NOW) + 1800)
    assert identity.context == {"msdyn_isvip": "true"}  # the registered claims say nothing about the customer
    assert envelope.id.startswith("line:line-tokyo:signin:") and len(envelope.id.rsplit(":", 1)[1]) == 32
    assert (envelope.sent_at, envelope.correlation_id) == (int(NOW * 1000), "req-cb-1")
    for value in ("code-1", CLIENT_SECRET, "access-VALUE-1"):
        assert value not in envelope.to_json() and value not in answer.body

    token_form = str(responses.calls[0].request.body)
    assert "redirect_uri=https%3A%2F%2Fapi.example.com%2Fauth%2Fapple-oidc%2Fcallback" in token_form


@responses.activate
def test_a_reload_of_the_callback_signs_in_once(deps: ChatDeps) -> None:
    provider()
    provider()
    state = state_for("c-open")
    assert call(deps, {"code": "code-1", "state": state}).status == 200
    reload = call(deps, {"code": "code-1", "state": state}, accept="application/json")
    assert error_of(reload, 401) == "invalid_token"  # a link signs in once (test_sign_in_links has the rest)
    (envelope,) = published(deps)
    assert envelope.id.startswith("line:line-tokyo:signin:")
    assert len(responses.calls) == 2  # one exchange: token and userinfo, once


@responses.activate
def test_a_script_asking_for_json_gets_json(deps: ChatDeps) -> None:
    provider()
    answer = call(deps, {"code": "code-1", "state": state_for("c-open")}, accept="application/json")
    assert (answer.status, json.loads(answer.body)) == (
        200,
        {"signed_in": True, "conversation_id": "c-open", "channel": "line", "started_at": OPEN.created_at // 1000},
    )
    refused = call(deps, {"code": "code-1", "state": "v1.forged"}, accept="application/json")
    assert error_of(refused, 401) == "invalid_token"


# -- refusals: nothing published, and no code spent when the link itself is bad ------------------------------


@responses.activate
@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"state": "x"}, 400, "bad_request"),
        ({"code": "c"}, 400, "bad_request"),
        ({}, 400, "bad_request"),
        ({"code": "c", "state": "v1.forged.1.AAAA"}, 401, "invalid_token"),
        ({"code": "c", "state": "garbage"}, 401, "invalid_token"),
        ({"code": "c", "state": "STATE:other-oidc"}, 401, "invalid_token"),  # minted for another setting's callback
        ({"code": "c", "state": "STATE:moved"}, 401, "invalid_token"),
        ({"code": "c", "state": "STATE:extended"}, 401, "invalid_token"),
        ({"code": "c", "state": "STATE:expired"}, 401, "token_expired"),
        ({"code": "c", "state": "STATE:c-missing"}, 401, "invalid_token"),
        ({"code": "c", "state": "STATE:c-quiet"}, 401, "invalid_token"),
        ({"code": "c", "state": "STATE:c-closed"}, 401, "invalid_token"),
        ({"error": "access_denied", "state": "STATE:c-open"}, 401, "code_exchange_failed"),
    ],
)
def test_refused_links(deps: ChatDeps, query: dict[str, str], status: int, code: str) -> None:
    provider()
    state = query.get("state", "")
    if state.startswith("STATE:"):
        which = state[6:]
        if which == "other-oidc":
            query["state"] = state_for("c-open", "other-oidc")
        elif which == "moved":  # a genuine MAC pasted onto another conversation's id
            version, _, expires, mac = state_for("c-open").split(".")
            other = state_for("c-open-2").split(".")[1]
            query["state"] = f"{version}.{other}.{expires}.{mac}"
        elif which == "extended":  # a genuine state whose expiry was pushed out
            version, conversation, expires, mac = state_for("c-open").split(".")
            query["state"] = f"{version}.{conversation}.{int(expires) + 86400}.{mac}"
        elif which == "expired":
            query["state"] = state_for("c-open", expires_at=NOW - 1)
        else:
            query["state"] = state_for(which)
    answer = call(deps, query, accept="application/json")
    assert error_of(answer, status) == code
    assert published(deps) == []
    assert len(responses.calls) == 0


def test_the_refusal_page_is_html_for_a_browser(deps: ChatDeps) -> None:
    answer = call(deps, {"code": "c", "state": state_for("c-open", expires_at=NOW - 1)})
    assert (answer.status, answer.content_type) == (401, "text/html; charset=utf-8")
    assert "expired" in answer.body and '<code id="error">token_expired</code>' in answer.body


def test_provider_error_text_cannot_inject_markup(deps: ChatDeps) -> None:
    answer = call(deps, {"error": "<script>alert(1)</script>", "state": "s"})
    assert answer.status == 401
    assert "<script>" not in answer.body and "alert(1)" not in answer.body


@responses.activate
def test_exchange_refused_is_401(deps: ChatDeps) -> None:
    provider(token_status=400)
    assert error_of(call(deps, {"code": "old", "state": state_for("c-open")}, accept="application/json"), 401) == (
        "code_exchange_failed"
    )
    assert published(deps) == []


@pytest.mark.parametrize("setting_id", ["nope", "portal"])  # unknown, and a jwt setting (no code to exchange)
def test_unknown_or_non_oauth_setting_is_404(deps: ChatDeps, setting_id: str) -> None:
    answer = call(deps, {"code": "c", "state": state_for("c-open", setting_id)}, setting_id=setting_id, accept="application/json")
    assert error_of(answer, 404) == "not_found"


def test_missing_state_key_is_a_configuration_error(store: KeyStore) -> None:
    secrets = {secret_name(PREFIX, "auth_setting", "apple-oidc"): {"client_secret": CLIENT_SECRET}}
    deps = make_deps(store, auth_settings=(SETTING,), conversations=(OPEN,), secrets=secrets)
    answer = call(deps, {"code": "c", "state": state_for("c-open")}, accept="application/json")
    assert (answer.status, json.loads(answer.body)["error"]) == (500, "configuration_error")
    html = call(deps, {"code": "c", "state": state_for("c-open")})
    assert html.status == 500 and "not fully set up" in html.body


def test_store_unavailable_is_503(deps: ChatDeps) -> None:
    from switchboard.errors import StoreUnavailable

    class Down:
        def get(self, conversation_id: str) -> None:
            raise StoreUnavailable("conversations table unavailable: EndpointConnectionError")

    deps.conversations = Down()
    answer = call(deps, {"code": "c", "state": state_for("c-open")}, accept="application/json")
    assert error_of(answer, 503) == "unavailable"
