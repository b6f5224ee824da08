"""sender: SQS (outbound, FIFO) -> the channel's send API, each reply recorded sent or failed once."""

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


STAGE = SqsStage(
    "outbound", _process, dlq_url_env="OUTBOUND_DLQ_URL", failure_log=wiring.failure_log(), queue_url_env="OUTBOUND_QUEUE_URL"
)
handler = sqs(STAGE)
