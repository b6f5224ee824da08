"""route: SQS (inbound, FIFO) -> conversation + routing decision -> SQS (crm, FIFO)."""

from __future__ import annotations

from typing import Any

from switchboard import route_stage
from switchboard.aws import wiring
from switchboard.aws.sqs_stage import SqsStage
from switchboard.envelope import Envelope
from switchboard.lambda_entry import sqs

SETTINGS = wiring.settings()
CONVERSATIONS = wiring.conversations()
NAMES, ATTACHMENTS = wiring.route_fetching(SETTINGS, CONVERSATIONS)
DEPS = route_stage.RouteDeps(
    settings=SETTINGS,
    conversations=CONVERSATIONS,
    crm_queue=wiring.crm_publisher(),
    outbound=wiring.outbound_publisher(),
    names=NAMES,
    attachments=ATTACHMENTS,
)


def _process(envelope: Envelope) -> dict[str, Any]:
    return route_stage.process(envelope, DEPS)


STAGE = SqsStage("route", _process, dlq_url_env="INBOUND_DLQ_URL", failure_log=wiring.failure_log())
wiring.warm_clients("dynamodb", "sqs")


def _budget(context: Any) -> None:
    # Downloads stop retrying while the run still has time to store and forward what it holds.
    ATTACHMENTS.time_left = lambda: context.get_remaining_time_in_millis() / 1000


handler = sqs(STAGE, before=_budget)
