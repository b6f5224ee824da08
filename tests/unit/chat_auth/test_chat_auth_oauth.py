"""The OAuth 2.0 code exchange against a mocked identity provider (``responses``)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from switchboard.chat_auth import AuthSettingError, ChatAuthError, exchange_code, oauth
from switchboard.settings import AuthSetting

from ._support import NOW

TOKEN_URL = "https://idp.example.com/oauth2/token"
USERINFO_URL = "https://idp.example.com/oauth2/userinfo"
SECRET = "s3cr+t/with%special=chars"
CODE = "SplxlOBeZQQYbYS6WxSbIA"
ACCESS = "2YotnFZFEjr1zCsicMWpAA"


def oauth_setting(**overrides: Any) -> AuthSetting:
    options: dict[str, Any] = {
        "token_url": TOKEN_URL,
        "userinfo_url": USERINFO_URL,
        "redirect_url": "https://api.example.com/auth/apple-oidc/callback",
        "client_id": "switchboard app",
        "scope": "openid profile",
    }
    options.update(overrides)
    return AuthSetting(id="apple-oidc", type="oauth2", options={k: v for k, v in options.items() if v is not None})


def provider(
    rsps: responses.RequestsMock,
    *,
    token_status: int = 200,
    token_body: Any = None,
    info_status: int = 200,
    info_body: Any = None,
) -> None:
    body = token_body if token_body is not None else {"access_token": ACCESS, "token_type": "Bearer", "expires_in": 3600}
    rsps.add(responses.POST, TOKEN_URL, status=token_status, body=body if isinstance(body, str) else json.dumps(body))
    info = info_body if info_body is not None else {"sub": "user-1", "email": "a@example.com", "email_verified": True}
    rsps.add(responses.GET, USERINFO_URL, status=info_status, body=info if isinstance(info, str) else json.dumps(info))


def form_of(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def refused(setting: AuthSetting, code: str | None = CODE) -> ChatAuthError:
    with pytest.raises(ChatAuthError) as info:
        exchange_code(code, setting, SECRET, now=NOW)
    assert info.value.http_status == 401
    return info.value


@responses.activate
def test_client_secret_post_default() -> None:
    provider(responses.mock)
    identity = exchange_code(CODE, oauth_setting(), SECRET, now=NOW)
    assert identity.user_id == "user-1"
    assert identity.expires_at == NOW + 3600
    assert identity.claims == {"sub": "user-1", "email": "a@example.com", "email_verified": True}

    token_call, info_call = responses.calls
    assert form_of(token_call) == {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": "https://api.example.com/auth/apple-oidc/callback",
        "scope": "openid profile",
        "client_id": "switchboard app",
        "client_secret": SECRET,
    }
    assert "Authorization" not in token_call.request.headers
    assert token_call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert info_call.request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert info_call.request.method == "GET"


@responses.activate
def test_client_secret_basic_form_urlencodes_credentials() -> None:
    provider(responses.mock)
    exchange_code(CODE, oauth_setting(token_endpoint_auth="client_secret_basic"), SECRET, now=NOW)
    token_call = responses.calls[0]
    scheme, _, encoded = token_call.request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    # RFC 6749 2.3.1: each part form-urlencoded before base64 ("+" -> %2B, " " -> +, "%" -> %25).
    assert base64.b64decode(encoded).decode() == "switchboard+app:s3cr%2Bt%2Fwith%25special%3Dchars"
    form = form_of(token_call)
    assert "client_secret" not in form
    assert "client_id" not in form
    assert form["grant_type"] == "authorization_code"


@responses.activate
def test_additional_parameters_sent_but_cannot_override() -> None:
    provider(responses.mock)
    setting = oauth_setting(
        additional_parameters={"audience": "api://chat", "resource": "x", "grant_type": "password", "client_secret": "no"},
        scope=["openid", "email"],
    )
    exchange_code(CODE, setting, SECRET, now=NOW)
    form = form_of(responses.calls[0])
    assert form["audience"] == "api://chat"
    assert form["resource"] == "x"
    assert form["grant_type"] == "authorization_code"
    assert form["client_secret"] == SECRET
    assert form["scope"] == "openid email"


@responses.activate
def test_user_id_claim_and_expiry_seconds() -> None:
    provider(responses.mock, info_body={"sub": "pairwise", "customer_number": 12345, "address": {"city": "Köln"}})
    identity = exchange_code(CODE, oauth_setting(user_id_claim="customer_number", expiry_seconds=600), SECRET, now=NOW)
    assert identity.user_id == "12345"
    assert identity.expires_at == NOW + 600
    assert identity.claims == {"sub": "pairwise", "customer_number": 12345}  # nested values dropped


@responses.activate
def test_missing_user_id_claim() -> None:
    provider(responses.mock, info_body={"email": "a@example.com"})
    assert "'sub'" in refused(oauth_setting()).message


@responses.activate
def test_token_endpoint_400() -> None:
    provider(responses.mock, token_status=400, token_body={"error": "invalid_grant", "error_description": f"code {CODE} used"})
    err = refused(oauth_setting())
    assert err.code == "code_exchange_failed"
    assert "HTTP 400" in err.message
    assert "invalid_grant" in err.message
    assert len(responses.calls) == 1  # userinfo never asked


@pytest.mark.parametrize(
    ("token_status", "token_body", "info_status", "info_body"),
    [
        (500, "oops", 200, None),
        (200, "not json", 200, None),
        (200, ["a list"], 200, None),
        (200, {"token_type": "Bearer"}, 200, None),  # no access_token
        (200, {"access_token": ACCESS, "token_type": "mac"}, 200, None),
        (200, {"access_token": "a\r\nInjected: header"}, 200, None),
        (302, "", 200, None),  # redirects are not followed
        (200, None, 401, {"error": "invalid_token"}),  # userinfo failure
        (200, None, 500, "down"),
        (200, None, 200, "eyJhbGciOi.signed.userinfo"),  # a JWT userinfo is not supported
        (200, None, 200, {"sub": ""}),
        (200, None, 200, {"sub": True}),
        (200, None, 200, {"sub": {"id": 1}}),
    ],
)
@responses.activate
def test_exchange_failures(token_status: int, token_body: Any, info_status: int, info_body: Any) -> None:
    provider(responses.mock, token_status=token_status, token_body=token_body, info_status=info_status, info_body=info_body)
    responses.mock.assert_all_requests_are_fired = False
    assert refused(oauth_setting()).code == "code_exchange_failed"


@responses.activate
def test_timeouts_and_connection_errors() -> None:
    responses.add(responses.POST, TOKEN_URL, body=requests.exceptions.ConnectTimeout("slow"))
    assert "no answer within" in refused(oauth_setting()).message
    responses.replace(responses.POST, TOKEN_URL, body=requests.exceptions.ConnectionError("refused"))
    assert "connection failed" in refused(oauth_setting()).message


@responses.activate
def test_size_cap() -> None:
    provider(responses.mock, info_body={"sub": "u", "blob": "x" * 70000})
    assert "larger than" in refused(oauth_setting()).message


def test_http_urls_refused_unless_allowed() -> None:
    setting = oauth_setting(token_url="http://127.0.0.1:9/token")
    assert "only https" in refused(setting).message


@responses.activate
def test_http_allowed_for_the_local_stack() -> None:
    responses.add(responses.POST, "http://127.0.0.1:9/token", json={"access_token": ACCESS})
    responses.add(responses.GET, "http://127.0.0.1:9/userinfo", json={"sub": "local"})
    setting = oauth_setting(token_url="http://127.0.0.1:9/token", userinfo_url="http://127.0.0.1:9/userinfo")
    assert exchange_code(CODE, setting, SECRET, now=NOW, allow_http=True).user_id == "local"


@pytest.mark.parametrize("code", [None, "", "  "])
def test_missing_code(code: str | None) -> None:
    assert refused(oauth_setting(), code).code == "missing_token"


def test_absurd_code() -> None:
    assert refused(oauth_setting(), "x" * 5000).code == "code_exchange_failed"


@pytest.mark.parametrize(
    "setting",
    [
        AuthSetting(id="p", type="jwt", options={"public_key_url": "https://x"}),
        oauth_setting(token_url=None),
        oauth_setting(userinfo_url=None),
        oauth_setting(client_id=None),
        oauth_setting(token_endpoint_auth="private_key_jwt"),
        oauth_setting(expiry_seconds=0),
        oauth_setting(expiry_seconds="soon"),
        oauth_setting(additional_parameters=["a"]),
    ],
)
def test_unusable_settings(setting: AuthSetting) -> None:
    with pytest.raises(AuthSettingError):
        exchange_code(CODE, setting, SECRET, now=NOW)


# -- time: both calls inside token_validate's own timeout ------------------------------------------------


class _SlowIdp(BaseHTTPRequestHandler):
    """A token endpoint that dribbles one header line every half second (8 s in all), then a good token."""

    protocol_version = "HTTP/1.1"
    delays: dict[str, float] = {}

    def log_message(self, format: str, *args: object) -> None:
        return

    def _json(self, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except OSError:
            pass  # the client gave up at its deadline: that is what the test wants

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/token-dribble":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            try:
                for i in range(16):
                    self.wfile.flush()
                    time.sleep(0.5)
                    self.wfile.write(f"X-Slow-{i}: 1\r\n".encode())
                raw = json.dumps({"access_token": ACCESS}).encode()
                self.wfile.write(b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(raw), raw))
            except OSError:
                pass
            self.close_connection = True
            return
        time.sleep(self.delays.get(self.path, 0.0))
        self._json({"access_token": ACCESS, "token_type": "Bearer"})

    def do_GET(self) -> None:
        time.sleep(self.delays.get(self.path, 0.0))
        self._json({"sub": "slow-user"})


@pytest.fixture(scope="module")
def idp() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowIdp)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_token_endpoint_dribbling_its_headers_answers_code_exchange_failed_in_time(idp: str) -> None:
    setting = oauth_setting(token_url=f"{idp}/token-dribble", userinfo_url=f"{idp}/userinfo")
    started = time.monotonic()
    with pytest.raises(ChatAuthError) as info:
        exchange_code(CODE, setting, SECRET, now=NOW, allow_http=True, timeout=1.5)
    elapsed = time.monotonic() - started
    assert (info.value.code, info.value.http_status) == ("code_exchange_failed", 401)
    assert "token endpoint failed: no answer within 1.5 s" in info.value.message
    assert elapsed < 4.0  # the 1.5 s call deadline and slack, far below the 8 s of headers on offer


def test_both_calls_share_one_budget(idp: str) -> None:
    """Each call alone is within its timeout; together they are not within the budget."""
    _SlowIdp.delays = {"/token": 0.8, "/userinfo": 0.8}
    try:
        setting = oauth_setting(token_url=f"{idp}/token", userinfo_url=f"{idp}/userinfo")
        assert exchange_code(CODE, setting, SECRET, now=NOW, allow_http=True, timeout=1.5, budget=3.0).user_id == "slow-user"
        started = time.monotonic()
        with pytest.raises(ChatAuthError) as info:
            exchange_code(CODE, setting, SECRET, now=NOW, allow_http=True, timeout=1.5, budget=1.2)
        assert info.value.code == "code_exchange_failed" and "userinfo endpoint" in info.value.message
        assert time.monotonic() - started < 2.5
    finally:
        _SlowIdp.delays = {}


def test_the_exchange_budget_fits_token_validates_lambda_timeout_with_margin() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # CloudFormation tags: irrelevant here
    template = yaml.load((Path(__file__).resolve().parents[3] / "template.yaml").read_text(), Loader=Loader)  # noqa: S506
    properties = template["Resources"]["TokenValidateFunction"]["Properties"]
    timeout = properties.get("Timeout", template.get("Globals", {}).get("Function", {}).get("Timeout"))
    assert isinstance(timeout, int)
    assert oauth.DEFAULT_TIMEOUT <= oauth.EXCHANGE_BUDGET
    assert timeout >= oauth.EXCHANGE_BUDGET + 3.0  # settings, secret, conversation and queue get the rest


def test_the_deployed_policy_refuses_an_idp_on_a_private_address() -> None:
    setting = oauth_setting(token_url="https://10.0.0.5/token")
    refusal = refused(setting)
    assert refusal.code == "code_exchange_failed" and "10.0.0.5 is not an address the deployed policy allows" in refusal.message
