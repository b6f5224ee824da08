"""``switchboard reply``: a message to the conversation's customer through the outbound path, as an agent's
reply from the CRM would go (interface sections 4 and 6).

The reply is stored (pending) before it is queued, so the sender stage finds what to send and the
transcript shows it at once; a reply whose queueing fails stays pending, visible, and is said so.
"""

from __future__ import annotations

import time

from infra.admin.resources import Resources
from switchboard.conversations import OutMessage, new_reply_id

MAX_TEXT = 20_000  # well under DynamoDB's item and SQS's message limits; the channels split what they must


def reply(resources: Resources, conversation_id: str, text: str) -> tuple[int, str, str]:
    """(exit code, the reply's message id, what went wrong). Bad input writes and enqueues nothing."""
    if not text.strip():
        return 2, "", "the reply has no text: pass --text with something to send"
    if len(text) > MAX_TEXT:
        return 2, "", f"the reply is {len(text)} characters: at most {MAX_TEXT} are sent"
    if not resources.outbound_queue_url:
        return 1, "", "the stack has no outbound queue (OutboundQueueUrl): deploy this template.yaml to send replies"
    resources.activate()
    from switchboard.aws.conversation_store import DynamoConversations
    from switchboard.aws.publisher import SqsPublisher, by_conversation_id
    from switchboard.errors import StoreUnavailable
    from switchboard.outbound import outbound_envelope

    store = DynamoConversations(resources.conversations_table)
    conversation = store.get(conversation_id)
    if conversation is None:
        return 1, "", f"no conversation {conversation_id}"
    now = int(time.time() * 1000)
    message = OutMessage(id=new_reply_id(now), conversation_id=conversation_id, text=text, created_at=now)
    store.put_reply(message)
    try:
        SqsPublisher(resources.outbound_queue_url, by_conversation_id).publish([outbound_envelope(conversation, message)])
    except StoreUnavailable as exc:
        return 1, message.id, f"reply {message.id} is stored but could not be queued ({exc.message}): it stays pending"
    return 0, message.id, ""
