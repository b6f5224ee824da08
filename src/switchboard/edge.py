"""The edge core: verify, normalise, enqueue durably, and only then answer.

Order matters: size first (cheap, before anything is read), then the account (404), then the
platform's handshake or signature (401/403), then the body (400). Nothing is enqueued unless every
check passed, and 200 is answered only after SQS accepted every envelope; if it refused, 503 makes
the platform deliver again (dedupe ids keep the retry from doubling anything).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.channels.base import ChannelAdapter, NotFound, PayloadTooLarge, WebhookError, WebhookRequest, WebhookResponse
from switchboard.observability import logger, metrics
from switchboard.ports import Publisher, SecretReader, SettingsReader, StoreUnavailable
from switchboard.secret_names import secret_name

MAX_BODY_BYTES = 1 << 20  # 1 MiB (interface section 2)


@dataclass
class EdgeDeps:
    settings: SettingsReader
    secrets: SecretReader
    publisher: Publisher
    secrets_prefix: str
    clock: Callable[[], float] = field(default=time.time)


def receive(adapter: ChannelAdapter, request: WebhookRequest, deps: EdgeDeps) -> WebhookResponse:
    account_id = request.path_params.get("account_id", "")
    correlation_id = request.request_id or uuid.uuid4().hex
    logger.set_correlation_id(correlation_id)
    try:
        return _receive(adapter, request, deps, account_id, correlation_id)
    except WebhookError as refused:
        logger.warning(
            "webhook refused",
            extra={"channel": adapter.channel, "account_id": account_id, "status": refused.status, "error": refused.code},
        )
        metrics.add_metric(name="WebhookRefused", unit="Count", value=1)
        return refused.response()
    except StoreUnavailable as exc:
        logger.error("webhook not enqueued", extra={"channel": adapter.channel, "account_id": account_id, "reason": str(exc)})
        return WebhookResponse.json(503, {"error": "unavailable", "message": "not accepted, please deliver again"})
    except KeyError as exc:  # the account's secret is missing: a set-up error, but the platform should retry later
        logger.error(
            "account secrets unavailable", extra={"channel": adapter.channel, "account_id": account_id, "reason": str(exc)}
        )
        return WebhookResponse.json(503, {"error": "unavailable", "message": "account is not fully configured"})


def _receive(
    adapter: ChannelAdapter, request: WebhookRequest, deps: EdgeDeps, account_id: str, correlation_id: str
) -> WebhookResponse:
    if len(request.body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    account = deps.settings.account(account_id) if account_id else None
    if account is None or account.channel != adapter.channel or not account.enabled:
        raise NotFound(f"no enabled {adapter.channel} account {account_id!r}")
    secrets = deps.secrets.get(secret_name(deps.secrets_prefix, "account", account.id, account.channel))
    handshake = adapter.handshake(request, account, secrets)
    if handshake is not None:
        logger.info("webhook handshake answered", extra={"channel": adapter.channel, "account_id": account.id})
        metrics.add_metric(name="HandshakesAnswered", unit="Count", value=1)
        return handshake
    adapter.verify(request, account, secrets)
    result = adapter.parse(request, account, received_at=int(deps.clock() * 1000), correlation_id=correlation_id)
    for reason in result.skipped:
        logger.info("webhook item skipped", extra={"channel": adapter.channel, "account_id": account.id, "reason": reason})
    if result.envelopes:
        deps.publisher.publish(result.envelopes)
    metrics.add_metric(name="EventsAccepted", unit="Count", value=len(result.envelopes))
    logger.info("webhook accepted", extra={"channel": adapter.channel, "account_id": account.id, "events": len(result.envelopes)})
    return adapter.accepted(result)
