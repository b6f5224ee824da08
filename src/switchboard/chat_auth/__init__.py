"""Signed-in web chat authentication: the pure core of the ``token_validate`` Lambda.

Three ways a chat or callback proves who the customer is, each raising :class:`ChatAuthError` with
an interface 401 code on refusal:

* :func:`validate_jwt` for widgets whose auth setting is ``jwt`` (keys from a :class:`KeyStore`);
* :func:`exchange_code` for ``oauth2`` settings (chat start with ``code``, and the callback);
* :func:`sign_state` / :func:`verify_state` for the callback's ``state`` parameter.

No AWS here: secrets (client secret, state key) are passed in by the handler. Heavy imports
(PyJWT, cryptography, requests) happen on first use.
"""

from switchboard.chat_auth._http import FetchError
from switchboard.chat_auth.errors import AuthSettingError, ChatAuthError, ErrorCode, KeyFetchError
from switchboard.chat_auth.jwt_validate import ContextValue, ValidatedToken, bearer_token, parse_lwicontexts
from switchboard.chat_auth.jwt_validate import validate as validate_jwt
from switchboard.chat_auth.keys import KeyGetter, KeyStore
from switchboard.chat_auth.oauth import OAuthIdentity
from switchboard.chat_auth.oauth import exchange as exchange_code
from switchboard.chat_auth.state import sign as sign_state
from switchboard.chat_auth.state import verify as verify_state

__all__ = [
    "AuthSettingError",
    "ChatAuthError",
    "ContextValue",
    "ErrorCode",
    "FetchError",
    "KeyFetchError",
    "KeyGetter",
    "KeyStore",
    "OAuthIdentity",
    "ValidatedToken",
    "bearer_token",
    "exchange_code",
    "parse_lwicontexts",
    "sign_state",
    "validate_jwt",
    "verify_state",
]
