"""Per-client and per-stage limits the template must keep (README: Limits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.local.template import load

TEMPLATE = load(Path(__file__).resolve().parents[2] / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _param_default(value: Any) -> int:
    if isinstance(value, dict) and "Ref" in value:
        return int(TEMPLATE["Parameters"][value["Ref"]]["Default"])
    return int(value)


def _method_settings() -> dict[tuple[str, str], dict[str, Any]]:
    settings = RESOURCES["Api"]["Properties"]["MethodSettings"]
    return {(s["ResourcePath"], s["HttpMethod"]): s for s in settings}


def test_chat_routes_are_throttled_below_the_api_wide_limit() -> None:
    by_route = _method_settings()
    api_wide = by_route[("/*", "*")]
    for route in (("/~1chat~1{widget_id}~1conversations", "POST"), ("/~1auth~1{auth_setting_id}~1callback", "GET")):
        assert route in by_route, f"no throttling for {route}"
        limits = by_route[route]
        assert _param_default(limits["ThrottlingRateLimit"]) < _param_default(api_wide["ThrottlingRateLimit"])
        assert _param_default(limits["ThrottlingBurstLimit"]) < _param_default(api_wide["ThrottlingBurstLimit"])


def test_throttled_paths_are_routes_the_api_serves() -> None:
    paths = {
        (event["Properties"]["Path"].replace("/", "~1"), event["Properties"]["Method"].upper())
        for resource in RESOURCES.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in (resource["Properties"].get("Events") or {}).values()
        if event["Type"] == "Api"
    }
    for path, method in _method_settings():
        if path != "/*":
            assert (path.removeprefix("/"), method) in paths, f"{method} {path} throttles a route that does not exist"


def test_every_queue_stage_caps_its_concurrency() -> None:
    stages = 0
    for name, resource in RESOURCES.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "SQS":
                stages += 1
                cap = event["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
                assert cap is not None, f"{name} has no MaximumConcurrency"
                assert 2 <= _param_default(cap) <= 1000
    assert stages >= 2
    crm = RESOURCES["CrmWriterFunction"]["Properties"]["Events"]["Crm"]["Properties"]["ScalingConfig"]
    assert _param_default(crm["MaximumConcurrency"]) <= 10  # CRM APIs are the bottleneck (docs/scale.md)
