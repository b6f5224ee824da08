"""Conversations in DynamoDB.

One table, keyed (pk, sk):

- ``c#<id>`` / ``meta``: the conversation (written by route only), with the index attributes
  ``list_pk``, ``updated_at``, ``queue`` and ``channel`` for ``conversations list``;
- ``c#<id>`` / ``crm``: what the crm stage wrote (its own item, so the two stages never race);
- ``c#<id>`` / ``m#<sent ms>#<digest>``: one item per message, its key derived from the envelope,
  so storing a duplicate fails its condition instead of adding a copy;
- ``k#<channel:account:customer>`` / ``current``: which conversation a customer is in now;
- ``p#<channel:account:customer>`` / ``profile``: the customer's name (with when it was looked up)
  and the CRM contact id per provider, reused by later conversations;
- ``f#<stage>`` / ``<message id>``: the last error of a message on its way to a dead-letter queue;
- ``l#<link id>`` / ``used``: a sign-in link that has been used (written by token_validate, once,
  conditionally), removed by the table's TTL (``ttl``) once the link has expired.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from typing import Any

from switchboard.aws.clients import client
from switchboard.conversations import Conversation, CrmState, Profile
from switchboard.envelope import Envelope
from switchboard.errors import StoreUnavailable

FAILURE_TTL_SECONDS = 14 * 24 * 3600  # as long as the dead-letter queues keep messages


def _msg_sk(envelope: Envelope) -> str:
    return f"m#{envelope.sent_at:013d}#{hashlib.sha256(envelope.id.encode()).hexdigest()[:24]}"


def _conditional_failed(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return bool(code == "ConditionalCheckFailedException")


class DynamoConversations:
    def __init__(self, table: str) -> None:
        self.table = table

    @property
    def _db(self) -> Any:
        return client("dynamodb")

    def _get_doc(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self._db.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True).get("Item")
        return json.loads(item["doc"]["S"]) if item else None

    # -- conversations -----------------------------------------------------------------------------
    def get(self, conversation_id: str) -> Conversation | None:
        doc = self._get_doc(f"c#{conversation_id}", "meta")
        return Conversation.from_doc(doc) if doc else None

    def current(self, key: str) -> Conversation | None:
        item = self._db.get_item(
            TableName=self.table, Key={"pk": {"S": f"k#{key}"}, "sk": {"S": "current"}}, ConsistentRead=True
        ).get("Item")
        return self.get(item["conversation_id"]["S"]) if item else None

    def open(self, conversation: Conversation, *, replacing: Conversation | None) -> None:
        if replacing is not None:
            self.save(replacing.with_(closed=True))
        self.save(conversation)
        self._db.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"k#{conversation.key}"},
                "sk": {"S": "current"},
                "conversation_id": {"S": conversation.conversation_id},
            },
        )

    def save(self, conversation: Conversation) -> None:
        self._db.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"c#{conversation.conversation_id}"},
                "sk": {"S": "meta"},
                "doc": {"S": json.dumps(conversation.to_doc())},
                "list_pk": {"S": "conv"},
                "updated_at": {"N": str(conversation.updated_at)},
                "queue": {"S": conversation.queue},
                "channel": {"S": conversation.channel},
            },
        )

    def recent(self, *, queue: str | None = None, channel: str | None = None, limit: int = 100) -> list[Conversation]:
        if queue:
            index, condition, values = "by_queue", "queue = :v", {":v": {"S": queue}}
        elif channel:
            index, condition, values = "by_channel", "channel = :v", {":v": {"S": channel}}
        else:
            index, condition, values = "by_updated", "list_pk = :v", {":v": {"S": "conv"}}
        out: list[Conversation] = []
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            IndexName=index,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
        ):
            for item in page["Items"]:
                conversation = self.get(item["pk"]["S"][2:])
                if conversation is None or (channel and conversation.channel != channel):
                    continue
                out.append(conversation)
                if len(out) >= limit:
                    return out
        return out

    # -- messages ----------------------------------------------------------------------------------
    def add_message(self, conversation_id: str, envelope: Envelope, seq: int) -> bool:
        try:
            self._db.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": f"c#{conversation_id}"},
                    "sk": {"S": _msg_sk(envelope)},
                    "doc": {"S": envelope.to_json()},
                    "seq": {"N": str(seq)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def messages(self, conversation_id: str) -> list[Envelope]:
        rows: list[tuple[int, int, Envelope]] = []
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :m)",
            ExpressionAttributeValues={":p": {"S": f"c#{conversation_id}"}, ":m": {"S": "m#"}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                envelope = Envelope.from_json(item["doc"]["S"])
                rows.append((envelope.sent_at, int(item["seq"]["N"]), envelope))
        rows.sort(key=lambda row: (row[0], row[1]))
        return [row[2] for row in rows]

    def mark_written(self, conversation_id: str, envelope: Envelope) -> bool:
        try:
            self._db.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"c#{conversation_id}"}, "sk": {"S": _msg_sk(envelope)}},
                UpdateExpression="SET written_at = :t",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(written_at)",
                ExpressionAttributeValues={":t": {"N": str(int(time.time() * 1000))}},
            )
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def is_written(self, conversation_id: str, envelope: Envelope) -> bool:
        item = self._db.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"c#{conversation_id}"}, "sk": {"S": _msg_sk(envelope)}},
            ConsistentRead=True,
            ProjectionExpression="written_at",
        ).get("Item")
        return bool(item and "written_at" in item)

    # -- crm state ---------------------------------------------------------------------------------
    def crm_state(self, conversation_id: str) -> CrmState:
        doc = self._get_doc(f"c#{conversation_id}", "crm")
        if not doc:
            return CrmState()
        doc["notices"] = tuple(doc.get("notices") or ())
        return CrmState(**doc)

    def save_crm_state(self, conversation_id: str, state: CrmState) -> None:
        self._db.put_item(
            TableName=self.table,
            Item={"pk": {"S": f"c#{conversation_id}"}, "sk": {"S": "crm"}, "doc": {"S": json.dumps(asdict(state))}},
        )


class DynamoProfiles:
    """Customer profiles: one item per identity, updated attribute by attribute so the route stage
    (names) and the crm stage (contact ids) never overwrite each other's writes."""

    def __init__(self, table: str) -> None:
        self.table = table

    def _key(self, key: str) -> dict[str, Any]:
        return {"pk": {"S": f"p#{key}"}, "sk": {"S": "profile"}}

    def profile(self, key: str) -> Profile | None:
        item = client("dynamodb").get_item(TableName=self.table, Key=self._key(key), ConsistentRead=True).get("Item")
        if not item:
            return None
        contacts = {name[len("contact#") :]: value["S"] for name, value in item.items() if name.startswith("contact#")}
        checked = item.get("name_checked_at", {}).get("N")
        return Profile(
            key=key,
            name=item.get("name", {}).get("S") or None,
            name_checked_at=int(checked) if checked else None,
            contacts=contacts,
        )

    def set_name(self, key: str, name: str | None, *, checked_at: int) -> None:
        client("dynamodb").update_item(
            TableName=self.table,
            Key=self._key(key),
            UpdateExpression="SET #n = :n, name_checked_at = :t",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":n": {"S": name or ""}, ":t": {"N": str(checked_at)}},
        )

    def set_contact(self, key: str, provider: str, contact_id: str) -> None:
        client("dynamodb").update_item(
            TableName=self.table,
            Key=self._key(key),
            UpdateExpression="SET #c = :c",
            ExpressionAttributeNames={"#c": f"contact#{provider}"},
            ExpressionAttributeValues={":c": {"S": contact_id}},
        )


class DynamoFailureLog:
    """Reasons for failed deliveries, keyed by SQS message id (kept when SQS moves a message to its DLQ)."""

    def __init__(self, table: str) -> None:
        self.table = table

    def record(self, stage: str, message_id: str, *, error: str, conversation_id: str | None, envelope_id: str | None) -> None:
        names = {"#e": "error", "#a": "attempts", "#u": "updated_at", "#t": "ttl", "#c": "conversation_id", "#v": "envelope_id"}
        values: dict[str, Any] = {
            ":e": {"S": error[:2000]},
            ":one": {"N": "1"},
            ":u": {"N": str(int(time.time() * 1000))},
            ":t": {"N": str(int(time.time()) + FAILURE_TTL_SECONDS)},
            ":c": {"S": conversation_id or ""},
            ":v": {"S": envelope_id or ""},
        }
        client("dynamodb").update_item(
            TableName=self.table,
            Key={"pk": {"S": f"f#{stage}"}, "sk": {"S": message_id}},
            UpdateExpression="SET #e = :e, #u = :u, #t = :t, #c = :c, #v = :v ADD #a :one",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def get(self, stage: str, message_id: str) -> dict[str, Any] | None:
        item = (
            client("dynamodb")
            .get_item(TableName=self.table, Key={"pk": {"S": f"f#{stage}"}, "sk": {"S": message_id}}, ConsistentRead=True)
            .get("Item")
        )
        if not item:
            return None
        return {
            "error": item.get("error", {}).get("S"),
            "attempts": int(item.get("attempts", {}).get("N", "0")),
            "conversation_id": item.get("conversation_id", {}).get("S") or None,
            "envelope_id": item.get("envelope_id", {}).get("S") or None,
        }

    def clear(self, stage: str, message_id: str) -> None:
        client("dynamodb").delete_item(TableName=self.table, Key={"pk": {"S": f"f#{stage}"}, "sk": {"S": message_id}})


class DynamoUsedLinks:
    """Sign-in links already used, in the conversations table (which already has a TTL attribute).

    One conditional put per use: of two callbacks racing with the same link, exactly one writes the
    item. The key is the link's digest (:attr:`switchboard.chat_auth.state.VerifiedState.link_id`),
    never the state itself, which would be a usable link for anyone who can read the table.
    """

    def __init__(self, table: str) -> None:
        self.table = table

    def mark_used(self, link_id: str, *, expires_at: int) -> bool:
        try:
            client("dynamodb").put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": f"l#{link_id}"},
                    "sk": {"S": "used"},
                    "used_at": {"N": str(int(time.time()))},
                    "ttl": {"N": str(int(expires_at))},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise StoreUnavailable(f"conversations table unavailable: {type(exc).__name__}") from exc
        return True
