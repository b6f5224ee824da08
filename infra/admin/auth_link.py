"""``switchboard auth-link CONVERSATION_ID --auth-setting ID``: the sign-in URL to send a customer.

The URL is the identity provider's authorization endpoint (the setting's ``authorize_url``) with
``response_type=code``, the setting's ``client_id``, ``redirect_uri`` (its ``redirect_url``, which
must be this stack's ``/auth/{id}/callback`` and be registered at the provider) and ``scope``, and
a ``state`` signed with the stack's state key. The provider sends the customer back to the
callback with a code and the same state; token_validate checks the state, exchanges the code and
signs the customer in to exactly this conversation (interface section 2, callback).

A link is a bearer credential for one conversation's identity until it is used (the callback
accepts each link once) or expires, so it lives for the setting's ``link_minutes`` (default 15):
long enough to open it from a chat, short enough that a forwarded or leaked link is soon dead.
``--valid-for`` may shorten one link, never lengthen it past the setting's policy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from infra.admin import state_key
from infra.admin.resources import Resources
from switchboard.chat_auth import sign_state

DEFAULT_LINK_MINUTES = 15  # interface section 2: the oauth2 setting's link_minutes, when it sets none


@dataclass(frozen=True)
class Outcome:
    code: int  # the command's exit code
    url: str | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()


def link(
    resources: Resources,
    conversation_id: str,
    auth_setting_id: str,
    *,
    valid_for: int | None = None,
    now: float | None = None,
) -> Outcome:
    if valid_for is not None and valid_for <= 0:
        return Outcome(2, error="--valid-for must be a positive number of seconds")
    resources.activate()
    from switchboard.aws.conversation_store import DynamoConversations
    from switchboard.aws.settings_store import DynamoSettings

    setting = DynamoSettings(resources.settings_table, ttl_seconds=0).auth_setting(auth_setting_id)
    if setting is None:
        return Outcome(2, error=f"no auth setting {auth_setting_id!r} is configured")
    if setting.type != "oauth2":
        return Outcome(2, error=f"auth setting {auth_setting_id!r} is of type {setting.type}; sign-in links need oauth2")
    authorize_url = setting.option("authorize_url")
    if not authorize_url:
        return Outcome(
            2,
            error=f"auth setting {auth_setting_id!r} has no authorize_url: add the identity provider's authorization "
            "endpoint to it and apply again",
        )
    link_seconds = _link_seconds(setting.option("link_minutes", DEFAULT_LINK_MINUTES))
    if link_seconds is None:
        return Outcome(2, error=f"auth setting {auth_setting_id!r}: link_minutes must be a positive whole number of minutes")
    if valid_for is not None and valid_for > link_seconds:
        return Outcome(
            2,
            error=f"--valid-for {valid_for} is longer than the link_minutes of {auth_setting_id!r} "
            f"({link_seconds // 60} minutes); raise link_minutes in the configuration to allow it",
        )

    t = time.time() if now is None else now
    conversation = DynamoConversations(resources.conversations_table).get(conversation_id)
    if conversation is None:
        return Outcome(1, error=f"no conversation {conversation_id}")
    if conversation.status(int(t * 1000)) != "open":
        return Outcome(1, error=f"conversation {conversation_id} is closed; a sign-in link needs an open conversation")

    sm = resources.client("secretsmanager")
    try:
        key = state_key.read(sm, resources.secrets_prefix)
        if key is None:  # a stack applied before sign-in links existed
            state_key.ensure(sm, resources.secrets_prefix)
            key = state_key.read(sm, resources.secrets_prefix)
    except ValueError as exc:
        return Outcome(1, error=str(exc))
    if key is None:  # pragma: no cover - ensure() just created it
        return Outcome(1, error=f"secret {state_key.name(resources.secrets_prefix)} could not be created")

    state = sign_state(conversation.conversation_id, setting.id, int(t) + (valid_for or link_seconds), key)
    params = {"response_type": "code", "client_id": str(setting.option("client_id"))}
    redirect = setting.option("redirect_url")
    if redirect:
        params["redirect_uri"] = str(redirect)
    scope = setting.option("scope")
    if scope:
        params["scope"] = str(scope)
    params["state"] = state
    separator = "&" if urlsplit(str(authorize_url)).query else "?"
    url = f"{authorize_url}{separator}{urlencode(params, quote_via=quote)}"

    warnings: list[str] = []
    expected_path = f"/auth/{setting.id}/callback"
    if not redirect or not urlsplit(str(redirect)).path.endswith(expected_path):
        warnings.append(
            f"warning: redirect_url of {setting.id!r} does not end in {expected_path}; the provider will not send the customer "
            "back to Switchboard's callback"
        )
    return Outcome(0, url=url, warnings=tuple(warnings))


def _link_seconds(raw: object) -> int | None:
    """``link_minutes`` in seconds; None for anything but a positive whole number (apply refuses those too)."""
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit() or int(raw) <= 0:
        return None
    return int(raw) * 60
