"""sender: SQS (outbound, FIFO) -> agents' replies read from the CRM -> the channel's send API, each reply recorded once."""

from __future__ import annotations

from typing import Any

from switchboard import sender_stage
from switchboard.aws import wiring
from switchboard.aws.sqs_stage import SqsStage
from switchboard.envelope import Envelope
from switchboard.lambda_entry import sqs

DEPS = wiring.sender_deps()


def _process(envelope: Envelope) -> dict[str, Any]:
    return sender_stage.process(envelope, DEPS)


def _give_up(envelope: Envelope, reason: str) -> None:
    sender_stage.give_up(envelope, reason, DEPS)


STAGE = SqsStage(
    "outbound",
    _process,
    dlq_url_env="OUTBOUND_DLQ_URL",
    failure_log=wiring.failure_log(),
    queue_url_env="OUTBOUND_QUEUE_URL",
    on_give_up=_give_up,
)
handler = sqs(STAGE)
