"""The deploy rehearsal's machinery: `sam build`, `sam package` to moto's S3, SAM's own transform, a stack created by
moto's CloudFormation, and the built handlers run against what that stack created.

What stands in for AWS, and why:
- moto's CloudFormation creates the translated template's tables, queues, bucket, secrets prefix, functions,
  versions, aliases, event source mappings and REST API; ``_moto_gaps`` patches what moto lacks, each gap named.
- moto cannot run a function without Docker, so each built function runs here in a process of its own
  (``_lambda_runner``) with the environment moto's Lambda holds for it, its code from the build's artifacts
  and the layer's pure-Python packages from the build too. Only what the layer ships as aarch64/cp312
  binaries (cryptography, cffi's backend) and boto3 (Lambda's runtime provides it) come from this venv.
- moto serves no execute-api endpoint, so the stack's ``ApiUrl`` output names a gateway on 127.0.0.1 that
  turns requests into API Gateway proxy events for the function each route of moto's REST API integrates.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAM_VENV = ROOT / ".venv-sam"
REGION = "us-east-1"
HERE = Path(__file__).resolve().parent


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment without the caller's AWS settings: nothing here may reach a real account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="rehearsal",
        AWS_SECRET_ACCESS_KEY="rehearsal",  # moto accepts any credentials
        SAM_CLI_TELEMETRY="0",
    )
    env.update(extra)
    return env


def run(cmd: list[str], *, env: dict[str, str], cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def sam_build(build_dir: Path) -> Path:
    """`sam build` as the README says, with nothing but this machine's Python (no python3.12, no Docker)."""
    run([str(SAM_VENV / "bin" / "sam"), "build", "--build-dir", str(build_dir)], env=offline_env())
    return build_dir


def translate(template: Path, parameters: dict[str, str]) -> dict[str, Any]:
    """SAM's transform (samtranslator, in the SAM venv), as CloudFormation runs it on `sam deploy`."""
    done = run(
        [
            str(SAM_VENV / "bin" / "python"),
            str(HERE / "_translate.py"),
            str(template),
            *(f"{k}={v}" for k, v in parameters.items()),
        ],
        env=offline_env(),
    )
    translated: dict[str, Any] = json.loads(done.stdout)
    return translated


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadable_here(filename: str) -> bool:
    """Whether this interpreter would load ``filename`` as an extension module (an aarch64 abi3 .so would fail to)."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if filename.endswith(suffix) and filename[: -len(suffix)].isidentifier():
            return True
    return False


def pure_overlay(layer_python: Path, dest: Path) -> list[str]:
    """Links to the layer's top-level packages that this interpreter can import as they were built; returns the rest."""
    dest.mkdir(parents=True, exist_ok=True)
    native: list[str] = []
    for entry in sorted(layer_python.iterdir()):
        if entry.name.endswith((".dist-info", ".so")) or entry.name == "__pycache__":
            continue
        files = [entry] if entry.is_file() else list(entry.rglob("*.so"))
        if any(loadable_here(f.name) for f in files):
            native.append(entry.name)
            continue
        (dest / entry.name).symlink_to(entry)
    return native


class LambdaProcess:
    """One built function, initialised once, invoked per event (one at a time, as one Lambda environment)."""

    def __init__(self, name: str, code_dir: Path, overlay: Path, handler: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        site = sysconfig.get_paths()["purelib"]
        full_env = offline_env(**env)
        full_env.update(
            PYTHONPATH=os.pathsep.join([str(code_dir), str(overlay), site]),
            PYTHONDONTWRITEBYTECODE="1",  # the artifacts stay as built
            AWS_LAMBDA_FUNCTION_NAME=name,
        )
        self.stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-S", str(HERE / "_lambda_runner.py"), handler],
            env=full_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lock = threading.Lock()
        ready = self._read()
        self.init_ms: float = ready["init_ms"]
        self.files: dict[str, str | None] = ready["files"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"{self.name} exited during init; see {self.stderr.name}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def invoke(self, event: dict[str, Any]) -> Any:
        with self.lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(event) + "\n")
            self.proc.stdin.flush()
            answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"{self.name} raised {answer['error']}")
        return answer["result"]

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.stderr.close()


@dataclass
class Rehearsal:
    stack: str
    endpoint: str
    work: Path
    build: Path
    translated: dict[str, Any]
    outputs: dict[str, str] = field(default_factory=dict)
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> physical id
    functions: dict[str, LambdaProcess] = field(default_factory=dict)  # by logical id
    gateway: Any = None

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="rehearsal",
            aws_secret_access_key="rehearsal",
        )

    def env(self) -> dict[str, str]:
        return offline_env(AWS_ENDPOINT_URL=self.endpoint, SWITCHBOARD_HOME=str(self.work / "home"))

    def switchboard(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The admin's command against this stack, as an admin runs it (`--stack`, `--region`)."""
        cmd = [sys.executable, "-c", "import sys; from infra.admin.cli import main; sys.exit(main())"]
        done = subprocess.run(
            [*cmd, "--stack", self.stack, "--region", REGION, *args],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"switchboard {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def start_functions(self) -> None:
        lam = self.client("lambda")
        overlay = self.work / "overlay"
        pure_overlay(self.build / "CoreLayer" / "python", overlay)
        for logical, resource in self.translated["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            config = lam.get_function_configuration(FunctionName=self.physical[logical])
            self.functions[logical] = LambdaProcess(
                self.physical[logical],
                self.build / logical,
                overlay,
                config["Handler"],
                {
                    **config.get("Environment", {}).get("Variables", {}),
                    "AWS_ENDPOINT_URL": self.endpoint,
                    "AWS_LAMBDA_FUNCTION_TIMEOUT": str(config["Timeout"]),
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config["MemorySize"]),
                },
                self.work / f"{logical}.log",
            )

    def function_named(self, arn_or_name: str) -> LambdaProcess:
        """The function an integration URI or a mapping names (``...:function:NAME[:live]``)."""
        name = re.split(r"[:/]", arn_or_name.rsplit(":function:", maxsplit=1)[-1], maxsplit=1)[0]
        for logical, physical in self.physical.items():
            if physical == name:
                return self.functions[logical]
        raise KeyError(name)

    def start_gateway(self, port: int) -> None:
        """Routes as moto's REST API holds them: each path and method to the function its integration invokes."""
        from infra.local.gateway import Gateway, Route

        apigw = self.client("apigateway")
        api_id = self.physical["Api"]
        routes = []
        for resource in apigw.get_resources(restApiId=api_id, limit=500)["items"]:
            for method in resource.get("resourceMethods") or {}:
                uri = apigw.get_integration(restApiId=api_id, resourceId=resource["id"], httpMethod=method)["uri"]
                function_arn = uri.split("/functions/")[1].split("/invocations")[0]
                routes.append(Route(method, resource["path"], self.function_named(function_arn)))  # type: ignore[arg-type]
        self.gateway = Gateway(routes, "127.0.0.1", port)
        self.gateway.start()

    def drain(self, queue_output: str) -> list[dict[str, Any]]:
        """One poll of a queue's event source mapping, as Lambda makes it; returns each batch's answer."""
        from infra.local.workers import sqs_record

        sqs, lam = self.client("sqs"), self.client("lambda")
        url = self.outputs[queue_output]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        (mapping,) = [m for m in lam.list_event_source_mappings()["EventSourceMappings"] if m["EventSourceArn"] == arn]
        function = self.function_named(mapping["FunctionArn"])
        answers = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=mapping["BatchSize"],
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                return answers
            answer = function.invoke({"Records": [sqs_record(m, arn) for m in messages]})
            answers.append(answer)
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(
                    QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
                )
            if failed:
                return answers

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for function in self.functions.values():
            function.stop()


def create(build: Path, work: Path, stack: str, parameters: dict[str, str], endpoint: str) -> Rehearsal:
    """Package the build to moto's S3, translate it, create the stack on moto's CloudFormation and start its functions."""
    import boto3

    env = offline_env(AWS_ENDPOINT_URL=endpoint)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    s3.create_bucket(Bucket="rehearsal-artifacts")
    packaged = work / "packaged.yaml"
    run(
        [
            str(SAM_VENV / "bin" / "sam"),
            "package",
            "--template-file",
            str(build / "template.yaml"),
            "--s3-bucket",
            "rehearsal-artifacts",
            "--output-template-file",
            str(packaged),
        ],
        env=env,
    )
    translated = translate(packaged, parameters)
    rehearsal = Rehearsal(stack=stack, endpoint=endpoint, work=work, build=build, translated=translated)
    port = free_port()
    deployable = json.loads(json.dumps(translated))
    # moto serves no execute-api endpoint: ApiUrl names the stand-in gateway (the real value is checked in test_template).
    deployable["Outputs"]["ApiUrl"]["Value"] = f"http://127.0.0.1:{port}/v1"
    cfn = rehearsal.client("cloudformation")
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(deployable),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise AssertionError(f"stack {stack}: {described['StackStatus']} {described.get('StackStatusReason')}")
    rehearsal.outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    rehearsal.physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]
        if r.get("PhysicalResourceId")  # moto lists the types it skipped (alarms, CodeDeploy) without one
    }
    from . import _moto_gaps

    _moto_gaps.detach_queue_triggers()
    try:
        rehearsal.start_functions()
        rehearsal.start_gateway(port)
    except BaseException:
        rehearsal.stop()
        raise
    return rehearsal
