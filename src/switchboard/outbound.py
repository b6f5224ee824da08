"""What goes on the outbound queue: a stored reply to send, or a CRM's event to read replies from.

Kept apart from the sender stage so the functions that queue (the crm_events edge, `switchboard reply`)
import two small builders rather than the stage, the channels and the CRM adapters.
"""

from __future__ import annotations

from switchboard.conversations import Conversation, OutMessage
from switchboard.envelope import Customer, Envelope

CRM_EVENT = "crm_event"  # the envelope's data key naming a CRM event: {"provider", "ticket_id"}
RESUME = "resume"  # the envelope's data key saying: the customer wrote again, send the replies that waited for it


def outbound_envelope(conversation: Conversation, message: OutMessage) -> Envelope:
    """What goes on the outbound queue for a stored reply: it names the reply (``id``) and its conversation;
    the text travels too, for whoever reads a dead letter, but the stage sends the stored one."""
    return Envelope(
        id=message.id,
        channel=conversation.channel,
        account_id=conversation.account_id,
        customer=conversation.customer,
        kind="text",
        sent_at=message.created_at,
        received_at=message.created_at,
        correlation_id=message.id,
        text=message.text,
        data={"direction": "out"},
        conversation_id=conversation.conversation_id,
    )


def crm_event_envelope(conversation_id: str, provider: str, ticket_id: str, *, received_at: int, correlation_id: str) -> Envelope:
    """What the crm_events function queues for a verified event: "read this ticket's replies", in the
    conversation's message group so it keeps its place among the conversation's other replies.

    It names the CRM (channel ``crm``, account = the provider, customer = the ticket): the function knows
    the conversation by its ticket alone and reads nothing more, and the stage reads the rest.
    """
    return Envelope(
        id=f"crm-event:{provider}:{ticket_id}:{correlation_id}",
        channel="crm",
        account_id=provider,
        customer=Customer(id=ticket_id),
        kind="event",
        sent_at=received_at,
        received_at=received_at,
        correlation_id=correlation_id,
        data={CRM_EVENT: {"provider": provider, "ticket_id": ticket_id}},
        conversation_id=conversation_id,
    )


def resume_envelope(answer: Envelope, conversation_id: str) -> Envelope:
    """What route queues when the customer answers a conversation whose replies wait for that (WhatsApp's
    window reopened): keyed on the customer's message, so a redelivery of it queues no second one."""
    return Envelope(
        id=f"resume:{answer.id}",
        channel=answer.channel,
        account_id=answer.account_id,
        customer=answer.customer,
        kind="event",
        sent_at=answer.sent_at,
        received_at=answer.received_at,
        correlation_id=answer.correlation_id,
        data={RESUME: True},
        conversation_id=conversation_id,
    )


__all__ = ["CRM_EVENT", "RESUME", "crm_event_envelope", "outbound_envelope", "resume_envelope"]
