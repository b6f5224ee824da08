"""The one entry wrapper: no event is ever logged, and an escaped exception is a JSON 500 that quotes nothing."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path
from typing import Any

import pytest
from source_tree import parse

from switchboard import lambda_entry
from switchboard.observability import logger
from switchboard.web import WebhookRequest, WebhookResponse

ROOT = Path(__file__).resolve().parents[2]
SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS1ib2R5LXNlY3JldA=="
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ2aXNpdG9yIn0.c2lnbmF0dXJl"


class Context:
    function_name = "fn"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    aws_request_id = "req-1"


def _event() -> dict[str, Any]:
    return {
        "httpMethod": "POST",
        "path": "/webhooks/line/acct",
        "pathParameters": {"account_id": "acct"},
        "headers": {"X-Line-Signature": SIGNATURE, "Authorization": f"Bearer {JWT}"},
        "queryStringParameters": {"hub.verify_token": "verify-token-value"},
        "body": '{"events":[{"message":{"text":"my card is 4111"}}]}',
        "requestContext": {"requestId": "r-1"},
    }


class Log:
    """The Powertools log lines written during the test (it writes to the stdout it was given)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.buffer = io.StringIO()
        monkeypatch.setattr(logger.registered_handler, "stream", self.buffer)

    def text(self) -> str:
        return self.buffer.getvalue()


@pytest.fixture
def stdout_log(monkeypatch: pytest.MonkeyPatch) -> Log:
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")  # an admin debugging: still no event in the log
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    return Log(monkeypatch)


def test_http_handler_never_logs_the_event(stdout_log: Log) -> None:
    handler = lambda_entry.http(lambda request: WebhookResponse.json(200, {"seen": request.header("x-line-signature")}))
    answer = handler(_event(), Context())
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"seen": SIGNATURE}
    out = stdout_log.text()
    assert out == ""  # nothing at all: in particular not the event
    for secret in (SIGNATURE, JWT, "verify-token-value", "4111"):
        assert secret not in out


def test_an_escaped_exception_is_a_json_500_that_quotes_nothing(stdout_log: Log) -> None:
    def explode(request: WebhookRequest) -> WebhookResponse:
        raise RuntimeError(f"boom with {request.header('authorization')}")

    answer = lambda_entry.http(explode)(_event(), Context())
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"] == "internal_error"
    out = stdout_log.text()
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [r["message"] for r in records] == ["unhandled error"]
    assert records[0]["error"] == "RuntimeError" and records[0]["level"] == "ERROR"
    assert records[0]["at"].startswith("test_lambda_entry.py:") and records[0]["at"].endswith(" explode")
    assert JWT not in out and SIGNATURE not in out


def test_sqs_handler_never_logs_the_event(stdout_log: Log) -> None:
    seen: list[Any] = []

    class Stage:
        def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
            return {"batchItemFailures": [], "records": len(event["Records"])}

    handler = lambda_entry.sqs(Stage(), before=seen.append)
    context = Context()
    assert handler({"Records": [{"body": '{"text": "my card is 4111"}'}]}, context)["records"] == 1
    assert seen == [context]
    assert "4111" not in stdout_log.text()


@pytest.mark.parametrize("app", sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")))
def test_every_function_enters_through_the_wrapper(app: str) -> None:
    """Decorating a handler by hand is how the flags drifted; each function's handler is built by lambda_entry."""
    tree = parse(ROOT / "functions" / app / "app.py")
    decorated = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.decorator_list]
    assert decorated == []
    handler = [
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "handler" for t in n.targets)
    ]
    assert len(handler) == 1 and isinstance(handler[0], ast.Call)
    assert isinstance(handler[0].func, ast.Name) and handler[0].func.id in {"http", "sqs"}
