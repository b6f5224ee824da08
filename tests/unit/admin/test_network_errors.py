"""A network failure is one line on stderr and exit 1, never a traceback (cli.main)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import botocore.exceptions
import pytest
import yaml

from infra.admin import cli
from infra.admin.apply import apply_file
from infra.admin.resources import Resources
from switchboard import outbound_http

from .conftest import ROOT


def closed_port() -> int:
    """A port nothing listens on: bound once to learn a free number, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_send_to_a_stack_that_is_not_running_prints_one_line(
    resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "workstreams": [{"id": "social", "fallback_queue": "general"}],
        "accounts": [
            {
                "id": "line-a",
                "channel": "line",
                "workstream": "social",
                "secrets": {"channel_secret": "cs-1", "channel_access_token": "tok-1"},
            }
        ],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert apply_file(path, resources, dry_run=False)[0] == 0
    port = closed_port()
    target = dataclasses.replace(resources, api_url=f"http://127.0.0.1:{port}")
    monkeypatch.setattr(cli, "_target", lambda args: target)

    code = cli.main(["send", "line", "--account", "line-a", "--text", "hello"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err == f"switchboard: cannot reach http://127.0.0.1:{port}: Connection refused\n"


def test_a_local_stack_that_has_gone_prints_one_line_from_a_real_process(tmp_path: Path) -> None:
    """The state file names a moto endpoint nobody listens on any more: botocore's EndpointConnectionError."""
    port = closed_port()
    outputs = {
        key: f"http://127.0.0.1:{port}/123456789012/q" if key.endswith("Url") else "unit-x"
        for key in (
            "SettingsTableName",
            "ConversationsTableName",
            "InboundQueueUrl",
            "InboundDeadLetterQueueUrl",
            "CrmQueueUrl",
            "CrmDeadLetterQueueUrl",
            "AttachmentsBucketName",
            "SecretsPrefix",
        )
    }
    state = {"endpoint_url": f"http://127.0.0.1:{port}", "api_url": "", "region": "us-east-1", "outputs": outputs}
    (tmp_path / "local.json").write_text(json.dumps(state))
    env = {
        **os.environ,
        "SWITCHBOARD_HOME": str(tmp_path),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for argv in (["conversations", "list"], ["send", "line", "--account", "a", "--text", "hi"], ["dlq", "list"]):
        done = subprocess.run(
            [sys.executable, "-m", "infra.admin.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, (argv, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr == (
            f"switchboard: cannot reach http://127.0.0.1:{port}/ (is the local stack running? `switchboard local`)\n"
        ), argv


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (
            outbound_http.ConnectionFailed(
                "connection failed: Name or service not known", target="https://crm.invalid/api/v2/users/me.json"
            ),
            "cannot reach https://crm.invalid: Name or service not known",
        ),
        (
            outbound_http.TimedOut("no answer within 10 s", target="http://127.0.0.1:3000/webhooks/line/x"),
            "cannot reach http://127.0.0.1:3000: timed out",
        ),
        (outbound_http.TimedOut("no answer within 10 s"), "cannot reach: timed out"),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com/"),
            "cannot reach https://dynamodb.eu-west-1.amazonaws.com/",
        ),
        (
            botocore.exceptions.ReadTimeoutError(endpoint_url="https://sqs.eu-west-1.amazonaws.com/"),
            "https://sqs.eu-west-1.amazonaws.com/ did not answer in time",
        ),
        (
            botocore.exceptions.NoCredentialsError(),
            "no AWS credentials: configure them as boto3 finds them (AWS_PROFILE, ~/.aws, environment)",
        ),
        (botocore.exceptions.NoRegionError(), "no AWS region: set AWS_REGION or a profile's region"),
        (
            botocore.exceptions.ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "GetItem"),
            "AWS refused: AccessDeniedException: not allowed",
        ),
        (ConnectionRefusedError(111, "Connection refused"), "network error: Connection refused"),
    ],
)
def test_every_network_error_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: Exception, line: str
) -> None:
    def fail(args: object) -> int:
        raise exc

    monkeypatch.setattr(cli, "cmd_export", fail)
    assert cli.main(["export"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"switchboard: {line}\n")


def test_a_bug_is_not_disguised_as_a_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(args: object) -> int:
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "cmd_export", fail)
    with pytest.raises(KeyError):
        cli.main(["export"])
