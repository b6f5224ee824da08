"""crm_writer: SQS (crm, FIFO) -> contact and ticket/case in the configured CRM, exactly once."""

from __future__ import annotations

from typing import Any

from switchboard import crm_stage
from switchboard.aws import wiring
from switchboard.aws.sqs_stage import SqsStage
from switchboard.crm.base import CrmAdapter
from switchboard.envelope import Envelope
from switchboard.observability import logger, metrics
from switchboard.route_stage import ConfigurationError
from switchboard.settings import CrmSettings


def _adapter_for(settings: CrmSettings) -> CrmAdapter:
    raise ConfigurationError(f"CRM provider {settings.provider!r} is not available yet; only 'none' is")


DEPS = crm_stage.CrmDeps(settings=wiring.settings(), conversations=wiring.conversations(), adapter_for=_adapter_for)


def _process(envelope: Envelope) -> dict[str, Any]:
    return crm_stage.process(envelope, DEPS)


STAGE = SqsStage("crm", _process, dlq_url_env="CRM_DLQ_URL", failure_log=wiring.failure_log())
wiring.warm_clients("dynamodb", "sqs")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return STAGE.handle(event, context)
