"""The token_validate Lambda handler on moto: API Gateway events in, SQS messages out, route opens what it said.

Also the pieces around it that only make sense against the stack's real resources: the state key
`switchboard apply` creates, `switchboard auth-link`, and the template's policy for the function.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import responses
from moto import mock_aws

from infra.admin import state_key
from infra.admin.auth_link import link
from infra.admin.resources import Resources
from infra.local.template import create_resources, load, plan
from switchboard import route_stage
from switchboard.aws import clients
from switchboard.aws.conversation_store import DynamoConversations
from switchboard.aws.settings_store import DynamoSettings
from switchboard.chat_auth import KeyStore
from switchboard.envelope import Customer, Envelope

from ._support import CONTACT, KEY_URL, FakeGetter, KeyPair, claims, key_array, sign

ROOT = Path(__file__).resolve().parents[3]
TOKEN_URL = "https://idp.example.com/oauth2/token"
USERINFO_URL = "https://idp.example.com/oauth2/userinfo"
AUTHORIZE_URL = "https://idp.example.com/oauth2/authorize?prompt=login"
CLIENT_SECRET = "handler-client-SECRET-1c1c"


class LambdaContext:
    function_name = "token_validate"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:token_validate"
    aws_request_id = "req-lambda-1"


@dataclass
class Stack:
    resources: Resources
    app: ModuleType
    getter: FakeGetter

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self.app.handler(event, LambdaContext())
        return answer

    def inbound(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        got = sqs.receive_message(QueueUrl=self.resources.inbound_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
        return got.get("Messages", [])


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, pair_a: KeyPair, clock: Any) -> Iterator[Stack]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "SWITCHBOARD_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    clients.client.cache_clear()
    with mock_aws():
        p = plan(ROOT / "template.yaml", stack="unit", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=30)
        create_resources(p)
        for key, value in p.functions["TokenValidateFunction"].env.items():
            monkeypatch.setenv(key, value)
        resources = Resources.from_outputs(p.outputs, api_url="https://api.example.com/v1", endpoint_url=None, region=None)
        settings = DynamoSettings(resources.settings_table, ttl_seconds=0)
        settings.put("workstream", "chat", {"id": "chat", "fallback_queue": "general", "rules": [_vip_rule()]})
        settings.put("workstream", "social", {"id": "social", "fallback_queue": "general", "rules": [_vip_rule()]})
        portal = {"id": "portal", "type": "jwt", "public_key_url": KEY_URL, "issuer": "contosohelp.com"}
        settings.put("auth_setting", "portal", portal)
        settings.put("auth_setting", "oidc", _oidc())
        settings.put("auth_setting", "oidc-no-authorize", {**_oidc(), "id": "oidc-no-authorize", "authorize_url": None})
        settings.put("widget", "web", {"id": "web", "workstream": "chat", "auth_setting": "portal"})
        settings.put("account", "line-tokyo", {"id": "line-tokyo", "channel": "line", "workstream": "social"})
        sm = boto3.client("secretsmanager")
        sm.create_secret(Name=f"{resources.secrets_prefix}/auth/oidc", SecretString=json.dumps({"client_secret": CLIENT_SECRET}))
        assert state_key.ensure(sm, resources.secrets_prefix) is True

        app = importlib.import_module("functions.token_validate.app")
        getter = FakeGetter({KEY_URL: key_array(("k1", pair_a, 4_000_000_000))})
        deps = importlib.import_module("switchboard.aws.wiring").chat_deps()
        assert deps.keys.allow_http is False  # deployed: https only
        deps.keys = KeyStore(getter=getter)  # the key endpoint is the portal's; here a scripted one
        monkeypatch.setattr(app, "DEPS", deps)
        yield Stack(resources, app, getter)
    clients.client.cache_clear()


def _vip_rule() -> dict[str, Any]:
    return {"name": "VIP", "queue": "vip", "priority": 1, "when": [{"field": "context.msdyn_isvip", "op": "eq", "value": "true"}]}


def _oidc() -> dict[str, Any]:
    return {
        "id": "oidc",
        "type": "oauth2",
        "token_url": TOKEN_URL,
        "userinfo_url": USERINFO_URL,
        "authorize_url": AUTHORIZE_URL,
        "redirect_url": "https://api.example.com/v1/auth/oidc/callback",
        "client_id": "switchboard app",
        "scope": "openid profile",
        "secret_keys": ["client_secret"],
    }


def chat_event(widget: str, token: str | None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return {
        "resource": "/chat/{widget_id}/conversations",
        "path": f"/chat/{widget}/conversations",
        "httpMethod": "POST",
        "headers": headers,
        "pathParameters": {"widget_id": widget},
        "queryStringParameters": None,
        "requestContext": {"requestId": "req-apigw-1"},
        "body": json.dumps(body or {}),
        "isBase64Encoded": False,
    }


def callback_event(setting: str, query: dict[str, str]) -> dict[str, Any]:
    return {
        "resource": "/auth/{auth_setting_id}/callback",
        "path": f"/auth/{setting}/callback",
        "httpMethod": "GET",
        "headers": {"Accept": "text/html"},
        "pathParameters": {"auth_setting_id": setting},
        "queryStringParameters": query or None,
        "requestContext": {"requestId": "req-apigw-2"},
        "body": None,
        "isBase64Encoded": False,
    }


def route(stack: Stack, message: dict[str, Any]) -> dict[str, Any]:
    deps = route_stage.RouteDeps(
        settings=DynamoSettings(stack.resources.settings_table, ttl_seconds=0),
        conversations=DynamoConversations(stack.resources.conversations_table),
        crm_queue=_Discard(),
    )
    return route_stage.process(Envelope.from_json(message["Body"]), deps)


class _Discard:
    def publish(self, envelopes: Any) -> None:
        return None


# -- chat start ---------------------------------------------------------------------------------------


def test_chat_start_enqueues_one_envelope_that_route_opens_under_the_answered_id(stack: Stack, pair_a: KeyPair) -> None:
    vip = claims(lwicontexts=json.dumps({"msdyn_isvip": "true"}), exp=3_999_999_999, iat=1_700_000_000, nbf=None)
    answer = stack.invoke(chat_event("web", sign(pair_a, vip, kid="k1"), {"text": "hello"}))
    assert (answer["statusCode"], answer["headers"]["Content-Type"]) == (201, "application/json")
    created = json.loads(answer["body"])
    assert (created["authenticated"], created["contact_id"]) == (True, CONTACT)

    (message,) = stack.inbound()
    envelope = Envelope.from_json(message["Body"])
    assert envelope.conversation_id == created["conversation_id"]
    assert message["Attributes"]["MessageGroupId"] == envelope.conversation_key
    assert envelope.correlation_id == "req-apigw-1"

    decided = route(stack, message)
    assert (decided["conversation_id"], decided["queue"]) == (created["conversation_id"], "vip")
    stored = DynamoConversations(stack.resources.conversations_table).get(created["conversation_id"])
    assert stored is not None and stored.identity.contact_id == CONTACT and stored.channel == "chat"


def test_refused_chat_start_enqueues_nothing(stack: Stack, pair_a: KeyPair) -> None:
    for token, code in [(None, "missing_token"), (sign(pair_a, kid="k2"), "unknown_key"), ("garbage", "invalid_token")]:
        answer = stack.invoke(chat_event("web", token))
        assert (answer["statusCode"], json.loads(answer["body"])["error"]) == (401, code)
    assert stack.invoke(chat_event("nope", None))["statusCode"] == 404
    bad = {**chat_event("web", None), "body": "%%%", "isBase64Encoded": True}
    assert stack.invoke(bad)["statusCode"] == 400
    assert stack.inbound() == []


# -- the callback, with auth-link minting the state -----------------------------------------------------------


def _line_conversation(stack: Stack) -> str:
    envelope = Envelope(
        id="line:line-tokyo:01JX",
        channel="line",
        account_id="line-tokyo",
        customer=Customer(id="U" + "b" * 32),
        kind="text",
        text="hello",
        sent_at=_now_ms(),
        received_at=_now_ms(),
        correlation_id="c",
    )
    return str(route(stack, {"Body": envelope.to_json()})["conversation_id"])


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@responses.activate
def test_auth_link_then_callback_signs_in_and_route_reroutes(stack: Stack) -> None:
    conversation_id = _line_conversation(stack)
    outcome = link(stack.resources, conversation_id, "oidc")
    assert (outcome.code, outcome.error, outcome.warnings) == (0, None, ())
    assert outcome.url is not None
    parts = urlsplit(outcome.url)
    assert outcome.url.startswith("https://idp.example.com/oauth2/authorize?prompt=login&response_type=code&")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (query["client_id"], query["redirect_uri"], query["scope"]) == (
        "switchboard app",
        "https://api.example.com/v1/auth/oidc/callback",
        "openid profile",
    )
    assert "%20" in outcome.url and "+" not in outcome.url  # RFC 3986 escaping for the spaces

    responses.add(responses.POST, TOKEN_URL, json={"access_token": "access-1", "token_type": "Bearer"})
    responses.add(responses.GET, USERINFO_URL, json={"sub": "member-7", "msdyn_isvip": "true"})
    answer = stack.invoke(callback_event("oidc", {"code": "code-1", "state": query["state"]}))
    assert answer["statusCode"] == 200, answer["body"]
    assert answer["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "client_secret=handler-client-SECRET-1c1c" in str(responses.calls[0].request.body)

    (message,) = stack.inbound()
    decided = route(stack, message)
    assert (decided["conversation_id"], decided["queue"]) == (conversation_id, "vip")  # re-routed on the new identity
    stored = DynamoConversations(stack.resources.conversations_table).get(conversation_id)
    assert stored is not None
    assert (stored.identity.authenticated, stored.identity.contact_id, stored.message_count) == (True, "member-7", 2)


@responses.activate
def test_a_sign_in_link_works_once_and_the_first_identity_stays(stack: Stack) -> None:
    conversation_id = _line_conversation(stack)
    outcome = link(stack.resources, conversation_id, "oidc")
    assert outcome.url is not None
    state = parse_qs(urlsplit(outcome.url).query)["state"][0]
    responses.add(responses.POST, TOKEN_URL, json={"access_token": "access-1", "token_type": "Bearer"})
    responses.add(responses.GET, USERINFO_URL, json={"sub": "member-7", "msdyn_isvip": "true"})
    responses.add(responses.POST, TOKEN_URL, json={"access_token": "access-2", "token_type": "Bearer"})
    responses.add(responses.GET, USERINFO_URL, json={"sub": "intruder-9"})

    assert stack.invoke(callback_event("oidc", {"code": "code-1", "state": state}))["statusCode"] == 200
    replay = stack.invoke(callback_event("oidc", {"code": "code-2", "state": state}))
    assert replay["statusCode"] == 401 and "invalid_token" in replay["body"] and "already used" in replay["body"]
    assert len(responses.calls) == 2  # the second code was never spent

    (message,) = stack.inbound()
    route(stack, message)
    stored = DynamoConversations(stack.resources.conversations_table).get(conversation_id)
    assert stored is not None and stored.identity.contact_id == "member-7"

    # The record: keyed by a digest (never the state), expiring with the link through the table's TTL attribute.
    items = boto3.client("dynamodb").scan(TableName=stack.resources.conversations_table)["Items"]
    (used,) = [i for i in items if i["pk"]["S"].startswith("l#")]
    assert used["ttl"]["N"] == state.split(".")[2]
    assert state not in json.dumps(used) and state.split(".")[3] not in json.dumps(used)


def test_the_used_links_store_writes_once_and_reports_an_unusable_table(stack: Stack) -> None:
    from switchboard.aws.conversation_store import DynamoUsedLinks
    from switchboard.errors import StoreUnavailable

    links = DynamoUsedLinks(stack.resources.conversations_table)
    assert links.mark_used("ab" * 32, expires_at=4_000_000_000) is True
    assert links.mark_used("ab" * 32, expires_at=4_000_000_000) is False
    assert links.mark_used("cd" * 32, expires_at=4_000_000_000) is True
    with pytest.raises(StoreUnavailable, match="ResourceNotFoundException"):
        DynamoUsedLinks("no-such-table").mark_used("ab" * 32, expires_at=4_000_000_000)


def test_auth_link_states_expire_after_link_minutes(stack: Stack) -> None:
    conversation_id = _line_conversation(stack)
    now = float(int(_now_ms() / 1000))

    def expiry(setting: str, **kwargs: Any) -> int:
        outcome = link(stack.resources, conversation_id, setting, now=now, **kwargs)
        assert outcome.url is not None, outcome.error
        return int(parse_qs(urlsplit(outcome.url).query)["state"][0].split(".")[2])

    assert expiry("oidc") == now + 15 * 60  # the default
    settings = DynamoSettings(stack.resources.settings_table, ttl_seconds=0)
    settings.put("auth_setting", "oidc-5", {**_oidc(), "id": "oidc-5", "link_minutes": 5})
    assert expiry("oidc-5") == now + 5 * 60
    assert expiry("oidc-5", valid_for=60) == now + 60  # an admin may shorten one link
    longer = link(stack.resources, conversation_id, "oidc-5", valid_for=301, now=now)
    assert longer.code == 2 and longer.error is not None and "link_minutes" in longer.error  # but never lengthen it


def test_callback_with_a_state_from_another_stack_key_is_refused(stack: Stack) -> None:
    from switchboard.chat_auth import sign_state

    conversation_id = _line_conversation(stack)
    foreign = sign_state(conversation_id, "oidc", 4_000_000_000, b"another-stacks-key-" + b"x" * 16)
    answer = stack.invoke(callback_event("oidc", {"code": "c", "state": foreign}))
    assert answer["statusCode"] == 401 and "invalid_token" in answer["body"]
    assert stack.inbound() == []


def test_auth_link_refusals(stack: Stack) -> None:
    conversation_id = _line_conversation(stack)
    assert link(stack.resources, conversation_id, "nope").code == 2
    assert link(stack.resources, conversation_id, "portal").code == 2  # a jwt setting has no sign-in page
    missing = link(stack.resources, conversation_id, "oidc-no-authorize")
    assert missing.code == 2 and missing.error is not None and "authorize_url" in missing.error
    assert link(stack.resources, "no-such-conversation", "oidc").code == 1
    assert link(stack.resources, conversation_id, "oidc", valid_for=0).code == 2
    closed = link(stack.resources, conversation_id, "oidc", now=4_000_000_000)  # long after it went quiet
    assert closed.code == 1 and closed.error is not None and "closed" in closed.error


# -- the state key ---------------------------------------------------------------------------------------


def test_state_key_is_made_once_and_kept(stack: Stack) -> None:
    sm = boto3.client("secretsmanager")
    prefix = stack.resources.secrets_prefix
    key = state_key.read(sm, prefix)
    assert key is not None and len(key) == 32
    assert state_key.ensure(sm, prefix) is False
    assert state_key.read(sm, prefix) == key  # a second apply never rotates it (that would void sent links)


def test_an_unusable_state_key_is_left_alone_and_reported(stack: Stack) -> None:
    sm = boto3.client("secretsmanager")
    prefix = stack.resources.secrets_prefix
    sm.put_secret_value(SecretId=state_key.name(prefix), SecretString='{"key": "short"}')
    assert state_key.ensure(sm, prefix) is False
    with pytest.raises(ValueError, match="state key"):
        state_key.read(sm, prefix)
    answer = stack.invoke(callback_event("oidc", {"code": "c", "state": "s"}))
    assert answer["statusCode"] == 500
    assert "short" not in answer["body"]


# -- the template ----------------------------------------------------------------------------------------


def test_template_gives_token_validate_least_privilege() -> None:
    function = load(ROOT / "template.yaml")["Resources"]["TokenValidateFunction"]["Properties"]
    statements = function["Policies"][0]["Statement"]
    actions = sorted(a for s in statements for a in s["Action"])
    assert actions == sorted(
        ["dynamodb:GetItem", "dynamodb:GetItem", "dynamodb:PutItem", "secretsmanager:GetSecretValue", "sqs:SendMessage"]
    ), "read settings and conversations, record a sign-in link's use, read its secrets, enqueue: nothing else"
    assert all("*" not in a for a in actions)
    (put,) = [s for s in statements if "dynamodb:PutItem" in s["Action"]]
    assert put["Action"] == ["dynamodb:PutItem"]  # its own statement: the condition must not narrow the reads
    # used links and chat sessions, never a conversation
    assert put["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["l#*", "s#*"]}}
    rendered = json.dumps(statements)
    assert "ConversationsTable" in rendered and "/auth/*" in rendered and "/stack/state-key-??????" in rendered
    assert "/account/" not in rendered and "crm" not in rendered
    assert "CONVERSATIONS_TABLE" in function["Environment"]["Variables"]
    assert "SWITCHBOARD_ALLOW_HTTP" not in json.dumps(function)  # deployed stacks fetch keys over https only
