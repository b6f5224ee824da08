"""Reads template.yaml and turns its resources into what the local stack creates and runs.

Tables, queues, the bucket, the functions' environment, their API routes and their SQS event
sources all come from the template, so the local stack cannot drift from what SAM deploys.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT = "123456789012"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !GetAtt, !Sub, ...)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return doc


@dataclass
class Plan:
    stack: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> create_table kwargs (+ ttl)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> {name, attributes}
    buckets: dict[str, str] = field(default_factory=dict)  # logical id -> bucket name
    functions: dict[str, Function] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Function:
    logical_id: str
    code_dir: str
    handler: str
    env: dict[str, str]
    routes: list[tuple[str, str]]  # (method, path template)
    queue: str | None = None  # logical id of the SQS event source
    batch_size: int = 10
    report_failures: bool = False
    timeout: int = 10
    # Requests run at once (the template's Metadata.LocalEnvironments; Lambda would start more environments): a
    # function whose requests wait (the chat's long poll) needs more than the one a plain request needs.
    environments: int = 1


class Resolver:
    def __init__(self, template: dict[str, Any], stack: str, names: dict[str, dict[str, str]]) -> None:
        self.template = template
        self.stack = stack
        self.names = names  # logical id -> {"Ref": ..., "Arn": ..., ...}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.names[logical][attr]
            if key == "Fn::Sub":
                return self.sub(arg)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value

    def ref(self, name: str) -> str:
        pseudo = {"AWS::StackName": self.stack, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
        if name in pseudo:
            return pseudo[name]
        if name in self.names:
            return self.names[name]["Ref"]
        param = self.template.get("Parameters", {}).get(name)
        if param is not None:
            return str(param.get("Default", ""))
        raise KeyError(f"template reference {name!r} cannot be resolved locally")

    def sub(self, arg: Any) -> str:
        text = arg if isinstance(arg, str) else arg[0]

        def one(match: re.Match[str]) -> str:
            token = match.group(1)
            if "." in token and not token.startswith("AWS::"):
                logical, attr = token.split(".", 1)
                return self.names[logical][attr]
            return self.ref(token)

        return re.sub(r"\$\{([^}]+)\}", one, text)


def create_resources(p: Plan) -> dict[str, str]:
    """Create the plan's tables, queues and buckets with boto3's default clients; return queue URLs by logical id."""
    import boto3

    dynamodb, sqs, s3 = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("s3")
    for table in p.tables.values():
        dynamodb.create_table(**table["create"])
        if table["ttl"]:
            dynamodb.update_time_to_live(
                TableName=table["create"]["TableName"],
                TimeToLiveSpecification={
                    "AttributeName": table["ttl"]["AttributeName"],
                    "Enabled": bool(table["ttl"]["Enabled"]),
                },
            )
    urls: dict[str, str] = {}
    # Dead-letter queues first: a redrive policy names its target.
    for logical, queue in sorted(p.queues.items(), key=lambda kv: "RedrivePolicy" in kv[1]["attributes"]):
        urls[logical] = sqs.create_queue(QueueName=queue["name"], Attributes=queue["attributes"])["QueueUrl"]
    for bucket in p.buckets.values():
        s3.create_bucket(Bucket=bucket)
    return urls


def plan(template_path: Path, *, stack: str, endpoint: str, visibility_timeout: int) -> Plan:
    template = load(template_path)
    resources: dict[str, Any] = template["Resources"]
    result = Plan(stack=stack)
    names: dict[str, dict[str, str]] = {}

    # Physical names first, so references between resources resolve.
    for logical, res in resources.items():
        kind = res["Type"]
        if kind == "AWS::DynamoDB::Table":
            name = f"{stack}-{logical}"
            names[logical] = {"Ref": name, "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"}
        elif kind == "AWS::SQS::Queue":
            declared = res["Properties"].get("QueueName")
            name = Resolver(template, stack, {})(declared) if declared else f"{stack}-{logical}"
            url = f"{endpoint}/{ACCOUNT}/{name}"
            names[logical] = {"Ref": url, "QueueUrl": url, "QueueName": name, "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"}
        elif kind == "AWS::S3::Bucket":
            name = f"{stack.lower()}-{logical.lower()}"
            names[logical] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        elif kind in ("AWS::Serverless::Function", "AWS::Serverless::Api", "AWS::Serverless::LayerVersion"):
            names[logical] = {"Ref": f"{stack}-{logical}", "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{stack}-{logical}"}
    resolve = Resolver(template, stack, names)

    for logical, res in resources.items():
        kind, props = res["Type"], res.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            kwargs: dict[str, Any] = {
                "TableName": names[logical]["Ref"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            ttl = props.get("TimeToLiveSpecification")
            result.tables[logical] = {"create": kwargs, "ttl": ttl}
        elif kind == "AWS::SQS::Queue":
            attributes: dict[str, str] = {}
            if props.get("FifoQueue"):
                attributes["FifoQueue"] = "true"
            for key in ("DeduplicationScope", "FifoThroughputLimit", "MessageRetentionPeriod"):
                if key in props:
                    attributes[key] = str(props[key])
            if "VisibilityTimeout" in props:
                # Short locally, so retries and dead-lettering happen in seconds rather than minutes.
                attributes["VisibilityTimeout"] = str(visibility_timeout)
            if "RedrivePolicy" in props:
                redrive = resolve(props["RedrivePolicy"])
                attributes["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": redrive["deadLetterTargetArn"], "maxReceiveCount": str(redrive["maxReceiveCount"])}
                )
            result.queues[logical] = {"name": names[logical]["QueueName"], "attributes": attributes}
        elif kind == "AWS::S3::Bucket":
            result.buckets[logical] = names[logical]["Ref"]

    globals_fn = template.get("Globals", {}).get("Function", {})
    global_env = globals_fn.get("Environment", {}).get("Variables", {})
    for logical, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        props = res["Properties"]
        env = {k: str(resolve(v)) for k, v in {**global_env, **props.get("Environment", {}).get("Variables", {})}.items()}
        fn = Function(
            logical_id=logical,
            code_dir=str(props["CodeUri"]).rstrip("/"),
            handler=props["Handler"],
            env=env,
            routes=[],
            timeout=int(props.get("Timeout", globals_fn.get("Timeout", 10))),
            environments=max(1, int((res.get("Metadata") or {}).get("LocalEnvironments", 1))),
        )
        for event in (props.get("Events") or {}).values():
            eprops = event.get("Properties", {})
            if event["Type"] == "Api":
                fn.routes.append((str(eprops["Method"]).upper(), str(eprops["Path"])))
            elif event["Type"] == "SQS":
                fn.queue = eprops["Queue"]["Fn::GetAtt"][0]
                fn.batch_size = int(eprops.get("BatchSize", 10))
                fn.report_failures = "ReportBatchItemFailures" in (eprops.get("FunctionResponseTypes") or [])
        result.functions[logical] = fn

    for name, output in (template.get("Outputs") or {}).items():
        value = output["Value"]
        if isinstance(value, dict) and "Fn::Sub" in value and "${Api}" in str(value["Fn::Sub"]):
            continue  # the local gateway's URL stands in for the API's
        result.outputs[name] = str(resolve(value))
    return result
