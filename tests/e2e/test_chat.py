"""Signed-in web chat and the sign-in callback on the local stack, against a local key server and IdP.

The module applies its own configuration document (widgets, auth settings pointing at the fake
IdP on 127.0.0.1, a chat workstream whose rules read the customer's context, and a LINE account)
through `switchboard apply`, as an admin would add them to a running stack.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from fakes.idp import FakeIdp

from switchboard.channels.line import sign as sign_line

from ._stack import Stack, line_body, line_event, new_user, wait_for

pytestmark = pytest.mark.e2e

ISSUER = "portal.e2e.example"
WEB = "e2e-web"  # jwt, signed-in visitors only
WEB_OPEN = "e2e-web-open"  # jwt, anonymous visitors welcome
WEB_PEM = "e2e-web-pem"  # jwt, the key endpoint answers one PEM
WEB_ROTATING = "e2e-web-rotating"  # jwt, its own key endpoint, rotated by a test
WEB_REFUSALS = "e2e-web-refusals"  # jwt, used only by the refusal test
WEB_HOSTILE = "e2e-web-hostile"  # jwt with anonymous visitors, used only by the hostile-shapes test
WEB_OAUTH = "e2e-web-oauth"  # oauth2
WEB_SHORT = "e2e-web-short"  # oauth2 whose sign-in lasts SHORT_EXPIRY seconds
LINE = "e2e-line-signin"
LINE_SECRET = "e2e-line-signin-channel-secret-7a7a"
SHORT_EXPIRY = 6  # long enough for route to see the sign-in hold, short enough to wait out


@dataclass
class Chat:
    stack: Stack
    idp: FakeIdp

    def start(self, widget: str, *, token: str | None = None, body: dict[str, Any] | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.post(
            f"{self.stack.url}/chat/{widget}/conversations", data=json.dumps(body or {}), headers=headers, timeout=15
        )

    def token(self, *, kid: str = "k1", lwicontexts: dict[str, Any] | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"sub": str(uuid.uuid4()), "iss": ISSUER, "iat": now - 5, "exp": now + 600}
        if lwicontexts is not None:
            payload["lwicontexts"] = json.dumps(lwicontexts)
        payload.update(claims)
        return self.idp.token({k: v for k, v in payload.items() if v is not None}, kid=kid)

    def routed(self, conversation_id: str, *, messages: int = 1) -> dict[str, Any]:
        """The conversation once route stored ``messages`` messages and the crm stage wrote them."""

        def ready() -> dict[str, Any] | None:
            done = self.stack.cli("conversations", "show", conversation_id, "--json", check=False)
            if done.returncode != 0:
                return None
            view: dict[str, Any] = json.loads(done.stdout)
            return view if len(view["messages"]) >= messages and view["crm"]["messages_written"] >= messages else None

        return wait_for(ready, f"conversation {conversation_id} with {messages} message(s)")

    def send_line(self, user: str, text: str) -> None:
        body = line_body(line_event(text, user))
        answer = requests.post(
            f"{self.stack.url}/webhooks/line/{LINE}",
            data=body,
            headers={"Content-Type": "application/json", "X-Line-Signature": sign_line(LINE_SECRET, body)},
            timeout=10,
        )
        assert (answer.status_code, answer.text) == (200, "{}")

    def line_conversation(self, user: str, *, messages: int) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            rows = [r for r in self.stack.conversations() if r["account_id"] == LINE and r["customer"]["id"] == user]
            return self.routed(rows[0]["conversation_id"], messages=messages) if len(rows) == 1 else None

        return wait_for(ready, f"the LINE conversation of {user}")


def configuration(stack: Stack, idp: FakeIdp) -> dict[str, Any]:
    oauth = {
        "type": "oauth2",
        "token_url": f"{idp.url}/token",
        "userinfo_url": f"{idp.url}/userinfo",
        "authorize_url": f"{idp.url}/authorize",
        "client_id": idp.client_id,
        "scope": "openid profile",
        "secrets": {"client_secret": idp.client_secret},
    }
    rules = [
        {"name": "anonymous visitors", "when": [{"field": "authenticated", "op": "eq", "value": False}], "queue": "anonymous"},
        {"name": "VIP", "when": [{"field": "context.msdyn_isvip", "op": "eq", "value": "true"}], "queue": "vip", "priority": 1},
        {
            "name": "big carts",
            "when": [{"field": "context.msdyn_cartvalue", "op": "gt", "value": 5000}],
            "queue": "sales",
            "priority": 2,
        },
        {"name": "members", "when": [{"field": "authenticated", "op": "eq", "value": True}], "queue": "members", "priority": 5},
    ]
    return {
        "auth_settings": [
            {"id": "e2e-portal", "type": "jwt", "public_key_url": idp.key_url("/keys"), "issuer": ISSUER},
            {"id": "e2e-portal-pem", "type": "jwt", "public_key_url": idp.key_url("/pem"), "issuer": ISSUER},
            {"id": "e2e-portal-rotating", "type": "jwt", "public_key_url": idp.key_url("/rotating"), "issuer": ISSUER},
            {"id": "e2e-oidc", **oauth, "redirect_url": f"{stack.url}/auth/e2e-oidc/callback"},
            {
                "id": "e2e-oidc-short",
                **oauth,
                "redirect_url": f"{stack.url}/auth/e2e-oidc-short/callback",
                "expiry_seconds": SHORT_EXPIRY,
            },
        ],
        "widgets": [
            {"id": WEB, "auth_setting": "e2e-portal", "workstream": "e2e-chat"},
            {"id": WEB_OPEN, "auth_setting": "e2e-portal", "allow_anonymous": True, "workstream": "e2e-chat"},
            {"id": WEB_PEM, "auth_setting": "e2e-portal-pem", "workstream": "e2e-chat"},
            {"id": WEB_ROTATING, "auth_setting": "e2e-portal-rotating", "workstream": "e2e-chat"},
            {"id": WEB_REFUSALS, "auth_setting": "e2e-portal", "workstream": "e2e-chat"},
            {"id": WEB_HOSTILE, "auth_setting": "e2e-portal", "allow_anonymous": True, "workstream": "e2e-chat"},
            {"id": WEB_OAUTH, "auth_setting": "e2e-oidc", "workstream": "e2e-chat"},
            {"id": WEB_SHORT, "auth_setting": "e2e-oidc-short", "workstream": "e2e-chat"},
        ],
        "accounts": [
            {
                "id": LINE,
                "channel": "line",
                "workstream": "e2e-line-signin",
                "api_base_url": "http://127.0.0.1:9",  # a closed port: the profile look-up fails fast, no test reaches LINE
                "data_base_url": "http://127.0.0.1:9",
                "secrets": {"channel_secret": LINE_SECRET, "channel_access_token": "e2e-line-signin-access-token"},
            }
        ],
        "workstreams": [
            {"id": "e2e-chat", "fallback_queue": "chat-general", "rules": rules},
            {"id": "e2e-line-signin", "fallback_queue": "line-general", "rules": rules[1:]},
        ],
    }


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdp]:
    with FakeIdp() as fake:
        for kid in ("k1", "k-expired", "pem"):
            fake.new_key(kid)
        fake.serve_array(("k1", int(time.time()) + 86400), ("k-expired", int(time.time()) - 60), path="/keys")
        fake.serve_pem("pem", path="/pem")
        yield fake


@pytest.fixture(scope="module")
def chat(stack: Stack, idp: FakeIdp, tmp_path_factory: pytest.TempPathFactory) -> Chat:
    path: Path = tmp_path_factory.mktemp("chat-config") / "chat.yaml"
    document = json.loads(json.dumps(configuration(stack, idp)))  # no shared objects: YAML aliases are refused
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    applied = stack.cli("apply", str(path))
    assert f"created   widget {WEB}" in applied.stdout, applied.stdout
    assert idp.client_secret not in applied.stdout + applied.stderr
    return Chat(stack, idp)


# -- JWT chat start: the context drives routing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "queue", "priority", "rule"),
    [
        ({"msdyn_cartvalue": "10000", "msdyn_isvip": "true", "portalcontactid": "c-1"}, "vip", 1, "VIP"),
        ({"msdyn_cartvalue": "10000", "msdyn_isvip": "false"}, "sales", 2, "big carts"),
        ({"msdyn_cartvalue": "120", "msdyn_isvip": "false"}, "members", 5, "members"),
    ],
)
def test_jwt_chat_context_drives_routing(chat: Chat, context: dict[str, Any], queue: str, priority: int, rule: str) -> None:
    contact = str(uuid.uuid4())
    token = chat.token(sub=contact, lwicontexts=context)
    answer = chat.start(WEB, token=token, body={"text": "Where is my order?"})
    assert answer.status_code == 201, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    created = answer.json()
    assert set(created) == {
        "conversation_id",
        "authenticated",
        "contact_id",
        "context",
        "expires_at",
        "session_token",  # the visitor's session (interface section 7): tests/e2e/test_chat_sessions.py
        "session_expires_at",
    }
    assert (created["authenticated"], created["contact_id"], created["context"]) == (True, contact, context)
    assert created["expires_at"] == json.loads(_payload(token))["exp"]

    view = chat.routed(created["conversation_id"])
    assert (view["channel"], view["account_id"], view["workstream"]) == ("chat", WEB, "e2e-chat")
    assert (view["queue"], view["priority"], view["rule"]) == (queue, priority, rule)
    assert (view["authenticated"], view["contact_id"], view["context"]) == (True, contact, context)
    assert view["customer"]["id"].startswith("visitor-")
    assert [(m["kind"], m["text"]) for m in view["messages"]] == [("text", "Where is my order?")]
    assert view["status"] == "open"


def test_single_pem_key_endpoint_and_a_start_without_text(chat: Chat) -> None:
    answer = chat.start(WEB_PEM, token=chat.token(kid="pem", lwicontexts={"msdyn_isvip": "true"}))
    assert answer.status_code == 201, answer.text
    view = chat.routed(answer.json()["conversation_id"])
    assert (view["queue"], view["authenticated"]) == ("vip", True)
    ((kind, text),) = [(m["kind"], m["text"]) for m in view["messages"]]
    assert (kind, text) == ("event", None)  # the chat opened; the visitor has not written yet


def test_anonymous_visitor_where_the_widget_allows_it(chat: Chat) -> None:
    answer = chat.start(WEB_OPEN, body={"text": "just browsing", "customer": {"name": "Kim Visitor", "email": "kim@example.com"}})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created == {
        "conversation_id": created["conversation_id"],
        "authenticated": False,
        "contact_id": None,
        "context": {},
        "expires_at": None,
        "session_token": created["session_token"],
        "session_expires_at": created["session_expires_at"],
    }
    view = chat.routed(created["conversation_id"])
    assert (view["queue"], view["rule"], view["authenticated"]) == ("anonymous", "anonymous visitors", False)
    assert view["customer"]["name"] == "Kim Visitor"


# -- refusals -------------------------------------------------------------------------------------------


def _payload(token: str) -> bytes:
    import base64

    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refusals(chat: Chat) -> list[tuple[str, str, str | None, dict[str, Any] | None]]:
    """(case, expected code, bearer token, body), every 401 code of interface section 2."""
    import hashlib
    import hmac

    now = int(time.time())
    good = chat.token(lwicontexts={"msdyn_isvip": "false"})
    header, _, signature = good.split(".")
    vip_payload = _b64(json.dumps({**json.loads(_payload(good)), "lwicontexts": json.dumps({"msdyn_isvip": "true"})}).encode())
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    hs_input = f"{hs_header}.{good.split('.')[1]}"
    hs_sig = _b64(hmac.new(chat.idp.public_pem("k1"), hs_input.encode(), hashlib.sha256).digest())
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return [
        ("no token", "missing_token", None, {"text": "let me in"}),
        ("expired", "token_expired", chat.token(iat=now - 7200, exp=now - 3600), None),
        ("nbf in the future", "token_not_yet_valid", chat.token(nbf=now + 3600), None),
        ("tampered payload", "invalid_signature", f"{header}.{vip_payload}.{signature}", None),
        ("alg none", "invalid_token", f"{none_header}.{good.split('.')[1]}.", None),
        ("HS256 with the public PEM", "invalid_token", f"{hs_input}.{hs_sig}", None),
        ("sub missing", "invalid_token", chat.token(sub=None), None),
        ("lwicontexts nested", "invalid_token", chat.token(lwicontexts={"cart": {"value": 1}}), None),
        ("garbage", "invalid_token", "not-a-jwt", None),
        ("unknown kid", "unknown_key", chat.idp.token(json.loads(_payload(good)), kid="pem"), None),
        ("expired key", "unknown_key", chat.token(kid="k-expired"), None),
        ("wrong issuer", "invalid_issuer", chat.token(iss="evil.example"), None),
    ]


def test_every_401_code_is_answered_and_nothing_is_enqueued(chat: Chat) -> None:
    seen: set[str] = set()
    for case, code, token, body in _refusals(chat):
        answer = chat.start(WEB_REFUSALS, token=token, body=body)
        assert answer.status_code == 401, (case, answer.text)
        assert answer.headers["Content-Type"] == "application/json"
        payload = answer.json()
        assert set(payload) == {"error", "message"} and payload["message"], case
        assert payload["error"] == code, (case, payload)
        if token:
            assert token not in answer.text
        seen.add(code)

    chat.idp.clear_requests()
    refused_code = chat.start(WEB_OAUTH, body={"code": "never-issued"})
    assert (refused_code.status_code, refused_code.json()["error"]) == (401, "code_exchange_failed")
    assert "never-issued" not in refused_code.text
    assert [r.path for r in chat.idp.requests()] == ["/token"]  # refused there: userinfo never asked
    seen.add("code_exchange_failed")
    assert seen == {
        "missing_token",
        "token_expired",
        "token_not_yet_valid",
        "invalid_signature",
        "invalid_token",
        "unknown_key",
        "invalid_issuer",
        "code_exchange_failed",
    }

    # 404 and 400 enqueue nothing either.
    assert chat.start("no-such-widget", token=chat.token()).status_code == 404
    bad = requests.post(f"{chat.stack.url}/chat/{WEB_REFUSALS}/conversations", data=b"{not json", timeout=10)
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")

    # A valid start on the same widget afterwards: by the time it is routed, a refused one would have been too.
    sentinel = chat.start(WEB_REFUSALS, token=chat.token(), body={"text": "the only one"})
    assert sentinel.status_code == 201, sentinel.text
    chat.routed(sentinel.json()["conversation_id"])
    rows = [r for r in chat.stack.conversations() if r["account_id"] == WEB_REFUSALS]
    assert [r["conversation_id"] for r in rows] == [sentinel.json()["conversation_id"]]
    assert [r for r in chat.stack.conversations() if r["account_id"] == "no-such-widget"] == []


def test_hostile_shapes_get_json_errors_before_authentication(chat: Chat) -> None:
    url = f"{chat.stack.url}/chat/{WEB_HOSTILE}/conversations"
    deep = b"[" * 30_000 + b"]" * 30_000
    body = requests.post(url, data=deep, headers={"Content-Type": "application/json"}, timeout=15)
    assert (body.status_code, body.json()["error"]) == (400, "bad_request"), body.text

    good = chat.token()
    header = _b64(b'{"alg": "RS256", "kid": "k1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    forged = f"{header}.{good.split('.', 1)[1]}"
    nested_header = requests.post(url, data=b"{}", headers={"Authorization": f"Bearer {forged}"}, timeout=15)
    assert (nested_header.status_code, nested_header.json()["error"]) == (401, "invalid_token"), nested_header.text

    now = int(time.time())
    deep_context = '{"a": ' + "[" * 3000 + "]" * 3000 + "}"
    claims = {"sub": str(uuid.uuid4()), "iss": ISSUER, "iat": now - 5, "exp": now + 600, "lwicontexts": deep_context}
    nested_context = chat.start(WEB_HOSTILE, token=chat.idp.token(claims, kid="k1"))
    assert (nested_context.status_code, nested_context.json()["error"]) == (401, "invalid_token"), nested_context.text

    for widget in ("w" * 65, "w" * 2000):
        missing = chat.start(widget, token=good)
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
        assert "w" * 65 not in missing.text
    long_setting = requests.get(f"{chat.stack.url}/auth/{'s' * 2000}/callback", params={"code": "c", "state": "s"}, timeout=10)
    assert long_setting.status_code == 404 and "s" * 65 not in long_setting.text

    # A valid start afterwards: by the time it is routed, a refused one would have been too.
    sentinel = chat.start(WEB_HOSTILE, body={"text": "the only one"})
    assert sentinel.status_code == 201, sentinel.text
    chat.routed(sentinel.json()["conversation_id"])
    rows = [r for r in chat.stack.conversations() if r["account_id"] == WEB_HOSTILE]
    assert [r["conversation_id"] for r in rows] == [sentinel.json()["conversation_id"]]


def test_key_rotation_new_kid_accepted_after_the_endpoint_changes(chat: Chat) -> None:
    idp = chat.idp
    idp.new_key("r1")
    idp.serve_array(("r1", int(time.time()) + 3600), path="/rotating")
    first = chat.start(WEB_ROTATING, token=chat.token(kid="r1"))
    assert first.status_code == 201, first.text

    idp.new_key("r2")  # the portal publishes a new key and starts signing with it
    idp.serve_array(("r1", int(time.time()) + 3600), ("r2", int(time.time()) + 7200), path="/rotating")
    token = chat.token(kid="r2", lwicontexts={"msdyn_isvip": "true"})

    def accepted() -> requests.Response | None:
        answer = chat.start(WEB_ROTATING, token=token)
        if answer.status_code == 401:
            assert answer.json()["error"] == "unknown_key"  # until the rate-limited refetch is due
            time.sleep(0.5)
            return None
        return answer

    answer = wait_for(accepted, "the rotated kid to be accepted")
    assert answer.status_code == 201, answer.text
    fetches = [r for r in idp.requests("/rotating")]
    assert len(fetches) == 2, "one fetch for r1, one refetch for the unknown r2, however many attempts"
    assert chat.routed(answer.json()["conversation_id"])["queue"] == "vip"


# -- OAuth 2.0 ------------------------------------------------------------------------------------------


def test_oauth_code_flow(chat: Chat) -> None:
    user = {"sub": "user-" + uuid.uuid4().hex[:8], "name": "Aiko Tanaka", "email": "aiko@example.com", "msdyn_isvip": "true"}
    code = chat.idp.issue_code(user)
    chat.idp.clear_requests()
    started = time.time()
    answer = chat.start(WEB_OAUTH, body={"code": code, "text": "hello from the app"})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["authenticated"], created["contact_id"]) == (True, user["sub"])
    assert created["context"] == {"name": "Aiko Tanaka", "email": "aiko@example.com", "msdyn_isvip": "true"}
    assert int(started) + 3600 <= created["expires_at"] <= int(time.time()) + 3600

    token_call, info_call = chat.idp.requests()
    assert (token_call.method, token_call.path, info_call.path) == ("POST", "/token", "/userinfo")
    assert token_call.form == {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": f"{chat.stack.url}/auth/e2e-oidc/callback",
        "scope": "openid profile",
        "client_id": chat.idp.client_id,
        "client_secret": chat.idp.client_secret,
    }
    assert info_call.headers["authorization"].startswith("Bearer at-")

    view = chat.routed(created["conversation_id"])
    assert (view["queue"], view["rule"], view["contact_id"]) == ("vip", "VIP", user["sub"])
    assert view["customer"]["name"] == "Aiko Tanaka"

    replay = chat.start(WEB_OAUTH, body={"code": code})  # codes are single-use
    assert (replay.status_code, replay.json()["error"]) == (401, "code_exchange_failed")


def test_expired_sign_in_shows_authenticated_false(chat: Chat) -> None:
    user = {"sub": "short-" + uuid.uuid4().hex[:8]}
    answer = chat.start(WEB_SHORT, body={"code": chat.idp.issue_code(user), "text": "quick question"})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["authenticated"] is True
    assert created["expires_at"] <= int(time.time()) + SHORT_EXPIRY

    view = chat.routed(created["conversation_id"])
    assert (view["queue"], view["rule"]) == ("members", "members")  # routed while the sign-in held

    def expired() -> dict[str, Any] | None:
        if time.time() < created["expires_at"] + 0.5:
            return None
        return chat.stack.show(created["conversation_id"])

    later = wait_for(expired, "the sign-in to expire")
    assert (later["authenticated"], later["contact_id"], later["expires_at"]) == (False, user["sub"], created["expires_at"])
    (row,) = [r for r in chat.stack.conversations() if r["conversation_id"] == created["conversation_id"]]
    assert row["authenticated"] is False


# -- the callback signs in a customer of another channel ------------------------------------------------


def test_callback_signs_in_a_line_conversation(chat: Chat) -> None:
    user = new_user()
    chat.send_line(user, "hello, can you check my points?")
    before = chat.line_conversation(user, messages=1)
    assert (before["authenticated"], before["queue"]) == (False, "line-general")
    conversation_id = before["conversation_id"]

    link = chat.stack.cli("auth-link", conversation_id, "--auth-setting", "e2e-oidc").stdout.strip()
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{chat.idp.url}/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert {k: v for k, v in query.items() if k != "state"} == {
        "response_type": "code",
        "client_id": chat.idp.client_id,
        "redirect_uri": f"{chat.stack.url}/auth/e2e-oidc/callback",
        "scope": "openid profile",
    }
    assert conversation_id not in query["state"]  # the id is inside, base64url, under the MAC

    # The customer opens the link, signs in at the provider and is sent back to the callback.
    member = {"sub": "member-" + uuid.uuid4().hex[:8], "msdyn_isvip": "true"}
    chat.idp.expect_sign_in(member)
    page = requests.get(link, timeout=15)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert "You are signed in" in page.text
    assert "LINE" in page.text and conversation_id in page.text  # which conversation the customer just joined
    assert int(time.time()) + 15 * 60 - 60 <= int(query["state"].split(".")[2]) <= int(time.time()) + 15 * 60  # link_minutes

    # The same link again, signed in as someone else: refused, and the first identity stays.
    chat.idp.expect_sign_in({"sub": "intruder-" + uuid.uuid4().hex[:8]})
    chat.idp.clear_requests()
    replay = requests.get(link, timeout=15)
    assert replay.status_code == 401, replay.text
    assert "already used" in replay.text
    assert chat.idp.requests("/token") == []

    after = chat.line_conversation(user, messages=2)
    assert after["conversation_id"] == conversation_id
    assert (after["authenticated"], after["contact_id"], after["context"]) == (True, member["sub"], {"msdyn_isvip": "true"})
    assert (after["queue"], after["rule"]) == ("vip", "VIP")  # re-routed on the new identity
    assert [(m["kind"], m["data"].get("event")) for m in after["messages"]] == [("text", "message"), ("event", "signed_in")]

    # A forged state, or a genuine one on another setting's callback, is refused before any code is spent.
    forged = query["state"][:-2] + ("BB" if query["state"].endswith("AA") else "AA")
    chat.idp.clear_requests()
    for setting, state in [("e2e-oidc", forged), ("e2e-oidc-short", query["state"])]:
        answer = requests.get(
            f"{chat.stack.url}/auth/{setting}/callback",
            params={"code": "whatever", "state": state},
            headers={"Accept": "application/json"},
            timeout=10,
        )
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token"), answer.text
    missing = requests.get(f"{chat.stack.url}/auth/e2e-oidc/callback", params={"state": query["state"]}, timeout=10)
    assert missing.status_code == 400
    assert chat.idp.requests("/token") == []


def test_auth_link_refuses_what_cannot_sign_in(chat: Chat) -> None:
    done = chat.stack.cli("auth-link", "no-such-conversation", "--auth-setting", "e2e-oidc", check=False)
    assert done.returncode == 1 and "no conversation" in done.stderr
    done = chat.stack.cli("auth-link", "whatever", "--auth-setting", "e2e-portal", check=False)
    assert done.returncode == 2 and "oauth2" in done.stderr
    done = chat.stack.cli("auth-link", "whatever", "--auth-setting", "nope", check=False)
    assert done.returncode == 2 and "no auth setting" in done.stderr
