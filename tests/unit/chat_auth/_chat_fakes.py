"""In-memory ports and request builders for the token_validate core (switchboard.chat_start)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fakes import ports
from fakes.ports import FakeSecrets, RecordingPublisher

from switchboard.chat_auth import KeyStore
from switchboard.chat_records import ChatSession
from switchboard.chat_start import ChatDeps
from switchboard.conversations import Conversation
from switchboard.envelope import Customer, Envelope
from switchboard.errors import StoreUnavailable
from switchboard.settings import AuthSetting, CrmSettings, Widget
from switchboard.web import WebhookRequest, WebhookResponse

from ._support import NOW

PREFIX = "switchboard/unit"
CLIENT_SECRET = "oauth-client-SECRET-value-5f5f"
STATE_KEY = b"k" * 32
TOKEN_URL = "https://idp.example.com/oauth2/token"
USERINFO_URL = "https://idp.example.com/oauth2/userinfo"


@dataclass
class FakeSettings(ports.FakeSettings):
    crm_settings: CrmSettings | None = None  # token_validate never reads the CRM settings


@dataclass
class FakeConversations:
    stored: dict[str, Conversation] = field(default_factory=dict)

    def get(self, conversation_id: str) -> Conversation | None:
        return self.stored.get(conversation_id)


@dataclass
class FakeSessions:
    """The chat sessions the chat start opens (interface section 7), in memory."""

    opened: dict[str, ChatSession] = field(default_factory=dict)

    def open_session(self, session: ChatSession) -> None:
        self.opened[session.conversation_id] = session


@dataclass
class FakeUsedLinks:
    """The sign-in link ledger in memory: a conditional put that succeeds once per link id."""

    used: dict[str, int] = field(default_factory=dict)  # link id -> expires_at (the record's TTL)
    refuse: bool = False

    def mark_used(self, link_id: str, *, expires_at: int) -> bool:
        if self.refuse:
            raise StoreUnavailable("conversations table unavailable: ProvisionedThroughputExceededException")
        if link_id in self.used:
            return False
        self.used[link_id] = expires_at
        return True


def oauth_setting(setting_id: str = "apple-oidc", **overrides: Any) -> AuthSetting:
    options: dict[str, Any] = {
        "token_url": TOKEN_URL,
        "userinfo_url": USERINFO_URL,
        "redirect_url": f"https://api.example.com/auth/{setting_id}/callback",
        "client_id": "switchboard",
        "scope": "openid profile",
        "expiry_seconds": 1800,
    }
    options.update(overrides)
    return AuthSetting(id=setting_id, type="oauth2", options=options, secret_keys=("client_secret",))


def line_conversation(conversation_id: str = "c-line-1", *, last_message_at: int = int(NOW * 1000) - 60_000) -> Conversation:
    return Conversation(
        conversation_id=conversation_id,
        channel="line",
        account_id="line-tokyo",
        customer=Customer(id="U" + "a" * 32, name="Taro"),
        workstream="social",
        queue="general",
        priority=10,
        created_at=last_message_at,
        updated_at=last_message_at,
        last_message_at=last_message_at,
        close_after_minutes=1440,
        message_count=1,
    )


def make_deps(
    keys: KeyStore,
    *,
    widgets: Sequence[Widget] = (),
    auth_settings: Sequence[AuthSetting] = (),
    conversations: Sequence[Conversation] = (),
    secrets: dict[str, dict[str, Any]] | None = None,
) -> ChatDeps:
    from switchboard.secret_names import secret_name

    values = secrets
    if values is None:
        values = {secret_name(PREFIX, "stack", "state-key"): {"key": _b64(STATE_KEY)}}
        for setting in auth_settings:
            if setting.type == "oauth2":
                values[secret_name(PREFIX, "auth_setting", setting.id)] = {"client_secret": CLIENT_SECRET}
    return ChatDeps(
        settings=FakeSettings(widgets={w.id: w for w in widgets}, auth_settings={s.id: s for s in auth_settings}),
        secrets=FakeSecrets(values),
        publisher=RecordingPublisher(),
        conversations=FakeConversations({c.conversation_id: c for c in conversations}),
        links=FakeUsedLinks(),
        sessions=FakeSessions(),
        keys=keys,
        secrets_prefix=PREFIX,
        clock=lambda: NOW,
    )


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def chat_request(
    widget_id: str, *, token: str | None = None, body: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None
) -> WebhookRequest:
    sent = {"content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return WebhookRequest(
        method="POST",
        path=f"/chat/{widget_id}/conversations",
        path_params={"widget_id": widget_id},
        query={},
        headers=sent,
        body=raw if raw is not None else (b"" if body is None else json.dumps(body).encode()),
        request_id="req-chat-1",
    )


def callback_request(setting_id: str, query: dict[str, str], *, accept: str = "text/html") -> WebhookRequest:
    return WebhookRequest(
        method="GET",
        path=f"/auth/{setting_id}/callback",
        path_params={"auth_setting_id": setting_id},
        query=query,
        headers={"accept": accept},
        body=b"",
        request_id="req-cb-1",
    )


def used_links(deps: ChatDeps) -> dict[str, int]:
    links = deps.links
    assert isinstance(links, FakeUsedLinks)
    return links.used


def settings_lookups(deps: ChatDeps) -> list[str]:
    settings = deps.settings
    assert isinstance(settings, FakeSettings)
    return settings.lookups


def published(deps: ChatDeps) -> list[Envelope]:
    publisher = deps.publisher
    assert isinstance(publisher, RecordingPublisher)
    return publisher.published


def error_of(answer: WebhookResponse, status: int) -> str:
    assert answer.status == status, answer.body
    assert answer.content_type == "application/json"
    payload = json.loads(answer.body)
    assert set(payload) == {"error", "message"}, payload
    assert isinstance(payload["message"], str) and payload["message"]
    return str(payload["error"])
