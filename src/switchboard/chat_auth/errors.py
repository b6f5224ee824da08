"""Errors of signed-in chat authentication.

Every refusal is a :class:`ChatAuthError` whose ``code`` is one of the 401 codes of the external
interface, so the handler maps it to ``{"error": code, "message": message}`` without knowing why it
happened. Messages are written for the person integrating a portal, and are built only from fixed
text and from values that are safe to show (claim *names*, HTTP statuses, the auth setting id):
never the token, a key, a client secret, an access token or an authorization code, because error
bodies and log lines are readable by people who must not see those.
"""

from __future__ import annotations

from typing import Final, Literal

from switchboard.errors import SwitchboardError

ErrorCode = Literal[
    "missing_token",
    "token_expired",
    "token_not_yet_valid",
    "invalid_signature",
    "invalid_token",
    "unknown_key",
    "invalid_issuer",
    "code_exchange_failed",
]

MISSING_TOKEN: Final = "missing_token"  # noqa: S105 - an error code, not a secret
TOKEN_EXPIRED: Final = "token_expired"  # noqa: S105 - an error code, not a secret
TOKEN_NOT_YET_VALID: Final = "token_not_yet_valid"  # noqa: S105 - an error code, not a secret
INVALID_SIGNATURE: Final = "invalid_signature"
INVALID_TOKEN: Final = "invalid_token"  # noqa: S105 - an error code, not a secret
UNKNOWN_KEY: Final = "unknown_key"
INVALID_ISSUER: Final = "invalid_issuer"
CODE_EXCHANGE_FAILED: Final = "code_exchange_failed"

ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        MISSING_TOKEN,
        TOKEN_EXPIRED,
        TOKEN_NOT_YET_VALID,
        INVALID_SIGNATURE,
        INVALID_TOKEN,
        UNKNOWN_KEY,
        INVALID_ISSUER,
        CODE_EXCHANGE_FAILED,
    }
)


class ChatAuthError(SwitchboardError):
    """The customer could not be authenticated; the interface answers it with HTTP 401."""

    http_status: int = 401

    def __init__(self, code: ErrorCode, message: str) -> None:
        if code not in ERROR_CODES:  # a typo here would silently leak a new code to clients
            raise ValueError(f"unknown chat auth error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message

    def to_body(self) -> dict[str, str]:
        """The JSON error body of the interface, ready to serialise."""
        return {"error": self.code, "message": self.message}


class KeyFetchError(ChatAuthError):
    """The public key endpoint could not be read (unreachable, too slow, too big, not a key).

    Still ``unknown_key`` for the client: without keys no token can be accepted. It is a subclass so
    the handler can log or alarm on a broken portal endpoint separately from bad tokens.
    """

    def __init__(self, message: str) -> None:
        super().__init__(UNKNOWN_KEY, message)


class AuthSettingError(ValueError):
    """The auth setting itself is unusable (wrong type, a required URL missing).

    Not a :class:`ChatAuthError`: the customer did nothing wrong, so the handler should treat it as a
    server-side configuration fault (500) rather than blame the token.
    """
