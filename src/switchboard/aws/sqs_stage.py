"""Runs a stage over an SQS FIFO batch the way Lambda expects.

- Powertools' FIFO batch processor reports partial failures; with ``skip_group_on_error`` a failed
  message holds back only the later messages of its own conversation, never other customers'.
- No idempotency layer of its own: each stage carries exactly once in its own conditional writes
  (route: the message write keyed on the envelope id; crm: the message's written mark), which
  answer "already done" to a redelivery in the same request that would have done the work. A
  runner-level record (Powertools idempotency) cost two more writes per message and stage and
  guarded nothing those writes do not: SQS FIFO hands out a conversation's next message only after
  the previous one is deleted or its visibility timeout (longer than the function's) has passed, so
  two attempts at one conversation never overlap, and every attempt after a crash resumes from what
  the writes before it left (see ``route_stage`` and ``crm_stage``).
- Every failure's reason is written to the failure log, keyed by the SQS message id (which SQS keeps
  when it moves the message to the dead-letter queue), so ``switchboard dlq list`` can say why.
- A failure that no retry can fix (an unreadable envelope, a CRM validation error) goes to the
  dead-letter queue at once instead of spending four more attempts.
- A stage given its own queue (``queue_url_env``) paces its retries instead of waiting out the
  queue's visibility timeout: a failed message becomes visible again after the ``retry_after`` the
  failure asked for (a CRM's 429 ``Retry-After``), or after a backoff that doubles with every
  receive (5xx, timeouts), and the rest of its message group follows it in order. Nothing sleeps
  in the function, so other conversations in the batch go on at once; the redrive policy still
  dead-letters a message after ``maxReceiveCount`` receives, with the last reason in the failure log.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from switchboard import safe_json
from switchboard.aws.clients import client
from switchboard.aws.conversation_store import DynamoFailureLog
from switchboard.envelope import Envelope, EnvelopeError
from switchboard.errors import Permanent, Retryable
from switchboard.observability import logger, metrics

# Backoff for retryable failures: base * 2^(receives - 1), capped. With maxReceiveCount 5 and the
# default base, a message keeps trying for about seven minutes before it is dead-lettered.
RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 900.0
MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit for a visibility timeout
ENVELOPE_MAX_DEPTH = 64


def is_permanent(exc: BaseException) -> bool:
    """True for failures another attempt cannot fix."""
    return isinstance(exc, Permanent)


def describe(exc: BaseException) -> str:
    """A reason for a person: the exception's type and its message (messages never carry secrets)."""
    text = getattr(exc, "message", None) or str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def retry_delay(exc: BaseException, receive_count: int, *, base: float, cap: float) -> int:
    """Seconds until the next attempt: what the outside party asked for, else an exponential backoff."""
    asked = exc.retry_after if isinstance(exc, Retryable) else None
    if isinstance(asked, int | float) and math.isfinite(asked):
        seconds = float(asked)
    else:
        seconds = min(base * 2 ** max(receive_count - 1, 0), cap)
    return max(0, min(math.ceil(seconds), MAX_VISIBILITY_SECONDS))


class SqsStage:
    def __init__(
        self,
        name: str,
        process: Callable[[Envelope], dict[str, Any]],
        *,
        dlq_url_env: str,
        failure_log: DynamoFailureLog,
        queue_url_env: str | None = None,
        on_give_up: Callable[[Envelope, str], None] | None = None,
    ) -> None:
        self.name = name
        # Called with the envelope and the last reason when a retryable failure has used its last receive
        # (``SWITCHBOARD_MAX_RECEIVES``, the queue's maxReceiveCount): the sender marks the reply failed and
        # tells the agent before the message is dead-lettered, instead of it leaving silently.
        self.on_give_up = on_give_up
        self.max_receives = int(os.environ.get("SWITCHBOARD_MAX_RECEIVES", "0") or 0)
        self.process = process
        self.failure_log = failure_log
        self.dlq_url_env = dlq_url_env
        self.queue_url_env = queue_url_env
        self.retry_base = float(os.environ.get("SWITCHBOARD_RETRY_BASE_SECONDS", RETRY_BASE_SECONDS))
        self.retry_cap = float(os.environ.get("SWITCHBOARD_RETRY_CAP_SECONDS", RETRY_CAP_SECONDS))
        self._delays: dict[str, int] = {}  # message id -> seconds, for this batch's retryable failures
        self.processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        if queue_url_env:
            # A batch that failed whole is reported item by item, so its retries are paced like any other.
            self.processor.raise_on_entire_batch_failure = False

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._delays = {}
        result = dict(
            process_partial_response(event=event, record_handler=self._record, processor=self.processor, context=context)
        )
        if self.queue_url_env:
            self._pace_failures(event, result)
        return result

    def _apply(self, envelope: Envelope) -> dict[str, Any]:
        """One envelope through the stage (the local stack's crash injection wraps this, infra/local/faults.py)."""
        return self.process(envelope)

    def _record(self, record: SQSRecord) -> dict[str, Any]:
        envelope_doc: dict[str, Any] | None = None
        envelope: Envelope | None = None
        try:
            try:
                # An envelope nests a platform's payload (itself at most safe_json.MAX_DEPTH deep) a few levels down.
                parsed = safe_json.loads(record.body, max_depth=ENVELOPE_MAX_DEPTH)
            except ValueError:
                raise EnvelopeError("body is not JSON") from None
            if not isinstance(parsed, dict):  # kept out of envelope_doc: _fail reads it as a mapping
                raise EnvelopeError("envelope must be a JSON object")
            envelope_doc = parsed
            envelope = Envelope.from_dict(envelope_doc)
            logger.set_correlation_id(str(envelope_doc.get("correlation_id") or record.message_id))
            outcome = self._apply(envelope)
            metrics.add_metric(name=f"{self.name.capitalize()}Processed", unit="Count", value=1)
            logger.info(f"{self.name} done", extra={"outcome": outcome, "message_id": record.message_id})
            return outcome
        except Exception as exc:
            self._fail(record, envelope_doc, exc)
            if is_permanent(exc) and self._dead_letter_now(record, exc):
                return {"dead_lettered": describe(exc)}
            receives = int(record.attributes.approximate_receive_count or 1)
            if envelope is not None and self.on_give_up is not None and 0 < self.max_receives <= receives:
                self._give_up(envelope, exc)
                if self._dead_letter_now(record, exc):
                    return {"dead_lettered": describe(exc)}
            self._delays[record.message_id] = retry_delay(exc, receives, base=self.retry_base, cap=self.retry_cap)
            raise

    def _give_up(self, envelope: Envelope, exc: BaseException) -> None:
        if self.on_give_up is None:
            return
        try:
            self.on_give_up(envelope, describe(exc))
        except Exception:  # the message still goes to the dead-letter queue with its reason
            logger.exception("giving up on a message failed", extra={"envelope_id": envelope.id})

    def _fail(self, record: SQSRecord, envelope_doc: dict[str, Any] | None, exc: BaseException) -> None:
        reason = describe(exc)
        doc = envelope_doc or {}
        logger.warning(
            f"{self.name} failed",
            extra={"message_id": record.message_id, "error": reason, "conversation_id": doc.get("conversation_id")},
        )
        metrics.add_metric(name=f"{self.name.capitalize()}Failed", unit="Count", value=1)
        try:
            self.failure_log.record(
                self.name,
                record.message_id,
                error=reason,
                conversation_id=doc.get("conversation_id") if isinstance(doc.get("conversation_id"), str) else None,
                envelope_id=doc.get("id") if isinstance(doc.get("id"), str) else None,
            )
        except Exception:  # the reason is lost, the message is not: SQS still retries or dead-letters it
            logger.exception("could not record failure reason", extra={"message_id": record.message_id})

    def _dead_letter_now(self, record: SQSRecord, exc: BaseException) -> bool:
        url = os.environ.get(self.dlq_url_env)
        if not url:
            return False
        try:
            client("sqs").send_message(
                QueueUrl=url,
                MessageBody=record.body,
                MessageGroupId=record.attributes.message_group_id or record.message_id,
                MessageDeduplicationId=record.message_id,
                MessageAttributes={
                    "source_message_id": {"DataType": "String", "StringValue": record.message_id},
                    "error": {"DataType": "String", "StringValue": describe(exc)[:1000]},
                },
            )
        except Exception:
            logger.exception("could not dead-letter; leaving it to SQS redrive", extra={"message_id": record.message_id})
            return False
        metrics.add_metric(name=f"{self.name.capitalize()}DeadLettered", unit="Count", value=1)
        return True

    def _pace_failures(self, event: dict[str, Any], result: dict[str, Any]) -> None:
        """Hide each failed message for the delay it asked for; return the rest of its group at once.

        Without this they would wait out the queue's visibility timeout (minutes) whatever the CRM
        said. The messages held back behind a failure go back to the queue straight away, yet stay
        behind it: FIFO delivers nothing of a group while an earlier message of it is in flight, so
        they come back in order once the failed one does. A message whose visibility cannot be set
        simply waits the queue's timeout: nothing is lost.
        """
        url = os.environ.get(self.queue_url_env or "")
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures") or []}
        if not url or not failed:
            return
        heads: set[str] = set()
        entries: list[dict[str, Any]] = []
        for raw in event.get("Records") or []:
            message_id = raw.get("messageId")
            if message_id not in failed:
                continue
            group = (raw.get("attributes") or {}).get("MessageGroupId") or message_id
            if group in heads:
                delay: int | None = 0
            else:
                delay = self._delays.get(message_id)
                heads.add(group)
            if delay is None:
                continue
            entries.append({"Id": str(len(entries)), "ReceiptHandle": raw["receiptHandle"], "VisibilityTimeout": delay})
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            try:
                answer = client("sqs").change_message_visibility_batch(QueueUrl=url, Entries=chunk)
            except Exception:
                logger.exception("could not set the retry delay; the queue's visibility timeout applies")
                continue
            for failure in answer.get("Failed") or []:
                logger.warning("could not set the retry delay of one message", extra={"error": failure.get("Message")})
