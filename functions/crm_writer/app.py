"""crm_writer: SQS (crm, FIFO) -> contact and ticket/case in the configured CRM, exactly once."""

from __future__ import annotations

import os
from typing import Any

from switchboard import crm_stage
from switchboard.aws import wiring
from switchboard.aws.clients import env
from switchboard.aws.secret_store import PowertoolsSecrets
from switchboard.aws.sqs_stage import SqsStage
from switchboard.crm.factory import AdapterCache
from switchboard.envelope import Envelope
from switchboard.lambda_entry import sqs
from switchboard.secret_names import secret_name

# Module scope: a warm function keeps its adapter (and the CRM token it holds) across invocations.
# The secret is re-read every minute (not five), so credentials fixed by `apply` reach a message
# that waits in its retry backoff after the CRM refused the old ones.
ADAPTERS = AdapterCache(
    PowertoolsSecrets(max_age=int(os.environ.get("SWITCHBOARD_SECRETS_MAX_AGE", "60"))),
    secret_name(env("SECRETS_PREFIX"), "crm", "default"),
)
DEPS = crm_stage.CrmDeps(
    settings=wiring.settings(),
    conversations=wiring.conversations(),
    adapter_for=ADAPTERS.adapter_for,
    profiles=wiring.profiles(),
)


def _process(envelope: Envelope) -> dict[str, Any]:
    return crm_stage.process(envelope, DEPS)


STAGE = SqsStage("crm", _process, dlq_url_env="CRM_DLQ_URL", failure_log=wiring.failure_log(), queue_url_env="CRM_QUEUE_URL")
wiring.warm_clients("dynamodb", "sqs")
handler = sqs(STAGE)
