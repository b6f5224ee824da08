"""What template.yaml must keep for a deployed stack to be watched, deployed safely and built without python3.12.
(Read from the file as written; tests/deploy/test_template.py checks SAM's transform of it.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from infra.local.template import load

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
ALARMS = {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def _alarms_on(namespace: str, metric: str) -> list[dict[str, Any]]:
    return [a for a in ALARMS.values() if a["Namespace"] == namespace and a["MetricName"] == metric]


def _dimension(alarm: dict[str, Any], name: str) -> Any:
    return next(d["Value"] for d in alarm["Dimensions"] if d["Name"] == name)


def test_every_function_has_an_errors_and_a_throttles_alarm() -> None:
    for metric in ("Errors", "Throttles"):
        watched = {_dimension(a, "FunctionName")["Ref"] for a in _alarms_on("AWS/Lambda", metric)}
        assert watched == set(FUNCTIONS), metric


def test_every_dead_letter_queue_alarms_on_its_first_message_and_every_queue_on_its_oldest() -> None:
    queues = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::SQS::Queue"}
    dead_letter = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    assert dead_letter == {"InboundDeadLetterQueue", "CrmDeadLetterQueue", "OutboundDeadLetterQueue"}
    depth = _alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert {_dimension(a, "QueueName")["Fn::GetAtt"][0] for a in depth} == dead_letter
    assert all(a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold" for a in depth)
    aged = {_dimension(a, "QueueName")["Fn::GetAtt"][0] for a in _alarms_on("AWS/SQS", "ApproximateAgeOfOldestMessage")}
    assert aged == set(queues) - dead_letter


def test_the_api_5xx_alarm_watches_this_api_and_stage() -> None:
    (alarm,) = _alarms_on("AWS/ApiGateway", "5XXError")
    api = RESOURCES["Api"]["Properties"]
    assert _dimension(alarm, "ApiName") == api["Name"]
    assert _dimension(alarm, "Stage") == api["StageName"]


def test_every_alarm_mails_the_optional_topic_and_ignores_missing_data() -> None:
    assert TEMPLATE["Parameters"]["AlarmEmail"]["Default"] == ""
    assert RESOURCES["AlarmTopic"]["Condition"] == "HasAlarmEmail"
    for name, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}, name
        assert alarm["TreatMissingData"] == "notBreaching", name


def test_deploys_go_through_the_live_alias_with_a_rollback_alarm_per_function() -> None:
    globals_fn = TEMPLATE["Globals"]["Function"]
    assert globals_fn["AutoPublishAlias"] == "live"
    assert globals_fn["DeploymentPreference"]["Type"] == {"Ref": "DeploymentPreference"}
    preference = TEMPLATE["Parameters"]["DeploymentPreference"]
    assert preference["Default"] == "AllAtOnce" and "Canary10Percent5Minutes" in preference["AllowedValues"]
    for name, function in FUNCTIONS.items():
        props = function["Properties"]
        assert props["AutoPublishAliasAllProperties"] is True, name
        rollback = {a["Ref"] for a in props["DeploymentPreference"]["Alarms"]}
        assert f"{name.removesuffix('Function')}ErrorsAlarm" in rollback, name
        assert rollback <= set(ALARMS), name
    assert RESOURCES["CoreLayer"]["Properties"]["RetentionPolicy"] == "Delete"
    assert RESOURCES["CoreLayer"]["Properties"]["PublishLambdaVersion"] is True


def test_tracing_and_snapstart_are_parameters_off_by_default() -> None:
    globals_fn = TEMPLATE["Globals"]["Function"]
    assert globals_fn["Tracing"] == {"Ref": "Tracing"} and TEMPLATE["Parameters"]["Tracing"]["Default"] == "PassThrough"
    assert globals_fn["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
    assert TEMPLATE["Parameters"]["SnapStart"]["Default"] == "None"
    assert TEMPLATE["Parameters"]["SnapStart"]["AllowedValues"] == ["None", "PublishedVersions"]
    assert TEMPLATE["Globals"]["Api"]["OpenApiVersion"] == "3.0.1"  # no extra `Stage` stage


def test_every_route_declares_who_may_call_it() -> None:
    """Public on purpose, explicitly; anything else would need SigV4. (SAM's guided deploy also stops asking.)"""
    assert RESOURCES["Api"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    events = [e for f in FUNCTIONS.values() for e in f["Properties"].get("Events", {}).values() if e["Type"] == "Api"]
    paths = {e["Properties"]["Path"] for e in events}
    assert paths >= {"/webhooks/line/{account_id}", "/chat/{widget_id}/conversations", "/crm/{provider}/events"}
    assert all(e["Properties"]["Auth"] == {"Authorizer": "NONE"} for e in events)


def test_sam_build_needs_no_python312_builder() -> None:
    """Every function and the layer build with infra/deploy/Makefile, which has a target for each."""
    makefile = (ROOT / "infra" / "deploy" / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"build-([A-Za-z]+)", makefile))
    for name in [*FUNCTIONS, "CoreLayer"]:
        metadata = RESOURCES[name]["Metadata"]
        assert metadata["BuildMethod"] == "makefile" and metadata["ContextPath"] == "infra/deploy", name
        assert name in targets, name


def test_the_sender_knows_its_queues_last_attempt() -> None:
    """The sender marks a reply failed on the last receive before SQS would dead-letter it: the two must agree."""
    env = RESOURCES["SenderFunction"]["Properties"]["Environment"]["Variables"]
    redrive = RESOURCES["OutboundQueue"]["Properties"]["RedrivePolicy"]
    assert int(env["SWITCHBOARD_MAX_RECEIVES"]) == int(redrive["maxReceiveCount"])
