"""POST /chat/{widget_id}/conversations through the token_validate core, with in-memory ports.

Every refusal is checked for its status, its interface code and that nothing was published; the
attack matrix of the issue is run here once more at the endpoint, on a widget that also welcomes
anonymous visitors, so a bad token can never slip in as an anonymous chat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
import responses

from switchboard import chat_start
from switchboard.chat_auth import KeyStore
from switchboard.chat_start import ChatDeps
from switchboard.settings import AuthSetting, Widget

from ._chat_fakes import (
    CLIENT_SECRET,
    TOKEN_URL,
    USERINFO_URL,
    chat_request,
    error_of,
    make_deps,
    oauth_setting,
    published,
)
from ._support import CONTACT, KEY_URL, NOW, FakeGetter, KeyPair, b64url, claims, forge, jwt_setting, key_array, sign

PORTAL = jwt_setting()
SIGNED_IN_ONLY = Widget(id="web", workstream="chat", auth_setting="portal")
OPEN = Widget(id="web-open", workstream="chat", auth_setting="portal", allow_anonymous=True)
NO_AUTH = Widget(id="web-plain", workstream="chat")
OAUTH = Widget(id="web-oauth", workstream="chat", auth_setting="apple-oidc")
OFF = Widget(id="web-off", workstream="chat", auth_setting="portal", enabled=False)
WIDGETS = (SIGNED_IN_ONLY, OPEN, NO_AUTH, OAUTH, OFF)
ACCESS = "access-token-VALUE-77aa"
CONTEXT = {"msdyn_cartvalue": "10000", "msdyn_isvip": "false", "portalcontactid": CONTACT}


@pytest.fixture
def deps(getter: FakeGetter, store: KeyStore, pair_a: KeyPair) -> ChatDeps:
    getter.bodies[KEY_URL] = key_array(("k1", pair_a, NOW + 3600), ("old", pair_a, NOW - 1))
    return make_deps(store, widgets=WIDGETS, auth_settings=(PORTAL, oauth_setting()))


def start(deps: ChatDeps, widget: str, **request: Any) -> Any:
    return chat_start.handle(chat_request(widget, **request), deps)


# -- accepted -------------------------------------------------------------------------------------------


def test_signed_in_visitor_gets_201_and_one_envelope(deps: ChatDeps, pair_a: KeyPair) -> None:
    token = sign(pair_a, kid="k1")
    answer = start(deps, "web", token=token, body={"text": "  Where is my order?  "})
    assert (answer.status, answer.content_type) == (201, "application/json")
    body = json.loads(answer.body)
    assert body == {
        "conversation_id": body["conversation_id"],
        "authenticated": True,
        "contact_id": CONTACT,
        "context": CONTEXT,
        "expires_at": NOW + 3600,  # the token's exp: the portal vouches for the visitor until then
        "session_token": body["session_token"],  # its checks: tests/unit/chat_session/test_chat_session_api.py
        "session_expires_at": NOW + 60 * 60,  # the widget's session_minutes (default 60)
    }
    assert body["session_token"].startswith("sbs_") and token not in body["session_token"]
    (envelope,) = published(deps)
    assert envelope.conversation_id == body["conversation_id"]
    assert envelope.id == f"chat:web:{body['conversation_id']}:start"
    assert (envelope.channel, envelope.account_id, envelope.kind, envelope.text) == ("chat", "web", "text", "Where is my order?")
    assert envelope.customer.id.startswith("visitor-") and envelope.customer.name is None
    assert envelope.identity.authenticated and envelope.identity.contact_id == CONTACT
    assert (envelope.identity.context, envelope.identity.expires_at) == (CONTEXT, NOW + 3600)
    assert (envelope.sent_at, envelope.received_at, envelope.correlation_id) == (int(NOW * 1000), int(NOW * 1000), "req-chat-1")
    assert envelope.data == {"event": "chat_started", "auth": "jwt"}
    assert token not in envelope.to_json()


def test_conversation_ids_and_visitor_ids_are_fresh(deps: ChatDeps, pair_a: KeyPair) -> None:
    token = sign(pair_a, kid="k1")
    first, second = (json.loads(start(deps, "web", token=token).body) for _ in range(2))
    assert first["conversation_id"] != second["conversation_id"]
    a, b = published(deps)
    assert a.customer.id != b.customer.id
    assert (a.kind, a.text) == ("event", None)  # no first message: the chat opened, nothing was written yet


def test_a_signed_in_visitor_cannot_set_a_name_by_survey(deps: ChatDeps, pair_a: KeyPair) -> None:
    start(deps, "web", token=sign(pair_a, kid="k1"), body={"customer": {"name": "Someone Else", "email": "x@example.com"}})
    (envelope,) = published(deps)
    assert (envelope.customer.name, envelope.customer.email) == (None, None)


@pytest.mark.parametrize("widget", ["web-open", "web-plain"])
def test_anonymous_visitor_where_allowed(deps: ChatDeps, widget: str) -> None:
    answer = start(deps, widget, body={"text": "hi", "customer": {"name": "Kim", "email": "kim@example.com"}})
    assert answer.status == 201
    body = json.loads(answer.body)
    assert {k: v for k, v in body.items() if k != "conversation_id"} == {
        "authenticated": False,
        "contact_id": None,
        "context": {},
        "expires_at": None,
        "session_token": body["session_token"],
        "session_expires_at": NOW + 60 * 60,
    }
    (envelope,) = published(deps)
    assert not envelope.identity.authenticated
    assert (envelope.customer.name, envelope.customer.email) == ("Kim", "kim@example.com")
    assert envelope.data["auth"] == "anonymous"


# -- the attack matrix at the endpoint ------------------------------------------------------------------


def _hs256_with_pem(pair: KeyPair) -> str:
    pem = pair.public_pem
    return forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), lambda m: hmac.new(pem, m, hashlib.sha256).digest())


def _tampered(pair: KeyPair) -> str:
    header, _, signature = sign(pair, kid="k1").split(".")
    vip = b64url(json.dumps(claims(lwicontexts=json.dumps({"msdyn_isvip": "true"}))).encode())
    return f"{header}.{vip}.{signature}"


ATTACKS: list[tuple[str, Callable[[KeyPair], str], str]] = [
    ("alg none", lambda p: forge({"alg": "none", "typ": "JWT"}, claims(), lambda _: b""), "invalid_token"),
    ("HS256 signed with the public key PEM", _hs256_with_pem, "invalid_token"),
    ("tampered payload", _tampered, "invalid_signature"),
    ("expired token", lambda p: sign(p, claims(exp=NOW - 3600, iat=NOW - 7200, nbf=None), kid="k1"), "token_expired"),
    ("nbf in the future", lambda p: sign(p, claims(nbf=NOW + 3600), kid="k1"), "token_not_yet_valid"),
    ("wrong iss", lambda p: sign(p, claims(iss="evil.example"), kid="k1"), "invalid_issuer"),
    ("iss missing", lambda p: sign(p, claims(iss=None), kid="k1"), "invalid_token"),
    ("iat missing", lambda p: sign(p, claims(iat=None), kid="k1"), "invalid_token"),
    ("exp missing", lambda p: sign(p, claims(exp=None), kid="k1"), "invalid_token"),
    ("sub missing", lambda p: sign(p, claims(sub=None), kid="k1"), "invalid_token"),
    ("unknown kid", lambda p: sign(p, kid="k9"), "unknown_key"),
    ("expired key", lambda p: sign(p, kid="old"), "unknown_key"),
    ("lwicontexts nested", lambda p: sign(p, claims(lwicontexts=json.dumps({"a": {"b": 1}})), kid="k1"), "invalid_token"),
    ("lwicontexts an object, not a string", lambda p: sign(p, claims(lwicontexts={"a": "1"}), kid="k1"), "invalid_token"),
    ("garbage token", lambda p: "garbage", "invalid_token"),
]


@pytest.mark.parametrize("widget", ["web", "web-open"])
@pytest.mark.parametrize(("case", "make", "code"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_matrix_is_401_with_its_code_and_enqueues_nothing(
    deps: ChatDeps, pair_a: KeyPair, widget: str, case: str, make: Callable[[KeyPair], str], code: str
) -> None:
    token = make(pair_a)
    answer = start(deps, widget, token=token, body={"text": "let me in"})
    assert error_of(answer, 401) == code, case
    assert token not in answer.body
    assert published(deps) == []


def test_missing_token_on_a_signed_in_only_widget(deps: ChatDeps) -> None:
    assert error_of(start(deps, "web", body={"text": "hi"}), 401) == "missing_token"
    assert error_of(start(deps, "web", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401) == "missing_token"
    assert error_of(start(deps, "web-oauth", body={"text": "no code"}), 401) == "missing_token"
    assert published(deps) == []


def test_key_endpoint_down_is_unknown_key_and_logged_as_the_portals_fault(
    getter: FakeGetter, store: KeyStore, pair_a: KeyPair, logs: pytest.CaptureFixture[str]
) -> None:
    getter.bodies[KEY_URL] = ConnectionError("refused")
    deps = make_deps(store, widgets=WIDGETS, auth_settings=(PORTAL,))
    assert error_of(start(deps, "web", token=sign(pair_a, kid="k1")), 401) == "unknown_key"
    logged = logs.readouterr().out
    assert "public key endpoint unusable" in logged and '"level":"ERROR"' in logged
    assert published(deps) == []


def test_a_token_sent_to_a_widget_without_auth_setting_is_400(deps: ChatDeps, pair_a: KeyPair) -> None:
    assert error_of(start(deps, "web-plain", token=sign(pair_a, kid="k1")), 400) == "bad_request"
    assert error_of(start(deps, "web-plain", body={"code": "abc"}), 400) == "bad_request"
    assert published(deps) == []


# -- not found, bad input, faults -----------------------------------------------------------------------


@pytest.mark.parametrize("widget", ["nope", "web-off", ""])
def test_unknown_or_disabled_widget_is_404(deps: ChatDeps, pair_a: KeyPair, widget: str) -> None:
    assert error_of(start(deps, widget, token=sign(pair_a, kid="k1")), 404) == "not_found"
    assert published(deps) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe",
        json.dumps({"text": 42}).encode(),
        json.dumps({"text": "x" * 10_001}).encode(),
        json.dumps({"code": ["a"]}).encode(),
        json.dumps({"customer": "Kim"}).encode(),
        json.dumps({"customer": {"name": 7}}).encode(),
        json.dumps({"customer": {"email": "e" * 400}}).encode(),
    ],
)
def test_bad_body_is_400(deps: ChatDeps, pair_a: KeyPair, raw: bytes) -> None:
    assert error_of(start(deps, "web-open", raw=raw, token=sign(pair_a, kid="k1")), 400) == "bad_request"
    assert published(deps) == []


def test_oversized_body_is_413(deps: ChatDeps) -> None:
    raw = json.dumps({"text": "x" * 70_000}).encode()
    assert error_of(start(deps, "web-open", raw=raw), 413) == "payload_too_large"
    assert published(deps) == []


def test_widget_naming_a_missing_auth_setting_is_a_configuration_error(store: KeyStore) -> None:
    deps = make_deps(store, widgets=(SIGNED_IN_ONLY,), auth_settings=())
    answer = start(deps, "web", token="a.b.c")
    assert answer.status == 500
    assert json.loads(answer.body)["error"] == "configuration_error"
    assert published(deps) == []


def test_queue_refusing_is_503_so_the_widget_retries(deps: ChatDeps, pair_a: KeyPair) -> None:
    deps.publisher.refuse = True  # type: ignore[attr-defined]
    answer = start(deps, "web", token=sign(pair_a, kid="k1"))
    assert error_of(answer, 503) == "unavailable"


# -- OAuth 2.0 widgets ----------------------------------------------------------------------------------


def provider(*, token_status: int = 200, info: dict[str, Any] | None = None) -> None:
    responses.add(
        responses.POST,
        TOKEN_URL,
        status=token_status,
        json={"access_token": ACCESS, "token_type": "Bearer"} if token_status == 200 else {"error": "invalid_grant"},
    )
    if token_status == 200:
        responses.add(responses.GET, USERINFO_URL, json=info or {"sub": "user-9"})


@responses.activate
def test_oauth_widget_exchanges_the_code(deps: ChatDeps) -> None:
    info = {"sub": "user-9", "name": "Aiko", "email": "aiko@example.com", "vip": True, "iat": 1, "aud": "x", "tags": ["a"]}
    provider(info=info)
    answer = start(deps, "web-oauth", body={"code": "the-code", "text": "hello"})
    assert answer.status == 201, answer.body
    body = json.loads(answer.body)
    assert (body["authenticated"], body["contact_id"], body["expires_at"]) == (True, "user-9", int(NOW) + 1800)
    assert body["context"] == {"name": "Aiko", "email": "aiko@example.com", "vip": True}  # no registered claims, no lists
    (envelope,) = published(deps)
    assert (envelope.customer.name, envelope.customer.email) == ("Aiko", "aiko@example.com")
    assert envelope.data == {"event": "chat_started", "auth": "oauth2"}
    form = dict(p.split("=", 1) for p in str(responses.calls[0].request.body).split("&"))
    assert form["client_secret"] == CLIENT_SECRET  # from Secrets Manager, sent only to the token URL
    assert CLIENT_SECRET not in envelope.to_json() and "the-code" not in envelope.to_json()


@responses.activate
def test_oauth_exchange_refused_is_401_code_exchange_failed(deps: ChatDeps) -> None:
    provider(token_status=400)
    assert error_of(start(deps, "web-oauth", body={"code": "stale"}), 401) == "code_exchange_failed"
    assert published(deps) == []


@responses.activate
def test_oauth_client_secret_missing_is_a_configuration_error(store: KeyStore) -> None:
    deps = make_deps(store, widgets=(OAUTH,), auth_settings=(oauth_setting(),), secrets={})
    answer = start(deps, "web-oauth", body={"code": "c"})
    assert (answer.status, json.loads(answer.body)["error"]) == (500, "configuration_error")
    assert len(responses.calls) == 0  # a code is not spent when we could not finish the exchange
    assert published(deps) == []


def test_unknown_setting_type_is_a_configuration_error(store: KeyStore) -> None:
    odd = AuthSetting(id="portal", type="saml")
    deps = make_deps(store, widgets=(SIGNED_IN_ONLY,), auth_settings=(odd,))
    assert start(deps, "web", token="a.b.c").status == 500
    assert published(deps) == []


# -- secrets stay out of responses and logs ---------------------------------------------------------------


@responses.activate
def test_no_token_code_or_secret_in_any_log_line(deps: ChatDeps, pair_a: KeyPair, logs: pytest.CaptureFixture[str]) -> None:
    provider(token_status=400)
    provider(info={"sub": "user-VALUE-31", "email": "mail-VALUE@example.com"})  # the second exchange succeeds
    tokens = [sign(pair_a, kid="k1"), _tampered(pair_a), sign(pair_a, claims(iss="evil-issuer.example"), kid="k1")]
    for token in tokens:
        start(deps, "web", token=token)
    for _ in range(2):
        start(deps, "web-oauth", body={"code": "code-VALUE-123456"})
    logged = logs.readouterr().out
    assert logged.count("chat start refused") == 3 and logged.count("chat started") == 2
    assert [e.identity.contact_id for e in published(deps)] == [CONTACT, "user-VALUE-31"]
    for value in [*tokens, *(t.split(".")[2] for t in tokens), "code-VALUE-123456", CLIENT_SECRET, ACCESS]:
        assert value not in logged
    for claim_value in ("evil-issuer.example", CONTACT, "user-VALUE-31", "mail-VALUE@example.com"):
        assert claim_value not in logged  # nor who the customer is
