"""`switchboard --stack NAME --region R --profile P`: where a deployed stack lives, said on the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from infra.admin import cli
from infra.admin.resources import Resources, TargetError

OUTPUTS = {
    "ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
    "SettingsTableName": "s-settings",
    "ConversationsTableName": "s-conversations",
    "IdempotencyTableName": "s-idempotency",
    "InboundQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/s-inbound.fifo",
    "InboundDeadLetterQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/s-inbound-dlq.fifo",
    "CrmQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/s-crm.fifo",
    "CrmDeadLetterQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/s-crm-dlq.fifo",
    "AttachmentsBucketName": "s-attachments",
    "SecretsPrefix": "switchboard/s",
}


@pytest.fixture
def stack_in_ireland(aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A stack with Switchboard's outputs in eu-west-1 only, and a profile `ops` whose keys differ from the environment's."""
    for name in ("AWS_REGION", "AWS_PROFILE"):
        monkeypatch.setenv(name, "recorded")  # so that monkeypatch removes what the command sets
        monkeypatch.delenv(name)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, os.environ[name])  # recorded, so what the command changes is put back
    (tmp_path / "config").write_text("[profile ops]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text("[ops]\naws_access_key_id = ops-key\naws_secret_access_key = ops-secret\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in OUTPUTS.items()},
    }
    boto3.client("cloudformation", region_name="eu-west-1").create_stack(StackName="s", TemplateBody=json.dumps(template))
    return "s"


def test_region_names_where_the_stack_is(stack_in_ireland: str) -> None:
    with pytest.raises(TargetError, match="cannot read stack s"):
        Resources.stack(stack_in_ireland)  # the environment's us-east-1 has no such stack
    found = Resources.stack(stack_in_ireland, region="eu-west-1")
    assert found.settings_table == "s-settings" and found.region == "eu-west-1"
    assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"  # the core's clients follow


def test_profile_outranks_keys_in_the_environment(stack_in_ireland: str) -> None:
    assert os.environ["AWS_ACCESS_KEY_ID"] != "ops-key"
    found = Resources.stack(stack_in_ireland, region="eu-west-1", profile="ops")
    assert found.settings_table == "s-settings"
    assert os.environ["AWS_PROFILE"] == "ops" and "AWS_ACCESS_KEY_ID" not in os.environ
    assert boto3.session.Session().get_credentials().access_key == "ops-key"


def test_an_unknown_profile_is_one_line(stack_in_ireland: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--stack", stack_in_ireland, "--profile", "nope", "export"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "switchboard: no AWS profile named 'nope' (see `aws configure list-profiles`)\n"


def test_region_without_a_stack_is_refused_in_one_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--region", "eu-west-1", "export"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "give its --stack NAME too" in err
