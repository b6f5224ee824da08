"""The ``state`` of ``GET /auth/{auth_setting_id}/callback``: which conversation a sign-in belongs to.

The authentication link sent to a customer carries ``state``; the identity provider hands it back
unchanged on the callback. Were it the bare conversation id, anyone who learnt one could finish a
sign-in for someone else's conversation (login CSRF), or replay an old link forever. So it is an
HMAC-SHA256 token over the conversation id, the auth setting id and an expiry:

    v1.<base64url(conversation_id)>.<expires_at>.<base64url(mac)>

Only URL-unreserved characters, so it survives query strings and providers untouched. The auth
setting id is bound into the MAC but not carried, because the callback path already names it: a
state minted for one setting fails on another's callback. Checking that the conversation is still
open is the caller's job (it needs the conversation table).

Error codes (both answered 401, like every chat auth error): ``invalid_token`` for a state that is
malformed, forged, tampered with or minted for another auth setting; ``token_expired`` for a genuine
state past its expiry, so the page can tell the customer to ask for a new link. An empty state is
``missing_token`` (the interface answers a missing ``state`` with 400 before calling this).

A link signs in once. The MAC cannot tell a first use from a replay, so the callback records each
use under :attr:`VerifiedState.link_id` (a digest of the MAC: the same for every spelling of one
link, and naming nothing). Only one spelling is accepted anyway: base64 decoders ignore the unused
low bits of a final character, so ``...AA`` and ``...AB`` can decode alike, and a ledger keyed on the
raw text would take them for two links.

The key is the stack's, one per stack, kept in Secrets Manager as ``{"key": base64url(32 bytes)}``
(:func:`new_key_secret` / :func:`decode_key`); ``switchboard apply`` creates it once and never
rotates it, since that would void every link already sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from switchboard.chat_auth.errors import INVALID_TOKEN, MISSING_TOKEN, TOKEN_EXPIRED, ChatAuthError

VERSION: Final = "v1"
MIN_KEY_BYTES: Final = 32
KEY_BYTES: Final = 32  # what new_key_secret makes: 256 bits, as strong as HMAC-SHA256 itself
SECRET_FIELD: Final = "key"  # noqa: S105 - the field's name, not a secret
SECRET_ID: Final = "state-key"  # noqa: S105 - kept under secret_name(prefix, "stack", SECRET_ID)
MAX_STATE_CHARS: Final = 1024
_DOMAIN: Final = b"switchboard/chat-auth/callback-state"


def sign(conversation_id: str, auth_setting_id: str, expires_at: int, key: bytes) -> str:
    """A state for the authentication link of one conversation, valid until ``expires_at`` (unix s)."""
    _check_key(key)
    if not conversation_id or not auth_setting_id:
        raise ValueError("conversation_id and auth_setting_id must be non-empty")
    exp = int(expires_at)
    mac = _mac(key, auth_setting_id, conversation_id, exp)
    state = f"{VERSION}.{_b64e(conversation_id.encode('utf-8'))}.{exp}.{_b64e(mac)}"
    if len(state) > MAX_STATE_CHARS:
        raise ValueError("conversation_id is too long for a state parameter")
    return state


@dataclass(frozen=True)
class VerifiedState:
    """What a genuine, unexpired state says."""

    conversation_id: str
    expires_at: int  # unix seconds: how long the record of its use has to be kept
    link_id: str  # 64 hex digits, one per link: the key its single use is recorded under


def verify(state: str | None, auth_setting_id: str, key: bytes, now: float | None = None) -> str:
    """The conversation id a genuine, unexpired state names for this auth setting; else ChatAuthError."""
    return check(state, auth_setting_id, key, now).conversation_id


def check(state: str | None, auth_setting_id: str, key: bytes, now: float | None = None) -> VerifiedState:
    """:func:`verify`, also answering the expiry and the link id the caller records the use under."""
    _check_key(key)
    if state is None or not state.strip():
        raise ChatAuthError(MISSING_TOKEN, "The sign-in link has no state.")
    forged = ChatAuthError(INVALID_TOKEN, "The sign-in link is not valid for this sign-in.")
    if len(state) > MAX_STATE_CHARS:
        raise forged
    parts = state.strip().split(".")
    if len(parts) != 4 or parts[0] != VERSION or not parts[2].isdigit() or not parts[2].isascii():
        raise forged
    try:
        conversation_id = _b64d(parts[1], canonical=True).decode("utf-8")
        mac = _b64d(parts[3], canonical=True)
    except (binascii.Error, ValueError):
        raise forged from None
    exp = int(parts[2])
    if str(exp) != parts[2]:  # one spelling per expiry: no leading zeros to play with
        raise forged
    if not conversation_id or not hmac.compare_digest(mac, _mac(key, auth_setting_id, conversation_id, exp)):
        raise forged
    t = time.time() if now is None else now
    if t >= exp:
        raise ChatAuthError(TOKEN_EXPIRED, "The sign-in link has expired; ask for a new one.")
    link_id = hashlib.sha256(_DOMAIN + b"\x00used\x00" + mac).hexdigest()
    return VerifiedState(conversation_id=conversation_id, expires_at=exp, link_id=link_id)


def new_key_secret() -> dict[str, str]:
    """A fresh state key as the JSON object kept in Secrets Manager (``{"key": base64url}``)."""
    return {SECRET_FIELD: _b64e(secrets.token_bytes(KEY_BYTES))}


def decode_key(secret: Mapping[str, Any]) -> bytes:
    """The key bytes of a stored state-key secret; ``ValueError`` (naming no value) when unusable."""
    value = secret.get(SECRET_FIELD)
    if not isinstance(value, str):
        raise ValueError(f"the state key secret has no {SECRET_FIELD!r} string")
    try:
        key = _b64d(value)
    except (binascii.Error, ValueError):
        raise ValueError("the state key is not base64url") from None
    _check_key(key)
    return key


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the state key must be at least {MIN_KEY_BYTES} random bytes")


def _mac(key: bytes, auth_setting_id: str, conversation_id: str, exp: int) -> bytes:
    # JSON makes the field boundaries unambiguous ("a|b" + "c" can never equal "a" + "b|c").
    message = _DOMAIN + b"\x00" + json.dumps([VERSION, auth_setting_id, conversation_id, exp]).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str, *, canonical: bool = False) -> bytes:
    """Unpadded base64url; with ``canonical``, only in its one spelling (unused low bits zero)."""
    if not text or not all(c.isascii() and (c.isalnum() or c in "-_") for c in text):
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if canonical and _b64e(raw) != text:
        raise ValueError("not canonical base64url")
    return raw
