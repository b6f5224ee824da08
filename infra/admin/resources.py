"""Where the command's target lives: the local stack (its state file) or a deployed stack (its outputs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from infra.local.state import point_at_local, state_file
from switchboard import safe_json


class TargetError(Exception):
    """No stack to talk to: said plainly, with what to do."""


def use_account(*, region: str | None, profile: str | None) -> None:
    """Every boto3 client this process makes from now on (the core's store adapters too) uses ``profile`` and ``region``.

    As with the AWS CLI's ``--profile``, a named profile outranks keys in the environment: they are dropped
    here, or boto3 would quietly prefer them. A profile that does not exist is said in one line.
    """
    if profile:
        import boto3
        import botocore.exceptions

        try:
            boto3.session.Session(profile_name=profile)
        except botocore.exceptions.ProfileNotFound:
            raise TargetError(f"no AWS profile named {profile!r} (see `aws configure list-profiles`)") from None
        os.environ["AWS_PROFILE"] = profile
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            os.environ.pop(key, None)
    if region:
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region


@dataclass(frozen=True)
class Resources:
    region: str | None
    endpoint_url: str | None  # the local moto server; None for AWS
    api_url: str
    settings_table: str
    conversations_table: str
    inbound_queue_url: str
    inbound_dlq_url: str
    crm_queue_url: str
    crm_dlq_url: str
    attachments_bucket: str
    secrets_prefix: str
    # Empty for a stack deployed before replies existed: every other command still works with it.
    outbound_queue_url: str = ""
    outbound_dlq_url: str = ""

    @classmethod
    def from_outputs(cls, outputs: dict[str, str], *, api_url: str, endpoint_url: str | None, region: str | None) -> Resources:
        try:
            return cls(
                region=region,
                endpoint_url=endpoint_url,
                api_url=api_url.rstrip("/"),
                settings_table=outputs["SettingsTableName"],
                conversations_table=outputs["ConversationsTableName"],
                inbound_queue_url=outputs["InboundQueueUrl"],
                inbound_dlq_url=outputs["InboundDeadLetterQueueUrl"],
                crm_queue_url=outputs["CrmQueueUrl"],
                crm_dlq_url=outputs["CrmDeadLetterQueueUrl"],
                attachments_bucket=outputs["AttachmentsBucketName"],
                secrets_prefix=outputs["SecretsPrefix"],
                outbound_queue_url=outputs.get("OutboundQueueUrl", ""),
                outbound_dlq_url=outputs.get("OutboundDeadLetterQueueUrl", ""),
            )
        except KeyError as exc:
            raise TargetError(f"the stack has no output {exc.args[0]}: was it deployed from this template.yaml?") from None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Resources:
        return cls.from_outputs(
            state["outputs"], api_url=state.get("api_url", ""), endpoint_url=state["endpoint_url"], region=state["region"]
        )

    @classmethod
    def local(cls) -> Resources:
        path = state_file()
        try:
            state = safe_json.loads(path.read_text())
            resources = cls.from_state(state)
        except (OSError, ValueError, KeyError, TypeError):
            raise TargetError("no local stack is running: start one with `switchboard local` (or pass --stack NAME)") from None
        return resources

    @classmethod
    def stack(cls, name: str, *, region: str | None = None, profile: str | None = None) -> Resources:
        use_account(region=region, profile=profile)
        import boto3

        try:
            stack = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
        except Exception as exc:
            raise TargetError(f"cannot read stack {name}: {exc}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return cls.from_outputs(outputs, api_url=outputs.get("ApiUrl", ""), endpoint_url=None, region=region)

    def activate(self) -> None:
        """Point this process's AWS clients (and the core's store adapters) at the target."""
        if self.endpoint_url:
            point_at_local(self.endpoint_url, self.region or "us-east-1")

    def client(self, service: str) -> Any:
        import boto3

        return (
            boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region)
            if self.endpoint_url
            else boto3.client(service)
        )
