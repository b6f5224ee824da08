"""The template as CloudFormation receives it: SAM's transform (samtranslator) of template.yaml, checked for what a
safe deploy needs. Translating needs the SAM venv (`make deploy-check` makes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._rehearsal import ROOT, translate

pytestmark = pytest.mark.deploy


def _template_functions() -> tuple[str, ...]:
    """Every function the template declares: a new one is checked without a change here."""
    from infra.local.template import load

    resources = load(ROOT / "template.yaml")["Resources"]
    return tuple(name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function")


FUNCTIONS = _template_functions()


def _packaged(tmp_path: Path, layer_key: str = "layer.zip") -> Path:
    """template.yaml as `sam package` leaves it: every CodeUri and ContentUri an S3 location."""
    lines = []
    for line in (ROOT / "template.yaml").read_text(encoding="utf-8").splitlines():
        indent, stripped = line[: len(line) - len(line.lstrip())], line.strip()
        if stripped.startswith("CodeUri:"):
            lines.append(f"{indent}CodeUri: s3://artifacts/{stripped.split('/')[-2]}.zip")
        elif stripped.startswith("ContentUri:"):
            lines.append(f"{indent}ContentUri: s3://artifacts/{layer_key}")
        else:
            lines.append(line)
    path = tmp_path / f"packaged-{layer_key}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def translated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return translate(_packaged(tmp_path_factory.mktemp("t")), {"AlarmEmail": "ops@example.com"})


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_one_stage_v1_with_access_logs_and_no_stray_stage(translated: dict[str, Any]) -> None:
    stages = _of_type(translated, "AWS::ApiGateway::Stage")
    assert [s["Properties"]["StageName"] for s in stages.values()] == ["v1"]
    (stage,) = stages.values()
    assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "querystring" not in stage["Properties"]["AccessLogSetting"]["Format"].lower()
    assert translated["Resources"]["Api"]["DependsOn"] == "ApiGatewayAccount"
    assert translated["Outputs"]["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1"
    }


def test_the_api_and_the_queues_invoke_the_live_alias(translated: dict[str, Any]) -> None:
    aliases = {k for k in _of_type(translated, "AWS::Lambda::Alias")}
    assert aliases == {f"{f}Aliaslive" for f in FUNCTIONS}
    for mapping in _of_type(translated, "AWS::Lambda::EventSourceMapping").values():
        assert mapping["Properties"]["FunctionName"]["Ref"] in aliases
    paths = translated["Resources"]["Api"]["Properties"]["Body"]["paths"]
    uris = [op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"] for path in paths.values() for op in path.values()]
    from infra.local.template import load

    resources = load(ROOT / "template.yaml")["Resources"]
    routes = [e for r in resources.values() for e in (r.get("Properties") or {}).get("Events", {}).values() if e["Type"] == "Api"]
    assert len(uris) == len(routes) and all("Aliaslive}" in uri for uri in uris), uris
    for permission in _of_type(translated, "AWS::Lambda::Permission").values():
        assert permission["Properties"]["FunctionName"]["Ref"] in aliases


def test_each_deployment_group_rolls_back_on_its_functions_alarms(translated: dict[str, Any]) -> None:
    alarms = _of_type(translated, "AWS::CloudWatch::Alarm")
    groups = _of_type(translated, "AWS::CodeDeploy::DeploymentGroup")
    assert set(groups) == {f"{f}DeploymentGroup" for f in FUNCTIONS}
    for name, group in groups.items():
        props = group["Properties"]
        names = [a["Name"]["Ref"] for a in props["AlarmConfiguration"]["Alarms"]]
        assert names and set(names) <= set(alarms), name
        assert f"{name.removesuffix('FunctionDeploymentGroup')}ErrorsAlarm" in names
        assert "DEPLOYMENT_STOP_ON_ALARM" in props["AutoRollbackConfiguration"]["Events"]


def test_a_new_layer_alone_publishes_new_function_versions(tmp_path: Path) -> None:
    """The core lives in the layer: without AutoPublishAliasAllProperties a deploy that changes only the layer
    keeps every alias on the old version, silently running the old code."""
    before = translate(_packaged(tmp_path, "layer-1.zip"), {})
    after = translate(_packaged(tmp_path, "layer-2.zip"), {})
    for function in FUNCTIONS:
        versions = [
            {k for k, v in t["Resources"].items() if v["Type"] == "AWS::Lambda::Version" and k.startswith(function)}
            for t in (before, after)
        ]
        assert versions[0] and versions[0] != versions[1], function


def test_layer_versions_go_with_the_stack(translated: dict[str, Any]) -> None:
    (layer,) = _of_type(translated, "AWS::Lambda::LayerVersion").values()
    assert layer["DeletionPolicy"] == "Delete"


def test_alarm_email_is_optional(tmp_path: Path, translated: dict[str, Any]) -> None:
    assert translated["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    (topic,) = _of_type(translated, "AWS::SNS::Topic").values()
    assert topic["Condition"] == "HasAlarmEmail"
    for alarm in _of_type(translated, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == {
            "Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
        }
