"""Conversations in DynamoDB.

One table, keyed (pk, sk):

- ``c#<id>`` / ``meta``: the conversation (written by route only), with the index attributes
  ``list_pk``, ``updated_at``, ``queue`` and ``channel`` for ``conversations list``. The indexed
  ``updated_at`` is the conversation's own to within :data:`LIST_REFRESH_MS`: it is rewritten only
  when it lags by that much, since every rewrite of it moves the item in three indexes (six write
  units, two thirds of what a message cost before). :meth:`DynamoConversations.recent` reads that
  much further down the index and orders by the exact time, so lists stay exact;
- ``c#<id>`` / ``crm``: what the crm stage wrote (its own item, so the two stages never race), indexed by
  ``ticket_key`` (``<provider>#<ticket id>``, index ``by_ticket``) so a CRM's event finds its conversation;
- ``c#<id>`` / ``m#<digest of the envelope id>``: one item per message, its key derived from the
  envelope id alone, so storing a duplicate fails its condition instead of adding a copy (whatever
  time the redelivery says it was sent); ``written_at`` marks it written to the CRM;
- ``c#<id>`` / ``o#<reply id>``: one item per reply to the customer (``direction: "out"``), its own prefix so it
  never collides with a customer message (``m#``) nor falls in the crm stage's ``crm``..``m$`` range; the text
  in ``doc``, the delivery (``status``, ``error``, ``sent_at``, ``platform_id``) as attributes that only
  conditional updates change (pending to sent or failed once; sent to delivered or read);
- ``k#<channel:account:customer>`` / ``current``: the customer item: which conversation the customer
  is in now, and the profile (the name, with when it was looked up, and the CRM contact id per
  provider) that later conversations reuse. Route reads it first, every message, so what route needs
  of the customer costs one read; each writer updates only its own attributes;
- ``k#<channel:account:customer>`` / ``c#<closed at ms>#<id>``: a conversation the customer left,
  kept (``ttl``) for the redelivery horizon so a late redelivery is found where it was stored;
- ``f#<stage>`` / ``<message id>``: the last error of a message on its way to a dead-letter queue;
- ``l#<link id>`` / ``used``: a sign-in link that has been used (written by token_validate, once,
  conditionally), removed by the table's TTL (``ttl``) once the link has expired.
- ``s#<conversation id>`` / ``session``: a web chat visitor's session (the token's digest, never the token),
  written by token_validate at the chat start and given its end by the chat function
  (:mod:`switchboard.aws.chat_store`), removed by the TTL a day after it expired.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, replace
from typing import Any

from switchboard.aws.clients import client
from switchboard.conversations import (
    REDELIVERY_HORIZON_MS,
    Conversation,
    CrmState,
    CustomerRecord,
    Located,
    OutMessage,
    Profile,
    StoredMessage,
)
from switchboard.envelope import Envelope
from switchboard.errors import StoreUnavailable
from switchboard.ports import ConversationView, CrmView, WriteMark

FAILURE_TTL_SECONDS = 14 * 24 * 3600  # as long as the dead-letter queues keep messages
LIST_REFRESH_MS = 5 * 60 * 1000  # the indexed time lags a conversation's own by less than this
CUSTOMER_SK = "current"
BATCH_GET_LIMIT = 100  # BatchGetItem's keys per request
BATCH_WRITE_LIMIT = 25
UNPROCESSED_ATTEMPTS = 5

Key = tuple[str, str]


def _msg_sk(envelope: Envelope) -> str:
    return f"m#{hashlib.sha256(envelope.id.encode()).hexdigest()[:32]}"


def _reply_sk(reply_id: str) -> str:
    return f"o#{reply_id}"


def _out_message(item: dict[str, Any]) -> OutMessage:
    doc = json.loads(item["doc"]["S"])
    sent_at = item.get("sent_at", {}).get("N")
    return OutMessage(
        id=doc["id"],
        conversation_id=doc["conversation_id"],
        text=doc["text"],
        created_at=int(doc["created_at"]),
        author=doc.get("author"),
        crm_id=doc.get("crm_id"),
        status=item.get("status", {}).get("S", "pending"),
        error=item.get("error", {}).get("S") or None,
        sent_at=int(sent_at) if sent_at else None,
        platform_id=item.get("platform_id", {}).get("S") or None,
        files=tuple(doc.get("files") or ()),
        unsent_files=tuple(json.loads(item["unsent_files"]["S"])) if "unsent_files" in item else (),
        waiting=bool(item.get("waiting", {}).get("BOOL")),
    )


def _messages_in_order(items: Iterable[dict[str, Any]]) -> list[Envelope]:
    """The customer's messages as sent: by the platform's time, then the order route stored them in."""
    rows = [(Envelope.from_json(item["doc"]["S"]), int(item["seq"]["N"])) for item in items]
    rows.sort(key=lambda row: (row[0].sent_at, row[1]))
    return [envelope for envelope, _ in rows]


def _replies_in_order(items: Iterable[dict[str, Any]]) -> list[OutMessage]:
    """The replies in the order they were written (the id breaks a tie)."""
    return sorted((_out_message(item) for item in items), key=lambda r: (r.created_at, r.id))


def ticket_key(provider: str, ticket_id: str) -> str:
    return f"{provider}#{ticket_id}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _conditional_failed(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return bool(code == "ConditionalCheckFailedException")


def _old_item(exc: Exception) -> dict[str, Any] | None:
    """The item a failed condition met (``ReturnValuesOnConditionCheckFailure=ALL_OLD``); None when there was none."""
    item = getattr(exc, "response", {}).get("Item")
    return item if isinstance(item, dict) and item else None


def _doc(item: dict[str, Any] | None) -> dict[str, Any] | None:
    return json.loads(item["doc"]["S"]) if item and "doc" in item else None


def _crm_state(doc: dict[str, Any] | None) -> CrmState:
    if not doc:
        return CrmState()
    doc = {k: v for k, v in doc.items() if k in CrmState.__dataclass_fields__}
    doc["notices"] = tuple(doc.get("notices") or ())
    return CrmState(**doc)


def _profile(key: str, item: dict[str, Any] | None) -> Profile | None:
    """The profile part of the customer item; None when nothing is known yet (the pointer alone is no profile)."""
    if not item:
        return None
    contacts = {name[len("contact#") :]: value["S"] for name, value in item.items() if name.startswith("contact#")}
    checked = item.get("name_checked_at", {}).get("N")
    if checked is None and not contacts and "name" not in item:
        return None
    return Profile(
        key=key,
        name=item.get("name", {}).get("S") or None,
        name_checked_at=int(checked) if checked else None,
        contacts=contacts,
    )


def listed_at(conversation: Conversation) -> int:
    """The time to index the conversation under: the one it is indexed under while that lags by less than the span."""
    lag = conversation.updated_at - conversation.listed_at
    return conversation.listed_at if 0 <= lag < LIST_REFRESH_MS else conversation.updated_at


def _conversation_item(conversation: Conversation) -> dict[str, Any]:
    return {
        "pk": {"S": f"c#{conversation.conversation_id}"},
        "sk": {"S": "meta"},
        "doc": {"S": json.dumps(conversation.to_doc())},
        "list_pk": {"S": "conv"},
        "updated_at": {"N": str(listed_at(conversation))},  # unchanged, it leaves all three indexes untouched
        "queue": {"S": conversation.queue},
        "channel": {"S": conversation.channel},
    }


def _conversation(item: dict[str, Any] | None) -> Conversation | None:
    doc = _doc(item)
    if item is None or doc is None:
        return None
    conversation = Conversation.from_doc(doc)
    listed = item.get("updated_at", {}).get("N")
    return conversation.with_(listed_at=int(listed)) if listed else conversation


class _Items:
    """Reads and writes of several items, one request per batch (with the retries a batch's unprocessed part needs)."""

    def __init__(self, table: str) -> None:
        self.table = table

    @property
    def _db(self) -> Any:
        return client("dynamodb")

    def get_many(self, keys: list[Key]) -> dict[Key, dict[str, Any]]:
        """Strongly consistent reads of these items in as few requests as DynamoDB allows: one GetItem for one key,
        one BatchGetItem per hundred otherwise. Absent items are absent from the answer."""
        wanted = list(dict.fromkeys(keys))  # BatchGetItem refuses a key twice
        if not wanted:
            return {}
        if len(wanted) == 1:
            item = self._db.get_item(TableName=self.table, Key=_key(*wanted[0]), ConsistentRead=True).get("Item")
            return {wanted[0]: item} if item else {}
        found: dict[Key, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self.table: {"Keys": [_key(*k) for k in wanted[start : start + BATCH_GET_LIMIT]], "ConsistentRead": True}
            }
            for attempt in range(UNPROCESSED_ATTEMPTS):
                answer = self._db.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[(item["pk"]["S"], item["sk"]["S"])] = item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)  # what DynamoDB could not read now (throttled) is asked for again
            else:
                raise StoreUnavailable("conversations table left reads unprocessed (throttled)")
        return found

    def put_many(self, items: list[dict[str, Any]]) -> None:
        """Unconditional puts in one BatchWriteItem per 25 items."""
        for start in range(0, len(items), BATCH_WRITE_LIMIT):
            request: dict[str, Any] = {
                self.table: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_LIMIT]]
            }
            for attempt in range(UNPROCESSED_ATTEMPTS):
                request = self._db.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise StoreUnavailable("conversations table left writes unprocessed (throttled)")


class DynamoConversations:
    """Conversations, messages and the crm stage's record, plus the customer item route reads first.

    Route's customer read stays *in hand* for the message being processed: the name lookup (which
    asks :meth:`profile` and :meth:`set_name`, through the :class:`~switchboard.ports.ProfileStore`
    protocol this class also serves) is answered from it, and a name it looks up is written with
    the customer item's next write instead of on its own (:meth:`repoint`, else :meth:`release_customer`).
    Route handles one message at a time, so one record in hand is enough.
    """

    def __init__(self, table: str) -> None:
        self.table = table
        self._items = _Items(table)
        self._held: CustomerRecord | None = None
        self._owed: tuple[str | None, int] | None = None  # (name, checked at): looked up, not yet written

    @property
    def _db(self) -> Any:
        return client("dynamodb")

    def _get_doc(self, pk: str, sk: str) -> dict[str, Any] | None:
        return _doc(self._db.get_item(TableName=self.table, Key=_key(pk, sk), ConsistentRead=True).get("Item"))

    # -- the customer item -------------------------------------------------------------------------
    def read_customer(self, key: str, *, since: int) -> CustomerRecord:
        self._held, self._owed = None, None
        current: dict[str, Any] | None = None
        left: list[tuple[str, str]] = []
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            # "c#<ms>#<id>" sorts before "current": one range holds the conversations left since `since`, then the item.
            KeyConditionExpression="pk = :p AND sk BETWEEN :from AND :current",
            ExpressionAttributeValues={
                ":p": {"S": f"k#{key}"},
                ":from": {"S": f"c#{max(since, 0):013d}"},
                ":current": {"S": CUSTOMER_SK},
            },
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                sk = item["sk"]["S"]
                if sk == CUSTOMER_SK:
                    current = item
                elif "conversation_id" in item:
                    left.append((sk, item["conversation_id"]["S"]))
        current_id = current["conversation_id"]["S"] if current and "conversation_id" in current else None
        newest_first = tuple(dict.fromkeys(cid for _, cid in sorted(left, reverse=True) if cid != current_id))
        waiting = current["replies_waiting"]["S"] if current and "replies_waiting" in current else None
        record = CustomerRecord(
            key=key, current_id=current_id, profile=_profile(key, current), left=newest_first, waiting=waiting
        )
        self._held = record
        return record

    def locate(self, customer: CustomerRecord, envelope: Envelope, *, check_current: bool) -> Located:
        sk = _msg_sk(envelope)
        meta: Key | None = (f"c#{customer.current_id}", "meta") if customer.current_id else None
        holders = [*([customer.current_id] if check_current and customer.current_id else []), *customer.left]
        found = self._items.get_many([*([meta] if meta else []), *((f"c#{cid}", sk) for cid in holders)])
        conversation = _conversation(found.get(meta)) if meta else None
        for cid in holders:
            item = found.get((f"c#{cid}", sk))
            if item:
                return Located(conversation, stored_in=cid, stored=Envelope.from_json(item["doc"]["S"]))
        return Located(conversation)

    def holds(self, conversation_id: str, envelope: Envelope) -> Envelope | None:
        item = self._db.get_item(
            TableName=self.table, Key=_key(f"c#{conversation_id}", _msg_sk(envelope)), ConsistentRead=True
        ).get("Item")
        return Envelope.from_json(item["doc"]["S"]) if item else None

    def repoint(self, key: str, conversation_id: str, *, replacing: Conversation | None, at: int) -> None:
        if replacing is not None:
            # The closed conversation and the entry that keeps it findable for redeliveries: one request, both
            # harmless to write again (a retry after a crash adds a second entry for the same conversation).
            left = {
                **_key(f"k#{key}", f"c#{at:013d}#{replacing.conversation_id}"),
                "conversation_id": {"S": replacing.conversation_id},
                "ttl": {"N": str((at + REDELIVERY_HORIZON_MS) // 1000)},
            }
            self._items.put_many([_conversation_item(replacing.with_(closed=True)), left])
        sets, names, values = ["conversation_id = :c"], {}, {":c": {"S": conversation_id}}
        held = self._held
        if held is not None and held.key == key and self._owed is not None:
            name, checked_at = self._owed
            sets += ["#n = :n", "name_checked_at = :t"]
            names["#n"] = "name"
            values |= {":n": {"S": name or ""}, ":t": {"N": str(checked_at)}}
            self._owed = None
        self._db.update_item(
            TableName=self.table,
            Key=_key(f"k#{key}", CUSTOMER_SK),
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": names} if names else {}),
        )
        if held is not None and held.key == key:
            self._held = replace(held, current_id=conversation_id)

    def release_customer(self, key: str) -> None:
        held, owed = self._held, self._owed
        self._held, self._owed = None, None
        if held is not None and held.key == key and owed is not None:
            _write_name(self.table, key, owed[0], checked_at=owed[1])

    # -- the profile (ProfileStore), answered from the record in hand when it is this customer's ------------
    def profile(self, key: str) -> Profile | None:
        held = self._held
        if held is not None and held.key == key:
            return held.profile
        return _read_profile(self.table, key)

    def set_name(self, key: str, name: str | None, *, checked_at: int) -> None:
        held = self._held
        if held is None or held.key != key:
            _write_name(self.table, key, name, checked_at=checked_at)
            return
        self._owed = (name, checked_at)
        known = held.profile or Profile(key=key)
        self._held = replace(held, profile=replace(known, name=name or None, name_checked_at=checked_at))

    def set_contact(self, key: str, provider: str, contact_id: str) -> None:
        _write_contact(self.table, key, provider, contact_id)

    # -- conversations -----------------------------------------------------------------------------
    def get(self, conversation_id: str) -> Conversation | None:
        return _conversation(
            self._db.get_item(TableName=self.table, Key=_key(f"c#{conversation_id}", "meta"), ConsistentRead=True).get("Item")
        )

    def current(self, key: str) -> Conversation | None:
        item = self._db.get_item(TableName=self.table, Key=_key(f"k#{key}", CUSTOMER_SK), ConsistentRead=True).get("Item")
        return self.get(item["conversation_id"]["S"]) if item and "conversation_id" in item else None

    def open(self, conversation: Conversation, *, replacing: Conversation | None) -> None:
        """Point the customer at ``conversation`` and write it (route itself writes the message in between)."""
        self.repoint(conversation.key, conversation.conversation_id, replacing=replacing, at=conversation.created_at)
        self.save(conversation)

    def save(self, conversation: Conversation) -> None:
        self._db.put_item(TableName=self.table, Item=_conversation_item(conversation))

    def recent(self, *, queue: str | None = None, channel: str | None = None, limit: int = 100) -> list[Conversation]:
        """The ``limit`` conversations updated last, newest first, exactly.

        The index orders by the indexed time, which lags a conversation's own by less than
        :data:`LIST_REFRESH_MS`; so the index is read on until the indexed time falls that far below
        the ``limit``-th newest conversation found, and what was found is ordered by its own time.
        """
        if queue:
            index, condition, values = "by_queue", "queue = :v", {":v": {"S": queue}}
        elif channel:
            index, condition, values = "by_channel", "channel = :v", {":v": {"S": channel}}
        else:
            index, condition, values = "by_updated", "list_pk = :v", {":v": {"S": "conv"}}
        found: list[Conversation] = []
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            IndexName=index,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            PaginationConfig={"PageSize": BATCH_GET_LIMIT},  # one BatchGetItem per page of the index
        ):
            newest = sorted((c.updated_at for c in found), reverse=True)
            floor = newest[limit - 1] if len(newest) >= limit else None
            # Indexed at most LIST_REFRESH_MS before its own time: a row indexed that far below the floor is older.
            rows = [
                item["pk"]["S"]
                for item in page["Items"]
                if floor is None or int(item["updated_at"]["N"]) + LIST_REFRESH_MS > floor
            ]
            if not rows:
                break
            items = self._items.get_many([(pk, "meta") for pk in rows])
            for pk in rows:
                conversation = _conversation(items.get((pk, "meta")))
                if conversation is not None and not (channel and conversation.channel != channel):
                    found.append(conversation)
        return sorted(found, key=lambda c: c.updated_at, reverse=True)[:limit]

    # -- messages ----------------------------------------------------------------------------------
    def put_message(self, conversation_id: str, envelope: Envelope, seq: int) -> StoredMessage:
        try:
            self._db.put_item(
                TableName=self.table,
                Item={
                    **_key(f"c#{conversation_id}", _msg_sk(envelope)),
                    "doc": {"S": envelope.to_json()},
                    "seq": {"N": str(seq)},
                },
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",  # the copy stored before comes with the refusal
            )
        except Exception as exc:
            if not _conditional_failed(exc):
                raise
            old = _old_item(exc)
            if old is None:
                return StoredMessage(new=False, seq=seq, envelope=envelope)
            return StoredMessage(
                new=False, seq=int(old.get("seq", {}).get("N", "0")), envelope=Envelope.from_json(old["doc"]["S"])
            )
        return StoredMessage(new=True, seq=seq, envelope=envelope)

    def add_message(self, conversation_id: str, envelope: Envelope, seq: int) -> bool:
        return self.put_message(conversation_id, envelope, seq).new

    def _items_under(self, conversation_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The pages of a conversation's items whose sort key starts with ``prefix`` (m#: in, o#: out)."""
        yield from self._db.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": {"S": f"c#{conversation_id}"}, ":s": {"S": prefix}},
            ConsistentRead=True,
        )

    def messages(self, conversation_id: str) -> list[Envelope]:
        return _messages_in_order(item for page in self._items_under(conversation_id, "m#") for item in page["Items"])

    def write_mark(self, conversation_id: str, envelope: Envelope, *, at: int) -> WriteMark:
        try:
            self._db.update_item(
                TableName=self.table,
                Key=_key(f"c#{conversation_id}", _msg_sk(envelope)),
                UpdateExpression="SET written_at = :t",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(written_at)",
                ExpressionAttributeValues={":t": {"N": str(at)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",  # tells "written before" from "no such message"
            )
        except Exception as exc:
            if _conditional_failed(exc):
                return "written before" if _old_item(exc) is not None else "missing"
            raise
        return "marked"

    def mark_written(self, conversation_id: str, envelope: Envelope, *, at: int | None = None) -> bool:
        return self.write_mark(conversation_id, envelope, at=int(time.time() * 1000) if at is None else at) == "marked"

    def is_written(self, conversation_id: str, envelope: Envelope) -> bool:
        item = self._db.get_item(
            TableName=self.table,
            Key=_key(f"c#{conversation_id}", _msg_sk(envelope)),
            ConsistentRead=True,
            ProjectionExpression="written_at",
        ).get("Item")
        return bool(item and "written_at" in item)

    # -- replies (direction "out") ----------------------------------------------------------------------
    def put_reply(self, message: OutMessage) -> bool:
        """Store a reply as pending; False when a reply with this id is stored already (nothing is overwritten)."""
        doc = {
            "id": message.id,
            "conversation_id": message.conversation_id,
            "text": message.text,
            "created_at": message.created_at,
            "author": message.author,
            "crm_id": message.crm_id,
            "files": list(message.files),
        }
        try:
            self._db.put_item(
                TableName=self.table,
                Item={
                    **_key(f"c#{message.conversation_id}", _reply_sk(message.id)),
                    "doc": {"S": json.dumps(doc, ensure_ascii=False)},
                    "status": {"S": "pending"},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def reply(self, conversation_id: str, reply_id: str) -> OutMessage | None:
        item = self._db.get_item(
            TableName=self.table, Key=_key(f"c#{conversation_id}", _reply_sk(reply_id)), ConsistentRead=True
        ).get("Item")
        return _out_message(item) if item else None

    def replies(self, conversation_id: str) -> list[OutMessage]:
        return _replies_in_order(item for page in self._items_under(conversation_id, "o#") for item in page["Items"])

    def mark_reply(
        self,
        conversation_id: str,
        reply_id: str,
        *,
        status: str,
        at: int,
        error: str | None = None,
        platform_id: str | None = None,
        unsent_files: tuple[dict[str, str], ...] = (),
    ) -> bool:
        """Move a pending reply to ``status`` (sent or failed): one write conditional on it still being pending,
        so a redelivery (or a racing attempt) records nothing a second time. False when it was not pending."""
        sets, values = ["#s = :s"], {":s": {"S": status}, ":pending": {"S": "pending"}}
        removes = " REMOVE waiting" + ("" if error else ", #e")  # a held reply's "waiting" reason goes once it is sent
        if unsent_files:
            sets.append("unsent_files = :u")
            values[":u"] = {"S": json.dumps(list(unsent_files), ensure_ascii=False)[:20_000]}
        if status == "sent":
            sets.append("sent_at = :t")
            values[":t"] = {"N": str(at)}
        if error:
            sets.append("#e = :e")
            values[":e"] = {"S": error[:2000]}
        if platform_id:
            sets.append("platform_id = :i")
            values[":i"] = {"S": platform_id}
        return self._update_if(
            Key=_key(f"c#{conversation_id}", _reply_sk(reply_id)),
            UpdateExpression="SET " + ", ".join(sets) + removes,
            ConditionExpression="attribute_exists(pk) AND #s = :pending",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues=values,
        )

    def _update_if(self, **update: Any) -> bool:
        """One UpdateItem whose ``ConditionExpression`` decides: False when the condition refused it (the answer a
        redelivery or a racing attempt gets), True when it was written; any other failure raises."""
        try:
            self._db.update_item(TableName=self.table, **update)
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def advance_reply(self, conversation_id: str, reply_id: str, *, status: str, error: str | None = None) -> bool:
        """A platform's receipt: move a reply's delivery forward (sent -> delivered -> read), never back.

        ``failed`` (a platform that reports a failure after taking the reply, as WhatsApp does) applies
        only to a reply not yet delivered. One conditional write; False when the receipt moved nothing.
        """
        earlier = {"delivered": ("sent",), "read": ("sent", "delivered"), "failed": ("pending", "sent")}.get(status)
        if earlier is None:
            return False
        values: dict[str, Any] = {":s": {"S": status}}
        allowed = []
        for n, before in enumerate(earlier):
            values[f":b{n}"] = {"S": before}
            allowed.append(f":b{n}")
        sets = ["#s = :s"]
        names = {"#s": "status"}
        if error:
            sets.append("#e = :e")
            names["#e"] = "error"
            values[":e"] = {"S": error[:2000]}
        return self._update_if(
            Key=_key(f"c#{conversation_id}", _reply_sk(reply_id)),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=f"attribute_exists(pk) AND #s IN ({', '.join(allowed)})",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def view(self, conversation_id: str) -> ConversationView | None:
        """The conversation's partition in one query (paginated only for a very long one): the sender's whole read."""
        conversation: Conversation | None = None
        state = CrmState()
        received: list[dict[str, Any]] = []
        replies: list[dict[str, Any]] = []
        for page in self._db.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"c#{conversation_id}"}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                sk = item["sk"]["S"]
                if sk == "meta":
                    conversation = _conversation(item)
                elif sk == "crm":
                    state = _crm_state(_doc(item))
                elif sk.startswith("m#"):
                    received.append(item)
                elif sk.startswith("o#"):
                    replies.append(item)
        if conversation is None:
            return None
        return ConversationView(conversation, state, _messages_in_order(received), _replies_in_order(replies))

    def hold_reply(self, conversation_id: str, reply_id: str, *, reason: str) -> bool:
        """A pending reply that waits for the customer to write again: still pending, ``error`` says why.
        One write conditional on it being pending; False when it was not."""
        return self._update_if(
            Key=_key(f"c#{conversation_id}", _reply_sk(reply_id)),
            UpdateExpression="SET waiting = :w, #e = :e",
            ConditionExpression="attribute_exists(pk) AND #s = :pending",
            ExpressionAttributeNames={"#e": "error", "#s": "status"},
            ExpressionAttributeValues={":w": {"BOOL": True}, ":e": {"S": reason[:2000]}, ":pending": {"S": "pending"}},
        )

    def set_waiting(self, key: str, conversation_id: str | None) -> None:
        """Mark (or, with None, clear) on the customer item that a conversation's replies wait for the customer's
        next message: route reads that item with every message anyway, so noticing costs no extra read."""
        if conversation_id is None:
            update: dict[str, Any] = {"UpdateExpression": "REMOVE replies_waiting"}
        else:
            update = {
                "UpdateExpression": "SET replies_waiting = :w",
                "ExpressionAttributeValues": {":w": {"S": conversation_id}},
            }
        self._db.update_item(TableName=self.table, Key=_key(f"k#{key}", CUSTOMER_SK), **update)

    def conversation_for_ticket(self, provider: str, ticket_id: str) -> str | None:
        """The conversation whose ticket or case this is (the ``by_ticket`` index), or None: a CRM event about
        something Switchboard did not open is answered and ignored."""
        answer = self._db.query(
            TableName=self.table,
            IndexName="by_ticket",
            KeyConditionExpression="ticket_key = :t",
            ExpressionAttributeValues={":t": {"S": ticket_key(provider, ticket_id)}},
            Limit=1,
        )
        for item in answer.get("Items") or []:
            pk = str(item["pk"]["S"])
            if pk.startswith("c#"):
                return pk[2:]
        return None

    # -- crm state ---------------------------------------------------------------------------------
    def crm_view(self, conversation_id: str, envelope: Envelope) -> CrmView:
        meta, message, crm = (
            (f"c#{conversation_id}", "meta"),
            (f"c#{conversation_id}", _msg_sk(envelope)),
            (f"c#{conversation_id}", "crm"),
        )
        found = self._items.get_many([meta, message, crm])
        doc = _doc(found.get(meta))
        return CrmView(
            conversation=Conversation.from_doc(doc) if doc else None,
            written="written_at" in (found.get(message) or {}),
            state=_crm_state(_doc(found.get(crm))),
            indexed="ticket_key" in (found.get(crm) or {}),
        )

    def crm_state(self, conversation_id: str) -> CrmState:
        """The crm stage's record, with how many messages it wrote and when it last did, counted from their marks."""
        doc: dict[str, Any] | None = None
        written: list[int] = []
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :p AND sk BETWEEN :crm AND :m",  # "crm", then every "m#..." ("meta" sorts after)
            ExpressionAttributeValues={":p": {"S": f"c#{conversation_id}"}, ":crm": {"S": "crm"}, ":m": {"S": "m$"}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                if item["sk"]["S"] == "crm":
                    doc = _doc(item)
                elif "written_at" in item:
                    written.append(int(item["written_at"]["N"]))
        return replace(_crm_state(doc), messages_written=len(written), stage_ran_at=max(written) if written else None)

    def save_crm_state(self, conversation_id: str, state: CrmState) -> None:
        doc = {k: v for k, v in asdict(state).items() if k not in ("messages_written", "stage_ran_at")}  # derived when read
        item = {**_key(f"c#{conversation_id}", "crm"), "doc": {"S": json.dumps(doc)}}
        if state.ticket_id and state.provider != "none":  # indexed (by_ticket): the CRM's events name the ticket
            item["ticket_key"] = {"S": ticket_key(state.provider, state.ticket_id)}
        self._db.put_item(TableName=self.table, Item=item)


def _read_profile(table: str, key: str) -> Profile | None:
    item = client("dynamodb").get_item(TableName=table, Key=_key(f"k#{key}", CUSTOMER_SK), ConsistentRead=True).get("Item")
    return _profile(key, item)


def _write_name(table: str, key: str, name: str | None, *, checked_at: int) -> None:
    client("dynamodb").update_item(
        TableName=table,
        Key=_key(f"k#{key}", CUSTOMER_SK),
        UpdateExpression="SET #n = :n, name_checked_at = :t",
        ExpressionAttributeNames={"#n": "name"},
        ExpressionAttributeValues={":n": {"S": name or ""}, ":t": {"N": str(checked_at)}},
    )


def _write_contact(table: str, key: str, provider: str, contact_id: str) -> None:
    client("dynamodb").update_item(
        TableName=table,
        Key=_key(f"k#{key}", CUSTOMER_SK),
        UpdateExpression="SET #c = :c",
        ExpressionAttributeNames={"#c": f"contact#{provider}"},
        ExpressionAttributeValues={":c": {"S": contact_id}},
    )


class DynamoProfiles:
    """Customer profiles, on the customer item: updated attribute by attribute so the route stage (names and the
    current-conversation pointer) and the crm stage (contact ids) never overwrite each other's writes."""

    def __init__(self, table: str) -> None:
        self.table = table

    def profile(self, key: str) -> Profile | None:
        return _read_profile(self.table, key)

    def set_name(self, key: str, name: str | None, *, checked_at: int) -> None:
        _write_name(self.table, key, name, checked_at=checked_at)

    def set_contact(self, key: str, provider: str, contact_id: str) -> None:
        _write_contact(self.table, key, provider, contact_id)


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
