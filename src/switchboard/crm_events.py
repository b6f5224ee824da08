"""The CRM's events: ``POST /crm/{provider}/events`` verified, then "read this ticket's replies" queued.

The function is an edge like the webhooks, and as light: it verifies the request exactly as the CRM
signs it (:meth:`~switchboard.crm.base.CrmAdapter.verify_event`: constant time over the raw body,
Zendesk's timestamp window, no empty secret ever verifying), finds the conversation the ticket
belongs to (one index query), and queues an event envelope on the outbound queue in that
conversation's message group. It reads nothing from the CRM and holds none of its credentials: the
sender stage reads the replies from the CRM's API, so a lost, repeated or reordered event changes
nothing, and this function's role can read the events secret alone.

Answers: 401 for anything unverified (nothing read, nothing queued); 200 for an event about no
Switchboard conversation, or with ``crm.replies: false`` (nothing done, so the CRM does not retry);
404 for a provider that is not this stack's CRM; 503 when the queue or the store refused (the CRM
delivers again: reading the ticket twice is harmless).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.crm import registry
from switchboard.edge import MAX_BODY_BYTES, shown_id
from switchboard.errors import HttpError, NotFound, PayloadTooLarge, SecretMissing, StoreUnavailable
from switchboard.observability import logger, metrics
from switchboard.outbound import crm_event_envelope
from switchboard.ports import Publisher, SecretReader, SettingsReader, TicketIndex
from switchboard.secret_names import secret_name
from switchboard.web import WebhookRequest, WebhookResponse


@dataclass
class CrmEventDeps:
    settings: SettingsReader
    secrets: SecretReader
    secrets_prefix: str
    tickets: TicketIndex
    publisher: Publisher  # the outbound queue, grouped by conversation
    clock: Callable[[], float] = field(default=time.time)


def handle(request: WebhookRequest, deps: CrmEventDeps) -> WebhookResponse:
    provider = request.path_params.get("provider", "")
    correlation_id = request.request_id or uuid.uuid4().hex
    logger.set_correlation_id(correlation_id)
    try:
        return _handle(provider, request, deps, correlation_id)
    except HttpError as refused:
        logger.warning(
            "crm event refused", extra={"provider": shown_id(provider), "status": refused.status, "error": refused.code}
        )
        metrics.add_metric(name="CrmEventsRefused", unit="Count", value=1)
        return refused.response()
    except StoreUnavailable as exc:
        logger.error("crm event not queued", extra={"provider": shown_id(provider), "reason": str(exc)})
        return WebhookResponse.json(503, {"error": "unavailable", "message": "not accepted, please deliver again"})


def _handle(provider: str, request: WebhookRequest, deps: CrmEventDeps, correlation_id: str) -> WebhookResponse:
    if len(request.body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    crm = deps.settings.crm()
    if provider != crm.provider or provider not in registry.names():
        raise NotFound(f"this stack's CRM is not {shown_id(provider)!r}", code="unknown_provider")
    adapter = registry.adapter_class(provider)
    try:
        stored = deps.secrets.get(secret_name(deps.secrets_prefix, "crm_events", "default"))
        secret = stored.get(adapter.events_secret_name)
    except SecretMissing:
        secret = None
    now = deps.clock()
    # A missing secret refuses exactly as a wrong signature does (the adapter's check treats "" as no key).
    adapter.verify_event(request, secret if isinstance(secret, str) else "", now=now)
    ignored = {"status": "ignored"}
    if crm.option("replies", True) is False:
        return WebhookResponse.json(200, {**ignored, "reason": "replies are turned off (crm.replies: false)"})
    ticket_id = adapter.event_ticket(request)
    if ticket_id is None:
        logger.info("crm event names no ticket", extra={"provider": provider})
        return WebhookResponse.json(200, {**ignored, "reason": "the event names no ticket"})
    conversation_id = deps.tickets.conversation_for_ticket(provider, ticket_id)
    if conversation_id is None:
        logger.info("crm event about no conversation", extra={"provider": provider, "ticket_id": shown_id(ticket_id)})
        return WebhookResponse.json(200, {**ignored, "reason": "no Switchboard conversation has this ticket"})
    envelope = crm_event_envelope(
        conversation_id, provider, ticket_id, received_at=int(now * 1000), correlation_id=correlation_id
    )
    deps.publisher.publish([envelope])
    metrics.add_metric(name="CrmEventsQueued", unit="Count", value=1)
    logger.info("crm event queued", extra={"provider": provider, "conversation_id": conversation_id})
    return WebhookResponse.json(200, {"status": "queued", "conversation_id": conversation_id})
