"""A chat on moto: the chat start and the chat function's cores over the real DynamoDB stores and the inbound
FIFO queue, the route stage to store what the queue carries, and a clock whose sleeps can make things happen."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from fakes.ports import FakeSecrets

from infra.local.template import create_resources, plan
from switchboard import chat_session, chat_start, route_stage
from switchboard.aws.chat_store import DynamoChatSessions
from switchboard.aws.conversation_store import DynamoConversations
from switchboard.aws.publisher import SqsPublisher, by_conversation_key
from switchboard.aws.settings_store import DynamoSettings
from switchboard.chat_auth import KeyStore
from switchboard.chat_session import SessionDeps
from switchboard.chat_start import ChatDeps
from switchboard.conversations import OutMessage, new_reply_id
from switchboard.envelope import Envelope
from switchboard.route_stage import RouteDeps
from switchboard.web import WebhookRequest, WebhookResponse

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_780_000_000.0
PORTAL = "https://portal.example.com"
SCRIPT = "/* the widget */\nconsole.log('switchboard');\n"


@dataclass
class Clock:
    """Time that moves only when told, or when the code under test sleeps; ``on_sleep`` runs at each sleep."""

    now: float = T0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[int], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


@dataclass
class Chat:
    """One started chat: its id and the session token the 201 answered."""

    widget: str
    conversation_id: str
    token: str
    expires_at: int
    start_body: dict[str, Any]


@dataclass
class ChatStack:
    settings: DynamoSettings
    conversations: DynamoConversations
    sessions: DynamoChatSessions
    start_deps: ChatDeps
    deps: SessionDeps
    clock: Clock
    queue_url: str
    table: str
    script: list[str | None] = field(default_factory=lambda: [SCRIPT])

    # -- requests ------------------------------------------------------------------------------------
    def start(self, widget: str = "web", *, body: dict[str, Any] | None = None, origin: str | None = None) -> WebhookResponse:
        headers = {"content-type": "application/json", **({"origin": origin} if origin else {})}
        request = WebhookRequest("POST", f"/chat/{widget}/conversations", {"widget_id": widget}, {}, headers, _raw(body), "rq")
        return chat_start.start(request, self.start_deps)

    def chat(self, widget: str = "web", *, text: str | None = "hello", name: str | None = "Kim") -> Chat:
        body: dict[str, Any] = {"customer": {"name": name}} if name else {}
        if text:
            body["text"] = text
        answer = self.start(widget, body=body)
        assert answer.status == 201, answer.body
        doc = json.loads(answer.body)
        return Chat(widget, doc["conversation_id"], doc["session_token"], doc["session_expires_at"], doc)

    def call(
        self,
        method: str,
        widget: str,
        tail: str,
        *,
        conversation_id: str | None = None,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> WebhookResponse:
        params = {"widget_id": widget}
        path = f"/chat/{widget}"
        if conversation_id is not None:
            params["conversation_id"] = conversation_id
            path += f"/conversations/{conversation_id}"
        path += f"/{tail}" if tail else ""
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        data = raw if raw is not None else _raw(body)
        return chat_session.handle(WebhookRequest(method, path, params, query or {}, sent, data, "rq-1"), self.deps)

    def send(self, chat: Chat, text: str = "a message", client_message_id: str = "m-1", **kw: Any) -> WebhookResponse:
        body = {"client_message_id": client_message_id, "text": text}
        return self.call("POST", chat.widget, "messages", conversation_id=chat.conversation_id, token=chat.token, body=body, **kw)

    def read(self, chat: Chat, *, after: str | None = None, wait: int | None = None, **kw: Any) -> WebhookResponse:
        query = {**({"after": after} if after else {}), **({"wait": str(wait)} if wait is not None else {})}
        return self.call(
            "GET", chat.widget, "messages", conversation_id=chat.conversation_id, token=chat.token, query=query, **kw
        )

    def end(self, chat: Chat, **kw: Any) -> WebhookResponse:
        return self.call("POST", chat.widget, "end", conversation_id=chat.conversation_id, token=chat.token, **kw)

    # -- the pipeline ----------------------------------------------------------------------------------
    def queued(self) -> list[Envelope]:
        """What the inbound queue holds now, taken off it."""
        sqs = boto3.client("sqs")
        out: list[Envelope] = []
        while True:
            got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for message in got:
                out.append(Envelope.from_json(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def pump(self) -> list[Envelope]:
        """The route stage stores what the inbound queue carries, in order."""
        envelopes = self.queued()
        deps = RouteDeps(settings=self.settings, conversations=self.conversations, crm_queue=_Discard(), clock=self.clock)
        for envelope in envelopes:
            route_stage.process(envelope, deps)
        return envelopes

    def reply(self, chat: Chat, text: str, *, sent: bool = True, author: str | None = "Agent Ana") -> OutMessage:
        """An agent's reply as `switchboard reply` stores it and the sender stage marks a chat reply taken."""
        now_ms = int(self.clock() * 1000)
        message = OutMessage(
            id=new_reply_id(now_ms), conversation_id=chat.conversation_id, text=text, created_at=now_ms, author=author
        )
        assert self.conversations.put_reply(message)
        if sent:
            assert self.conversations.mark_reply(chat.conversation_id, message.id, status="sent", at=now_ms)
        return message


class _Discard:
    def publish(self, envelopes: Any) -> None:
        return None


def _raw(body: Any) -> bytes:
    return b"" if body is None else json.dumps(body).encode()


def build(clock: Clock, monkeypatch: Any) -> ChatStack:
    p = plan(ROOT / "template.yaml", stack="unit", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=30)
    urls = create_resources(p)
    env = p.functions["ChatFunction"].env
    queue_url = urls["InboundQueue"]
    settings = DynamoSettings(env["SETTINGS_TABLE"], ttl_seconds=0)
    settings.put("workstream", "chat", {"id": "chat", "fallback_queue": "general", "close_after_minutes": 30})
    settings.put("widget", "web", {"id": "web", "workstream": "chat", "allowed_origins": [PORTAL], "session_minutes": 30})
    settings.put("widget", "open", {"id": "open", "workstream": "chat", "allowed_origins": ["*"]})
    settings.put("widget", "off", {"id": "off", "workstream": "chat", "enabled": False})
    settings.put("auth_setting", "portal", {"id": "portal", "type": "jwt", "public_key_url": "https://portal.example.com/k"})
    settings.put(
        "auth_setting",
        "portal-custom",
        {
            "id": "portal-custom",
            "type": "jwt",
            "public_key_url": "https://portal.example.com/k",
            "client_function": "myApp.chatToken",
        },
    )
    settings.put("widget", "signed", {"id": "signed", "workstream": "chat", "auth_setting": "portal", "ask_contact": False})
    settings.put(
        "widget", "signed2", {"id": "signed2", "workstream": "chat", "auth_setting": "portal-custom", "allow_anonymous": True}
    )
    table = env["CONVERSATIONS_TABLE"]
    sessions = DynamoChatSessions(table)
    publisher = SqsPublisher(queue_url, by_conversation_key)
    start_deps = ChatDeps(
        settings=settings,
        secrets=FakeSecrets({}),
        publisher=publisher,
        conversations=DynamoConversations(table),
        links=_NoLinks(),
        keys=KeyStore(),
        secrets_prefix="switchboard/unit",
        clock=clock,
        sessions=sessions,
    )
    holder: list[str | None] = [SCRIPT]
    deps = SessionDeps(
        settings=settings, sessions=sessions, publisher=publisher, widget_script=lambda: holder[0], clock=clock, sleep=clock.sleep
    )
    return ChatStack(settings, DynamoConversations(table), sessions, start_deps, deps, clock, queue_url, table, holder)


class _NoLinks:
    def mark_used(self, link_id: str, *, expires_at: int) -> bool:
        raise AssertionError("a chat start records no sign-in link")
