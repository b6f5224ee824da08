"""The deployed path, rehearsed: a stack created by CloudFormation (moto's) from what `sam build` and `sam package`
made and SAM's transform turned into, then the admin's command and the built handlers against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from . import _rehearsal
from ._rehearsal import ROOT, Rehearsal

pytestmark = pytest.mark.deploy

CONFIG = Path(__file__).resolve().parent / "config.yaml"
EVENTS = ROOT / "events"


@pytest.fixture(scope="module")
def configured(rehearsal: Rehearsal) -> Rehearsal:
    done = rehearsal.switchboard("apply", str(CONFIG))
    assert "created" in done.stdout and "account line-sample" in done.stdout, done.stdout
    return rehearsal


def test_the_stack_wires_each_function_to_its_own_resources(rehearsal: Rehearsal) -> None:
    outputs, lam = rehearsal.outputs, rehearsal.client("lambda")
    env = {
        logical: lam.get_function_configuration(FunctionName=rehearsal.physical[logical])["Environment"]["Variables"]
        for logical in rehearsal.functions
    }
    assert env["WebhookLineFunction"]["INBOUND_QUEUE_URL"] == outputs["InboundQueueUrl"]
    assert env["RouteFunction"]["CRM_QUEUE_URL"] == outputs["CrmQueueUrl"]
    assert env["RouteFunction"]["INBOUND_DLQ_URL"] == outputs["InboundDeadLetterQueueUrl"]
    assert env["CrmWriterFunction"]["CRM_DLQ_URL"] == outputs["CrmDeadLetterQueueUrl"]
    assert {e["SETTINGS_TABLE"] for e in env.values()} == {outputs["SettingsTableName"]}
    # Every function that reads a secret reads it under this stack's own prefix (the chat function reads none).
    assert {e["SECRETS_PREFIX"] for e in env.values() if "SECRETS_PREFIX" in e} == {f"switchboard/{rehearsal.stack}"}
    assert [name for name, e in env.items() if "SECRETS_PREFIX" not in e] == ["ChatFunction"]

    # The queues invoke route and crm_writer (their `live` alias), capped, with partial batch failures.
    by_queue = {m["EventSourceArn"].rsplit(":", 1)[1]: m for m in lam.list_event_source_mappings()["EventSourceMappings"]}
    inbound, crm = (by_queue[outputs[url].rsplit("/", 1)[1]] for url in ("InboundQueueUrl", "CrmQueueUrl"))
    assert rehearsal.function_named(inbound["FunctionArn"]) is rehearsal.functions["RouteFunction"]
    assert rehearsal.function_named(crm["FunctionArn"]) is rehearsal.functions["CrmWriterFunction"]
    assert inbound["ScalingConfig"] == {"MaximumConcurrency": 50} and crm["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert inbound["FunctionResponseTypes"] == crm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    # Every route of the API invokes a function's `live` alias: what a canary shifts.
    apigw = rehearsal.client("apigateway")
    api = rehearsal.physical["Api"]
    routes = {}
    for resource in apigw.get_resources(restApiId=api)["items"]:
        for method in resource.get("resourceMethods") or {}:
            routes[(method, resource["path"])] = apigw.get_integration(
                restApiId=api, resourceId=resource["id"], httpMethod=method
            )["uri"]
    from infra.local.template import load

    declared = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for r in load(ROOT / "template.yaml")["Resources"].values()
        for e in (r.get("Properties") or {}).get("Events", {}).values()
        if e["Type"] == "Api"
    }
    assert set(routes) == declared
    assert all(uri.endswith(":live/invocations") for uri in routes.values()), routes
    for function in rehearsal.functions.values():
        assert function.files["switchboard"] and str(rehearsal.build / "CoreLayer") in _real(function.files["switchboard"])
        assert str(rehearsal.build / "CoreLayer") in _real(function.files["aws_lambda_powertools"])


def _real(path: str | None) -> str:
    return str(Path(path or "").resolve())


def test_the_command_and_the_pipeline_work_against_the_stack(configured: Rehearsal) -> None:
    r = configured
    exported = r.switchboard("export", "--json")
    stored = json.loads(exported.stdout)
    assert {a["id"] for a in stored["accounts"]} == {
        "line-sample",
        "facebook-sample",
        "gbm-sample",
        "whatsapp-sample",
        "instagram-sample",
    }
    (line,) = [a for a in stored["accounts"] if a["id"] == "line-sample"]
    assert line["secrets"] == {"channel_secret": "<set>", "channel_access_token": "<set>"}
    assert "sample-line-channel-secret" not in exported.stdout

    sent = r.switchboard("send", "line", "--account", "line-sample", "--text", "I would like a refund")
    assert sent.stdout.startswith("200"), sent.stdout
    routed = r.drain("InboundQueueUrl")
    assert routed and all(answer == {"batchItemFailures": []} for answer in routed), routed
    written = r.drain("CrmQueueUrl")
    assert written and all(answer == {"batchItemFailures": []} for answer in written), written

    listed = json.loads(r.switchboard("conversations", "list", "--json", "--channel", "line").stdout)
    (conversation,) = [c for c in listed if c["account_id"] == "line-sample"]
    assert conversation["queue"] == "billing"
    shown = json.loads(r.switchboard("conversations", "show", conversation["conversation_id"], "--json").stdout)
    assert [m["text"] for m in shown["messages"]] == ["I would like a refund"]
    assert shown["crm"]["provider"] == "none"
    assert r.switchboard("dlq", "list").stdout.strip() == "no dead letters"


def test_a_message_route_cannot_read_is_dead_lettered_with_its_reason(configured: Rehearsal) -> None:
    r = configured
    r.client("sqs").send_message(
        QueueUrl=r.outputs["InboundQueueUrl"],
        MessageBody='{"v": 999}',
        MessageGroupId="poison",
        MessageDeduplicationId="poison-1",
    )
    answers = r.drain("InboundQueueUrl")
    assert answers == [{"batchItemFailures": []}]  # dead-lettered by route itself, not retried
    rows = json.loads(r.switchboard("dlq", "list", "--stage", "route", "--json").stdout)
    assert len(rows) == 1 and "version" in rows[0]["error"], rows


def test_the_command_names_the_region_it_was_given(configured: Rehearsal) -> None:
    """`--region` is honoured: the stack lives in us-east-1, so another region has no such stack (one line, exit 1)."""
    cmd_env = configured.env()
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from infra.admin.cli import main; sys.exit(main())",
            "--stack",
            configured.stack,
            "--region",
            "eu-west-1",
            "export",
        ],
        env=cmd_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and f"cannot read stack {configured.stack}" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("event", "function", "status"),
    [
        ("webhook_line", "WebhookLineFunction", 200),
        ("webhook_facebook", "WebhookFacebookFunction", 200),
        ("webhook_facebook_verify", "WebhookFacebookFunction", 200),
        ("webhook_gbm", "WebhookGbmFunction", 200),
        ("token_validate", "TokenValidateFunction", 201),
        ("crm_events", "CrmEventsFunction", 404),  # the rehearsal's stack has no CRM: unknown_provider
        ("webhook_whatsapp", "WebhookWhatsAppFunction", 200),
        ("webhook_instagram", "WebhookInstagramFunction", 200),
        ("chat", "ChatFunction", 200),
    ],
)
def test_each_sample_api_event_is_accepted_by_its_built_function(
    configured: Rehearsal, event: str, function: str, status: int
) -> None:
    answer = configured.functions[function].invoke(_event(event))
    assert answer["statusCode"] == status, answer


def test_the_sample_queue_events_drive_route_then_crm_writer(configured: Rehearsal) -> None:
    route = configured.functions["RouteFunction"].invoke(_event("route"))
    assert route == {"batchItemFailures": []}
    crm = configured.functions["CrmWriterFunction"].invoke(_event("crm_writer"))
    assert crm == {"batchItemFailures": []}
    conversation_id = json.loads(_event("route")["Records"][0]["body"])["conversation_id"]
    shown = json.loads(configured.switchboard("conversations", "show", conversation_id, "--json").stdout)
    assert shown["channel"] == "chat" and shown["crm"]["provider"] == "none"


def test_init_cost_of_each_built_function(rehearsal: Rehearsal, capsys: pytest.CaptureFixture[str]) -> None:
    """Reported, not judged (bench/cold_start.py judges): the built code's import + init on this machine."""
    with capsys.disabled():
        for name, function in rehearsal.functions.items():
            print(f"\ninit {name:<24} {function.init_ms:6.0f} ms (built code, Python {_rehearsal.sys.version_info[:2]})", end="")
    assert all(f.init_ms > 0 for f in rehearsal.functions.values())


def _event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded
