"""The stack's state key: the HMAC key sign-in links' ``state`` is signed with.

One random 256-bit key per stack in Secrets Manager (``<prefix>/stack/state-key``), made by
``switchboard apply`` (and so by ``switchboard local`` at start) the first time it is missing and
never changed after: rotating it would void every sign-in link already sent. It is not part of the
configuration file, because nobody should have to invent, store or paste it.
"""

from __future__ import annotations

import json
from typing import Any

from switchboard import safe_json
from switchboard.chat_auth.state import SECRET_ID, decode_key, new_key_secret
from switchboard.secret_names import secret_name


def name(prefix: str) -> str:
    return secret_name(prefix, "stack", SECRET_ID)


def ensure(sm: Any, prefix: str) -> bool:
    """Create the state key unless it exists; True when this call created it.

    Two applies racing both try to create; the loser keeps the winner's key, so there is only one.
    A stored value that is not a usable key is left alone, never silently replaced (that would void
    every link already sent): ``switchboard auth-link`` and the callback report it.
    """
    secret = name(prefix)
    try:
        if read(sm, prefix) is not None:
            return False
    except ValueError:
        return False
    try:
        sm.create_secret(
            Name=secret,
            SecretString=json.dumps(new_key_secret()),
            Description="Switchboard: signs the state of sign-in links (switchboard auth-link); created by switchboard apply",
        )
    except sm.exceptions.ResourceExistsException:
        return False
    return True


def read(sm: Any, prefix: str) -> bytes | None:
    """The key, or None when there is none yet; ``ValueError`` when the stored value is unusable."""
    try:
        raw = sm.get_secret_value(SecretId=name(prefix))["SecretString"]
    except sm.exceptions.ResourceNotFoundException:
        return None
    try:
        value = safe_json.loads(raw)
    except safe_json.JsonError:
        raise ValueError(f"secret {name(prefix)} is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"secret {name(prefix)} is not a JSON object")
    try:
        return decode_key(value)
    except ValueError as exc:
        raise ValueError(f"secret {name(prefix)}: {exc}") from None
