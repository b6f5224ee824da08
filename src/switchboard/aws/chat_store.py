"""Web chat sessions in the conversations table, and the one read the long poll repeats.

- ``s#<conversation id>`` / ``session``: the visitor's session (:class:`switchboard.chat_records.ChatSession`):
  ``doc`` (the visitor and the expiry), ``digest`` (hex SHA-256 of the token; the token itself is
  stored nowhere), ``expires_at`` (unix seconds), ``ended_at`` (ms, once the chat ended) and ``ttl``
  (a day after the expiry, so a late call is told ``session_expired`` rather than ``invalid_session``).
  Its own partition, not the conversation's: token_validate may write only ``s#`` items (and ``l#``),
  the chat function only update them, and neither can touch a conversation the route stage owns.

The transcript read (:meth:`DynamoChatSessions.chat_view`) is one Query of the conversation's
partition whose filter keeps the conversation record, the messages stored after the cursor's
sequence number and the replies taken at or after its time: what the widget has seen already does
not travel back on every poll.
"""

from __future__ import annotations

import json
from typing import Any, Final

from switchboard.aws.clients import client
from switchboard.aws.conversation_store import _conversation, _out_message
from switchboard.chat_records import ChatCursor, ChatSession, ChatView
from switchboard.conversations import Conversation, OutMessage
from switchboard.envelope import Envelope
from switchboard.errors import StoreUnavailable

SESSION_SK: Final = "session"
KEEP_EXPIRED_SECONDS: Final = 24 * 3600
TAKEN: Final = frozenset({"sent", "delivered", "read"})  # a reply the widget may show: the sender stage took it


def _session_key(conversation_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"s#{conversation_id}"}, "sk": {"S": SESSION_SK}}


def _conditional_failed(exc: Exception) -> bool:
    return bool(getattr(exc, "response", {}).get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class DynamoChatSessions:
    """Implements :class:`switchboard.ports.ChatSessionOpener` and :class:`switchboard.ports.ChatSessions`."""

    def __init__(self, table: str) -> None:
        self.table = table

    @property
    def _db(self) -> Any:
        return client("dynamodb")

    def open_session(self, session: ChatSession) -> None:
        try:
            self._db.put_item(
                TableName=self.table,
                Item={
                    **_session_key(session.conversation_id),
                    "doc": {"S": json.dumps(session.to_doc(), ensure_ascii=False)},
                    "digest": {"S": session.token_digest},
                    "expires_at": {"N": str(session.expires_at)},
                    "ttl": {"N": str(session.expires_at + KEEP_EXPIRED_SECONDS)},
                },
                # Conversation ids are random: a second session for one means a bug, never a visitor to serve.
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if _conditional_failed(exc):
                raise StoreUnavailable("a session for this conversation exists already") from None
            raise StoreUnavailable(f"conversations table unavailable: {type(exc).__name__}") from exc

    def session(self, conversation_id: str) -> ChatSession | None:
        item = self._db.get_item(TableName=self.table, Key=_session_key(conversation_id), ConsistentRead=True).get("Item")
        if not item or "doc" not in item or "digest" not in item:
            return None
        ended = item.get("ended_at", {}).get("N")
        return ChatSession.from_doc(
            json.loads(item["doc"]["S"]), token_digest=item["digest"]["S"], ended_at=int(ended) if ended else None
        )

    def conversation(self, conversation_id: str) -> Conversation | None:
        key = {"pk": {"S": f"c#{conversation_id}"}, "sk": {"S": "meta"}}
        return _conversation(self._db.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item"))

    def end_session(self, conversation_id: str, *, at: int) -> bool:
        try:
            self._db.update_item(
                TableName=self.table,
                Key=_session_key(conversation_id),
                UpdateExpression="SET ended_at = :t",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(ended_at)",
                ExpressionAttributeValues={":t": {"N": str(at)}},
            )
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def chat_view(self, conversation_id: str, cursor: ChatCursor) -> ChatView:
        conversation: Conversation | None = None
        received: list[tuple[int, Envelope]] = []
        replies: list[OutMessage] = []
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            FilterExpression="sk = :meta OR (begins_with(sk, :m) AND seq > :seq) OR (begins_with(sk, :o) AND sent_at >= :t)",
            ExpressionAttributeValues={
                ":p": {"S": f"c#{conversation_id}"},
                ":meta": {"S": "meta"},
                ":m": {"S": "m#"},
                ":seq": {"N": str(cursor.seq)},
                ":o": {"S": "o#"},
                ":t": {"N": str(cursor.reply[0])},
            },
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                sk = item["sk"]["S"]
                if sk == "meta":
                    conversation = _conversation(item)
                elif sk.startswith("m#"):
                    received.append((int(item["seq"]["N"]), Envelope.from_json(item["doc"]["S"])))
                elif sk.startswith("o#"):
                    reply = _out_message(item)
                    if reply.status in TAKEN and reply.sent_at is not None and (reply.sent_at, reply.id) > cursor.reply:
                        replies.append(reply)
        received.sort(key=lambda row: row[0])
        replies.sort(key=lambda r: (r.sent_at or 0, r.id))
        return ChatView(conversation=conversation, received=received, replies=replies)
