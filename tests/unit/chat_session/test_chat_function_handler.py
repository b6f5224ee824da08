"""The chat Lambda end to end on moto (API Gateway events in and out), and the template and local gateway
pieces it needs: its routes, OPTIONS preflights that API Gateway and `switchboard local` both serve."""

from __future__ import annotations

import importlib
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from infra.local.gateway import Gateway, Route
from infra.local.template import create_resources, load, plan
from switchboard.aws.settings_store import DynamoSettings

ROOT = Path(__file__).resolve().parents[3]
PORTAL = "https://portal.example.com"


class Context:
    function_name = "chat"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:chat"
    aws_request_id = "req-chat"


def event(
    method: str,
    path: str,
    params: dict[str, str],
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "queryStringParameters": query,
        "pathParameters": params,
        "requestContext": {"requestId": "r-1"},
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


@pytest.fixture
def apps(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    p = plan(ROOT / "template.yaml", stack="unit", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=30)
    urls = create_resources(p)
    for fn in ("ChatFunction", "TokenValidateFunction"):
        for key, value in p.functions[fn].env.items():
            monkeypatch.setenv(key, urls.get("InboundQueue", value) if key == "INBOUND_QUEUE_URL" else value)
    settings = DynamoSettings(p.functions["ChatFunction"].env["SETTINGS_TABLE"], ttl_seconds=0)
    settings.put("workstream", "chat", {"id": "chat", "fallback_queue": "general"})
    settings.put("widget", "web", {"id": "web", "workstream": "chat", "allowed_origins": [PORTAL]})
    chat = importlib.reload(importlib.import_module("functions.chat.app"))
    start = importlib.reload(importlib.import_module("functions.token_validate.app"))
    yield chat, start


def test_start_send_read_end_through_the_lambda_handlers(apps: tuple[ModuleType, ModuleType]) -> None:
    chat, start = apps
    origin = {"Origin": PORTAL, "Content-Type": "application/json"}
    started = start.handler(
        event("POST", "/chat/web/conversations", {"widget_id": "web"}, headers=origin, body={"text": "hi"}), Context()
    )
    assert started["statusCode"] == 201
    assert started["headers"]["Access-Control-Allow-Origin"] == PORTAL
    doc = json.loads(started["body"])
    cid, token = doc["conversation_id"], doc["session_token"]
    auth = {**origin, "Authorization": f"Bearer {token}"}
    base = f"/chat/web/conversations/{cid}"
    params = {"widget_id": "web", "conversation_id": cid}
    sent = chat.handler(
        event("POST", f"{base}/messages", params, headers=auth, body={"client_message_id": "m1", "text": "yo"}), Context()
    )
    assert sent["statusCode"] == 202
    assert (sent["headers"]["Access-Control-Allow-Origin"], sent["headers"]["Vary"], sent["headers"]["Cache-Control"]) == (
        PORTAL,
        "Origin",
        "no-store",
    )
    read = chat.handler(event("GET", f"{base}/messages", params, headers=auth, query={"wait": "0"}), Context())
    assert read["statusCode"] == 200 and json.loads(read["body"])["status"] == "open"
    preflight = chat.handler(event("OPTIONS", f"{base}/messages", params, headers={"Origin": PORTAL}), Context())
    assert (
        preflight["statusCode"] == 204 and preflight["headers"]["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    )
    assert chat.handler(event("POST", f"{base}/end", params, headers=auth), Context())["statusCode"] == 200
    again = chat.handler(
        event("POST", f"{base}/messages", params, headers=auth, body={"client_message_id": "m2", "text": "x"}), Context()
    )
    assert (again["statusCode"], json.loads(again["body"])["error"]) == (409, "conversation_closed")
    script = chat.handler(event("GET", "/chat/web/widget.js", {"widget_id": "web"}), Context())
    assert script["statusCode"] == 200
    assert script["headers"]["Content-Type"] == "application/javascript; charset=utf-8"
    assert script["headers"]["Cache-Control"] == "public, max-age=300"


# -- the template ------------------------------------------------------------------------------------------


def test_the_chat_function_serves_its_routes_and_every_preflight_publicly() -> None:
    template = load(ROOT / "template.yaml")
    function = template["Resources"]["ChatFunction"]
    events = [e["Properties"] for e in function["Properties"]["Events"].values()]
    routes = {(e["Method"].upper(), e["Path"]) for e in events}
    base = "/chat/{widget_id}/conversations/{conversation_id}"
    assert routes == {
        ("POST", f"{base}/messages"),
        ("GET", f"{base}/messages"),
        ("POST", f"{base}/end"),
        ("GET", "/chat/{widget_id}/widget.js"),
        ("GET", "/chat/{widget_id}/config"),
        ("OPTIONS", "/chat/{widget_id}/conversations"),
        ("OPTIONS", f"{base}/messages"),
        ("OPTIONS", f"{base}/end"),
        ("OPTIONS", "/chat/{widget_id}/config"),
    }
    assert all(e["Auth"] == {"Authorizer": "NONE"} for e in events)  # a preflight carries no credentials


def test_the_chat_functions_timeout_fits_a_long_poll_inside_api_gateways_limit() -> None:
    from switchboard.chat_session import MAX_WAIT_SECONDS

    timeout = int(load(ROOT / "template.yaml")["Resources"]["ChatFunction"]["Properties"]["Timeout"])
    assert MAX_WAIT_SECONDS + 3 <= timeout < 29


def test_the_chat_functions_only_write_is_a_sessions_end() -> None:
    statements = load(ROOT / "template.yaml")["Resources"]["ChatFunction"]["Properties"]["Policies"][0]["Statement"]
    (update,) = [s for s in statements if "dynamodb:UpdateItem" in s["Action"]]
    assert update["Action"] == ["dynamodb:UpdateItem"]
    assert update["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["s#*"]}}
    actions = {a for s in statements for a in s["Action"]}
    assert not actions & {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "secretsmanager:GetSecretValue"}


# -- the local gateway ------------------------------------------------------------------------------------------


def test_the_local_stack_derives_options_routes_and_extra_environments_from_the_template() -> None:
    p = plan(ROOT / "template.yaml", stack="unit", endpoint="http://127.0.0.1:1", visibility_timeout=2)
    chat = p.functions["ChatFunction"]
    assert ("OPTIONS", "/chat/{widget_id}/conversations/{conversation_id}/messages") in chat.routes
    assert ("OPTIONS", "/chat/{widget_id}/conversations") in chat.routes
    assert chat.environments > 1 and chat.timeout == 25
    assert p.functions["TokenValidateFunction"].environments == 1


class _Echo:
    """A stand-in function for the gateway: answers with headers, and can hold a request until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.spec = type("Spec", (), {"logical_id": "Echo"})()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        if event["httpMethod"] == "GET" and event.get("queryStringParameters"):
            self.release.wait(5)
        return {
            "statusCode": 204 if event["httpMethod"] == "OPTIONS" else 200,
            "headers": {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "https://p.example", "Vary": "Origin"},
            "body": "" if event["httpMethod"] == "OPTIONS" else event["httpMethod"],
            "isBase64Encoded": False,
        }


def test_the_local_gateway_answers_options_and_passes_the_functions_headers() -> None:
    echo = _Echo()
    routes = [Route("OPTIONS", "/chat/{widget_id}/config", echo), Route("GET", "/chat/{widget_id}/config", echo)]  # type: ignore[arg-type]
    gateway = Gateway(routes, "127.0.0.1", 0)
    gateway.start()
    try:
        url = f"http://127.0.0.1:{gateway.port}/chat/web/config"
        with urllib.request.urlopen(urllib.request.Request(url, method="OPTIONS")) as answer:
            assert answer.status == 204
            assert answer.headers["Access-Control-Allow-Origin"] == "https://p.example"
            assert answer.headers["Vary"] == "Origin"
        with urllib.request.urlopen(url) as answer:
            assert answer.read() == b"GET" and answer.headers["Content-Type"] == "text/plain"
    finally:
        gateway.stop()


def test_a_function_with_several_local_environments_serves_a_request_while_another_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infra.local import runtime
    from infra.local.template import Function

    from . import _slow

    monkeypatch.setattr(runtime.importlib, "import_module", lambda name: _slow)
    function = runtime.LocalFunction(Function("Echo", "functions/echo", "app.handler", {}, [], environments=2), "unit")
    started = threading.Event()
    held = threading.Thread(target=lambda: function.invoke({"hold": True, "started": started}))
    held.start()
    try:
        assert started.wait(5)
        assert function.invoke({"hold": False}) == "quick"  # not queued behind the held request
    finally:
        _slow.HOLD.set()
        held.join(5)
    single = runtime.LocalFunction(Function("Echo", "functions/echo", "app.handler", {}, []), "unit")
    assert single.lock.acquire(blocking=False)
    assert not single.lock.acquire(blocking=False)  # one environment: a second request waits its turn
    single.lock.release()
