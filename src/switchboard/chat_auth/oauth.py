"""Exchanging an OAuth 2.0 authorization code for the visitor's identity.

Used by chat widgets whose auth setting is of type ``oauth2`` and by ``/auth/{id}/callback`` (Apple
Messages for Business' OpenID Connect flow). Two calls, both to URLs from the auth setting only:

1. ``POST token_url`` (``grant_type=authorization_code``, the code, ``redirect_uri``, ``scope``, the
   setting's ``additional_parameters``), the client authenticated per ``token_endpoint_auth``:
   ``client_secret_post`` puts ``client_id``/``client_secret`` in the form body (the default, as the
   seed's admin centre does); ``client_secret_basic`` sends them as HTTP Basic credentials, each
   form-urlencoded first as RFC 6749 section 2.3.1 requires (a ``+`` or ``%`` in a secret would
   otherwise be decoded by the server into a different secret), and leaves them out of the body,
   since a client must not use two authentication methods at once.
2. ``GET userinfo_url`` with the access token as a bearer; the user id is ``sub`` or the claim named
   by ``user_id_claim``.

Every failure, whatever its cause, is ``code_exchange_failed`` with a message naming the step and
the HTTP status, never the provider's body: providers echo codes and tokens in error descriptions.

Both calls together fit one budget (:data:`EXCHANGE_BUDGET`, each call also at most ``timeout``),
with margin inside token_validate's own Lambda timeout (10 s in template.yaml): a provider that
answers slowly, or dribbles its headers, costs the visitor a ``code_exchange_failed``, never a
Lambda timeout that API Gateway would turn into a 502.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote_plus

from switchboard import safe_json
from switchboard.chat_auth._http import DEFAULT_MAX_BYTES, FetchError, HttpResponse, request
from switchboard.chat_auth.errors import CODE_EXCHANGE_FAILED, MISSING_TOKEN, AuthSettingError, ChatAuthError
from switchboard.chat_auth.jwt_validate import ContextValue

if TYPE_CHECKING:
    from switchboard.outbound_http import AddressPolicy
    from switchboard.settings import AuthSetting

DEFAULT_EXPIRY_SECONDS: Final = 3600
DEFAULT_TIMEOUT: Final = 4.0  # one call, connect to last byte
# Both calls together. token_validate has 10 s (template.yaml) and also reads settings, a secret and
# the conversation and enqueues: 6 s for the provider leaves it 4.
EXCHANGE_BUDGET: Final = 6.0
MIN_CALL_SECONDS: Final = 0.25  # less than this left: not worth starting the call
MAX_CODE_CHARS: Final = 4096
CLIENT_SECRET_POST: Final = "client_secret_post"  # noqa: S105 - a method name, not a secret
CLIENT_SECRET_BASIC: Final = "client_secret_basic"  # noqa: S105 - a method name, not a secret
# Parameters the exchange itself owns; additional_parameters may not override them.
_RESERVED: Final = frozenset({"grant_type", "code", "redirect_uri", "client_id", "client_secret", "scope"})
_OAUTH_ERROR = re.compile(r"^[a-z_]{1,40}$")


@dataclass(frozen=True)
class OAuthIdentity:
    """Who the provider says signed in, and until when the conversation counts as authenticated."""

    user_id: str
    expires_at: int  # unix seconds: now + the setting's expiry_seconds
    claims: dict[str, ContextValue] = field(default_factory=dict)  # userinfo's primitive values, usable as context


def exchange(
    code: str | None,
    setting: AuthSetting,
    client_secret: str,
    *,
    now: float | None = None,
    allow_http: bool = False,
    policy: AddressPolicy | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    budget: float = EXCHANGE_BUDGET,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> OAuthIdentity:
    """Exchange ``code`` and read userinfo, or raise :class:`ChatAuthError` (``code_exchange_failed``).

    Each call gets at most ``timeout`` seconds, both together at most ``budget``. An absent or empty
    code is ``missing_token``. A setting that is not a complete ``oauth2`` setting raises
    :class:`AuthSettingError` (a server fault, not the customer's).
    """
    token_url, userinfo_url, client_id = _required_urls(setting)
    expiry_seconds = _expiry_seconds(setting)  # before any call: a bad setting must not cost a code
    if code is None or not isinstance(code, str) or not code.strip():
        raise ChatAuthError(MISSING_TOKEN, "No authorization code was sent.")
    if len(code) > MAX_CODE_CHARS:
        raise ChatAuthError(CODE_EXCHANGE_FAILED, "The authorization code is implausibly long.")
    t = time.time() if now is None else now
    ends = time.monotonic() + budget

    form, headers = _token_request(code.strip(), setting, client_id, client_secret)
    calls = _Calls(ends=ends, timeout=timeout, max_bytes=max_bytes, allow_http=allow_http, policy=policy)
    token_resp = calls.call("POST", token_url, step="token", headers=headers, data=form)
    access_token = _access_token(token_resp)

    info_resp = calls.call(
        "GET",
        userinfo_url,
        step="userinfo",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    info = _json_object(info_resp, "userinfo")
    claim = setting.option("user_id_claim") or "sub"
    user_id = info.get(claim)
    if isinstance(user_id, bool) or not isinstance(user_id, str | int) or user_id == "":
        raise ChatAuthError(CODE_EXCHANGE_FAILED, f"The userinfo answer has no usable {claim!r} claim.")
    claims: dict[str, ContextValue] = {k: v for k, v in info.items() if v is None or isinstance(v, str | int | float | bool)}
    return OAuthIdentity(user_id=str(user_id), expires_at=int(t) + expiry_seconds, claims=claims)


def _required_urls(setting: AuthSetting) -> tuple[str, str, str]:
    if setting.type != "oauth2":
        raise AuthSettingError(f"auth setting {setting.id!r} is of type {setting.type!r}, not 'oauth2'")
    values = []
    for name in ("token_url", "userinfo_url", "client_id"):
        value = setting.option(name)
        if not isinstance(value, str) or not value:
            raise AuthSettingError(f"auth setting {setting.id!r} has no {name}")
        values.append(value)
    return values[0], values[1], values[2]


def _expiry_seconds(setting: AuthSetting) -> int:
    raw = setting.option("expiry_seconds", DEFAULT_EXPIRY_SECONDS)
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit() or int(raw) <= 0:
        raise AuthSettingError(f"auth setting {setting.id!r}: expiry_seconds must be a positive whole number")
    return int(raw)


def _token_request(code: str, setting: AuthSetting, client_id: str, client_secret: str) -> tuple[dict[str, str], dict[str, str]]:
    form: dict[str, str] = {}
    extra = setting.option("additional_parameters") or {}
    if not isinstance(extra, Mapping):
        raise AuthSettingError(f"auth setting {setting.id!r}: additional_parameters must be a mapping")
    for name, value in extra.items():
        if str(name) in _RESERVED:
            continue
        form[str(name)] = _form_value(value)
    form["grant_type"] = "authorization_code"
    form["code"] = code
    redirect = setting.option("redirect_url")
    if redirect:
        form["redirect_uri"] = str(redirect)
    scope = setting.option("scope")
    if scope:
        form["scope"] = " ".join(str(s) for s in scope) if isinstance(scope, list | tuple) else str(scope)

    headers = {"Accept": "application/json"}
    method = setting.option("token_endpoint_auth") or CLIENT_SECRET_POST
    if method == CLIENT_SECRET_POST:
        form["client_id"] = client_id
        form["client_secret"] = client_secret
    elif method == CLIENT_SECRET_BASIC:
        credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
    else:
        raise AuthSettingError(
            f"auth setting {setting.id!r}: token_endpoint_auth must be {CLIENT_SECRET_POST} or {CLIENT_SECRET_BASIC}"
        )
    return form, headers


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class _Calls:
    """The two calls' shared budget: each gets ``timeout`` or what is left until ``ends``, whichever is less."""

    ends: float  # time.monotonic()
    timeout: float
    max_bytes: int
    allow_http: bool
    policy: AddressPolicy | None

    def call(
        self, method: str, url: str, *, step: str, headers: dict[str, str], data: dict[str, str] | None = None
    ) -> HttpResponse:
        left = min(self.timeout, self.ends - time.monotonic())
        if left < MIN_CALL_SECONDS:
            raise ChatAuthError(CODE_EXCHANGE_FAILED, f"The identity provider's {step} endpoint was not called: no time left.")
        try:
            resp = request(
                method,
                url,
                timeout=left,
                max_bytes=self.max_bytes,
                allow_http=self.allow_http,
                policy=self.policy,
                headers=headers,
                data=data,
            )
        except FetchError as exc:
            raise ChatAuthError(CODE_EXCHANGE_FAILED, f"The identity provider's {step} endpoint failed: {exc}.") from None
        return _answered(resp, step)


def _answered(resp: HttpResponse, step: str) -> HttpResponse:
    if not resp.ok:
        hint = _oauth_error(resp)
        raise ChatAuthError(
            CODE_EXCHANGE_FAILED,
            f"The identity provider's {step} endpoint answered HTTP {resp.status}{f' ({hint})' if hint else ''}.",
        )
    return resp


def _oauth_error(resp: HttpResponse) -> str | None:
    """The registered ``error`` code of an RFC 6749 error body (e.g. invalid_grant): safe and useful to show."""
    try:
        body = safe_json.loads(resp.body)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) and _OAUTH_ERROR.match(error) else None


def _json_object(resp: HttpResponse, step: str) -> dict[str, Any]:
    try:
        body = safe_json.loads(resp.body)
    except ValueError:
        raise ChatAuthError(CODE_EXCHANGE_FAILED, f"The identity provider's {step} answer is not JSON.") from None
    if not isinstance(body, dict):
        raise ChatAuthError(CODE_EXCHANGE_FAILED, f"The identity provider's {step} answer is not a JSON object.")
    return body


def _access_token(resp: HttpResponse) -> str:
    body = _json_object(resp, "token")
    token = body.get("access_token")
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
        raise ChatAuthError(CODE_EXCHANGE_FAILED, "The identity provider's token answer has no access_token.")
    token_type = body.get("token_type")
    if token_type is not None and (not isinstance(token_type, str) or token_type.lower() != "bearer"):
        raise ChatAuthError(CODE_EXCHANGE_FAILED, "The identity provider issued a token that is not a bearer token.")
    return token
