"""Customer names: looked up by the route stage from the platform's profile API, cached per customer.

The edge never waits for a profile (LINE gives a webhook 2 s). Route asks the channel adapter for
the look-up (:meth:`ChannelAdapter.profile_request`): LINE's profile API, Facebook's User Profile
API; GBM needs none, its payload names the customer. The answer is kept on the customer's profile
item with the time it was checked, so the customer's later messages and conversations reuse it
until the TTL passes. A failed look-up is remembered too (keeping any name known before), so a
failing API is asked again only after the TTL, and it never holds a message up: the name is simply
left empty.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from switchboard import channels, safe_json
from switchboard.envelope import Envelope
from switchboard.errors import SecretMissing, StoreUnavailable
from switchboard.http_fetch import LazySecrets
from switchboard.observability import logger
from switchboard.ports import Fetcher, FetchFailed, ProfileStore, SecretReader, SettingsReader
from switchboard.secret_names import secret_name

DEFAULT_TTL_SECONDS = 24 * 3600
TTL_ENV = "SWITCHBOARD_NAME_TTL_SECONDS"
LOOKUP_TIMEOUT = 5.0  # a profile is small; a slow API only costs the name
PROFILE_MAX_BYTES = 64 * 1024


def ttl_ms_from_env() -> int:
    raw = os.environ.get(TTL_ENV, "")
    seconds = int(raw) if raw.strip().isdigit() else DEFAULT_TTL_SECONDS
    return seconds * 1000


@dataclass
class NameLookup:
    settings: SettingsReader
    secrets: SecretReader
    secrets_prefix: str
    fetcher: Fetcher
    profiles: ProfileStore
    ttl_ms: int = field(default_factory=ttl_ms_from_env)

    def named(self, envelope: Envelope, now_ms: int) -> Envelope:
        """The envelope with its customer's name filled in when the platform's profile gives one."""
        if envelope.customer.name or envelope.channel not in channels.ADAPTERS:
            return envelope
        name = self.name(envelope, now_ms)
        return envelope.with_(customer=replace(envelope.customer, name=name)) if name else envelope

    def name(self, envelope: Envelope, now_ms: int) -> str | None:
        key = envelope.conversation_key
        try:
            profile = self.profiles.profile(key)
        except Exception as exc:  # the name is a nicety: a store hiccup must not fail the message
            logger.warning("profile unavailable", extra={"profile": key, "error": type(exc).__name__})
            return None
        known = profile.name if profile else None
        if profile is not None and profile.name_checked_at is not None and now_ms - profile.name_checked_at < self.ttl_ms:
            return known
        account = self.settings.account(envelope.account_id)
        if account is None:
            return known
        adapter = channels.adapter(envelope.channel)
        secrets = LazySecrets(self.secrets, secret_name(self.secrets_prefix, "account", account.id, account.channel))
        reason: str | None = None
        name: str | None = None
        try:
            request = adapter.profile_request(envelope, account, secrets)
            if request is None:
                return known  # nothing to ask this platform about this customer
            fetched = self.fetcher.get(request, max_bytes=PROFILE_MAX_BYTES, timeout=LOOKUP_TIMEOUT)
            name = adapter.profile_name(safe_json.loads(fetched.body))
        except FetchFailed as exc:  # names the URL without its query
            reason = f"{type(exc).__name__}: {exc}"
        except (
            KeyError,
            SecretMissing,
            StoreUnavailable,
        ) as exc:  # missing, or Secrets Manager not answering: names the secret, never a value
            reason = f"secret unavailable: {exc.args[0] if exc.args else 'unknown'}"
        except ValueError:  # safe_json's JsonError: malformed, or nested deep enough to break json itself
            reason = "the profile answer is not JSON"
        if reason is not None:
            logger.warning("name look-up failed", extra={"profile": key, "error": reason})
        name = name or known
        try:
            self.profiles.set_name(key, name, checked_at=now_ms)
        except Exception as exc:
            logger.warning("profile not updated", extra={"profile": key, "error": type(exc).__name__})
        return name
