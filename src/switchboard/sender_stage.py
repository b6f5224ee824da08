"""The sender stage: agents' replies from the outbound queue to the customer's platform, each recorded once.

Two kinds of envelope arrive on the outbound queue (FIFO, one message group per conversation, so
replies reach the platform in the order they were written and two attempts at one conversation
never overlap):

- a **reply** (``switchboard reply``): stored as pending before it was queued; the envelope names it
  (``id`` = the reply's id) and the stage sends the stored text, never the envelope's;
- a **CRM event** (``data.crm_event``, queued by the crm_events function once the CRM's request is
  verified): the stage reads the ticket's replies from the CRM's API
  (:meth:`~switchboard.crm.base.CrmAdapter.read_thread`), stores each new one as pending under an
  id derived from the CRM's own record id, and sends every pending reply of the conversation in
  order. The event only says "look"; what is sent is what the CRM holds, so a lost, repeated or
  reordered event changes nothing. The same read honours an agent's re-link: when the ticket's
  contact is no longer the one Switchboard wrote the customer's messages as, the customer's profile
  takes the new contact, and the customer's next conversation opens on it.

Exactly once rests on two things. A reply is stored by a write conditional on its id (derived from
the CRM's record, so a second read of the same comment stores nothing), and its delivery moves from
``pending`` to ``sent`` by one write conditional on it being pending, so a redelivery of a sent
reply finds it sent and calls nothing. A crash between the platform's acceptance and that write
makes the next attempt call again: the channels make that harmless where the platform allows it
(LINE's retry key and GBM's message id are derived from the reply's id, the same on every attempt).

A refusal that will not change (:class:`~switchboard.channels.base.SendRefused`) marks the reply
``failed`` with the platform's reason at once; a retryable failure (5xx, 429, a timeout) is left to
the stage runner's backoff, and after the last attempt :func:`give_up` marks it failed the same way
before it is dead-lettered. Either way a private note on the ticket or case tells the agent, where
they work, that the customer did not get the reply and why.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from switchboard import channels
from switchboard.attachments import Limits as FileLimits
from switchboard.attachments import content_type_of, extension_of_name, extensions_of_type, signature_matches
from switchboard.channels.base import FetchRequest, OutFile, Reply, SendDeferred, SendRefused
from switchboard.conversations import Conversation, OutMessage
from switchboard.crm.base import AgentFile, AgentReply, CrmAdapter, OwnWrites
from switchboard.crm.http import channel_label, describe_message
from switchboard.envelope import Envelope, EnvelopeError
from switchboard.errors import ConfigurationError, Permanent
from switchboard.outbound import CRM_EVENT, RESUME
from switchboard.ports import (
    ConversationView,
    Fetcher,
    FetchFailed,
    FetchTooLarge,
    ProfileStore,
    ReplyStore,
    SecretReader,
    SettingsReader,
    SharedBlobs,
)
from switchboard.secret_names import secret_name
from switchboard.settings import Account, CrmSettings

STORED_ONLY = frozenset({"chat"})  # the widget reads the reply from the conversation (interface section 7)
# Replies read from a CRM get an id derived from the CRM's record: the same comment read twice is one reply.
REPLY_NAMESPACE = uuid.UUID("6f0b5a36-6b5e-4a55-9a0e-2f4c1d7e8a11")
FILE_URL_SECONDS = 900  # how long a platform may take to fetch an agent's file from the presigned URL
FILE_FETCH_SECONDS = 20.0
NOTE_TEXT_LIMIT = 300  # how much of the undelivered reply the agent's note quotes
HELD_BEHIND = "awaiting_customer: held behind an earlier reply that waits for the customer to write again"
log = logging.getLogger("switchboard.sender_stage")

AdapterFactory = Callable[[CrmSettings], CrmAdapter]


class ReplyFailed(Permanent):
    """The platform will not take this reply: it is marked failed and dead-lettered with the reason."""


@dataclass
class SenderDeps:
    settings: SettingsReader
    secrets: SecretReader
    secrets_prefix: str
    conversations: ReplyStore
    http: Any  # an outbound_http.Client
    clock: Callable[[], float] = field(default=time.time)
    crm_adapter_for: AdapterFactory | None = None  # reads replies and writes notes; None: no CRM is reachable
    profiles: ProfileStore | None = None
    fetcher: Fetcher | None = None  # agents' files from the CRM
    blobs: SharedBlobs | None = None  # ... into the attachments bucket, offered by presigned URL


def reply_id_for(provider: str, crm_id: str) -> str:
    """The reply's id for a CRM record: stable across every read of it, never one of ``switchboard reply``'s ids."""
    return f"c{uuid.uuid5(REPLY_NAMESPACE, f'{provider}:{crm_id}').hex}"


def process(envelope: Envelope, deps: SenderDeps) -> dict[str, Any]:
    conversation_id = envelope.conversation_id
    if not conversation_id:
        raise EnvelopeError("the sender needs an envelope naming its conversation")
    event = envelope.data.get(CRM_EVENT)
    if isinstance(event, Mapping):
        return _sync(conversation_id, event, deps)
    store = deps.conversations
    if envelope.data.get(RESUME):
        view = store.view(conversation_id)
        if view is None:
            raise ReplyFailed(f"conversation {conversation_id} does not exist")
        return {"conversation_id": conversation_id, "resumed": True, **_send_pending(view, deps, resume=True)}
    stored = store.reply(conversation_id, envelope.id)
    if stored is None:
        raise ReplyFailed(f"conversation {conversation_id} holds no reply {envelope.id}")
    if stored.status != "pending":  # a redelivery: what was recorded stands, nothing is sent again
        return {"conversation_id": conversation_id, "reply_id": stored.id, "sent": False, "reason": f"already {stored.status}"}
    view = store.view(conversation_id)
    if view is None:
        raise ReplyFailed(f"conversation {conversation_id} does not exist")
    if stored.waiting or _waits_behind(view, stored):
        # Order holds: a reply never overtakes one that waits for the customer (it goes when they answer).
        if not stored.waiting:
            store.hold_reply(conversation_id, stored.id, reason=HELD_BEHIND)
        return {"conversation_id": conversation_id, "reply_id": stored.id, "sent": False, "reason": "waiting for the customer"}
    outcome = _deliver(view, stored, deps)
    if outcome.get("failed"):
        raise ReplyFailed(str(outcome["failed"]))
    return outcome


def _waits_behind(view: ConversationView, reply: OutMessage) -> bool:
    return any(r.waiting and r.status == "pending" and (r.created_at, r.id) < (reply.created_at, reply.id) for r in view.replies)


def _send_pending(view: ConversationView, deps: SenderDeps, *, resume: bool) -> dict[str, int]:
    """Every pending reply in the order written; from the first one that must wait for the customer on, they wait.

    ``resume`` (the customer wrote again) offers the waiting ones too; otherwise they stay as they are.
    """
    store = deps.conversations
    sent = failed = held = 0
    holding = False
    for reply in view.replies:
        if reply.status != "pending":
            continue
        if holding or (reply.waiting and not resume):
            if not reply.waiting:
                store.hold_reply(view.conversation.conversation_id, reply.id, reason=HELD_BEHIND)
            holding, held = True, held + 1
            continue
        outcome = _deliver(view, reply, deps)
        if outcome.get("deferred"):
            holding, held = True, held + 1
        failed += 1 if outcome.get("failed") else 0
        sent += 1 if outcome.get("sent") else 0
    return {"sent": sent, "failed": failed, "held": held}


def give_up(envelope: Envelope, reason: str, deps: SenderDeps) -> None:
    """After the last retryable attempt, before the envelope is dead-lettered: the reply it was sending shows
    ``failed`` with the last reason, and the agent gets the note. For a CRM event, that is the first reply
    still pending (the one every attempt stopped at; the ones before it were sent)."""
    conversation_id = envelope.conversation_id
    if not conversation_id:
        return
    view = deps.conversations.view(conversation_id)
    if view is None:
        return
    if isinstance(envelope.data.get(CRM_EVENT), Mapping):
        stuck = next((r for r in view.replies if r.status == "pending"), None)
    else:
        stuck = next((r for r in view.replies if r.id == envelope.id and r.status == "pending"), None)
    if stuck is not None:
        _fail(view, stuck, f"retries_exhausted: {reason}", deps)


# -- a CRM event: read the ticket's replies, store the new ones, send what is pending --------------------------


def _sync(conversation_id: str, event: Mapping[str, Any], deps: SenderDeps) -> dict[str, Any]:
    provider, ticket_id = str(event.get("provider") or ""), str(event.get("ticket_id") or "")
    crm = deps.settings.crm()
    ignored = {"conversation_id": conversation_id, "sent": 0}
    if crm.provider != provider:
        return {**ignored, "reason": f"the configured CRM is {crm.provider}, not {provider}"}
    if crm.option("replies", True) is False:
        return {**ignored, "reason": "crm.replies is false"}
    if deps.crm_adapter_for is None:
        raise ConfigurationError("the sender has no CRM adapter")
    store = deps.conversations
    view = store.view(conversation_id)
    if view is None or view.state.provider != provider or view.state.ticket_id != ticket_id:
        return {**ignored, "reason": f"{provider} ticket {ticket_id} is not this conversation's"}
    adapter = deps.crm_adapter_for(crm)
    own = OwnWrites(
        contact_ids=frozenset(c for c in (view.state.contact_id,) if c),
        message_ids=frozenset(m.id for m in view.messages),
        texts=frozenset(describe_message(m) for m in view.messages),
    )
    thread = adapter.read_thread(ticket_id, own=own)
    relinked = _relink(view, provider, thread.contact_id, deps)
    known = {r.crm_id for r in view.replies if r.crm_id}
    account = deps.settings.account(view.conversation.account_id)
    added: list[OutMessage] = []
    # Placed in the transcript when Switchboard read them, in the CRM's order: the CRM's clock is not ours (a
    # reply stamped before the customer's message it answers would list above it), and every reply written
    # before this read is read now, so nothing read later can belong before these.
    at = max(int(deps.clock() * 1000), max((r.created_at for r in view.replies), default=0) + 1)
    for agent_reply in sorted(thread.replies, key=lambda r: (r.created_at, r.crm_id)):
        if agent_reply.crm_id in known or not (agent_reply.text.strip() or agent_reply.files):
            continue
        message = replace(_new_reply(view, provider, agent_reply, account, deps), created_at=at + len(added))
        if store.put_reply(message):
            added.append(message)
    view = replace(view, replies=sorted([*view.replies, *added], key=lambda r: (r.created_at, r.id)))
    counts = _send_pending(view, deps, resume=False)
    return {"conversation_id": conversation_id, "read": len(thread.replies), "new": len(added), **counts, "relinked": relinked}


def _relink(view: ConversationView, provider: str, contact_id: str | None, deps: SenderDeps) -> bool:
    """The agent moved the ticket to another contact: the customer's next conversation opens on that one."""
    if not contact_id or contact_id == view.state.contact_id or deps.profiles is None:
        return False
    profile = deps.profiles.profile(view.conversation.key)
    if profile is not None and profile.contacts.get(provider) == contact_id:
        return False
    deps.profiles.set_contact(view.conversation.key, provider, contact_id)
    log.info("customer re-linked", extra={"conversation_id": view.conversation.conversation_id, "provider": provider})
    return True


def _new_reply(
    view: ConversationView, provider: str, agent_reply: AgentReply, account: Account | None, deps: SenderDeps
) -> OutMessage:
    reply_id = reply_id_for(provider, agent_reply.crm_id)
    files: list[dict[str, Any]] = []
    for index, file in enumerate(agent_reply.files):
        files.append(_keep_file(view.conversation, reply_id, index, file, account, deps))
    return OutMessage(
        id=reply_id,
        conversation_id=view.conversation.conversation_id,
        text=agent_reply.text,
        created_at=agent_reply.created_at,
        author=agent_reply.author,
        crm_id=agent_reply.crm_id,
        files=tuple(files),
    )


def _kind(content_type: str | None) -> str:
    major = (content_type or "").split("/", 1)[0].strip().lower()
    return major if major in ("image", "video", "audio") else "file"


def _keep_file(
    conversation: Conversation, reply_id: str, index: int, file: AgentFile, account: Account | None, deps: SenderDeps
) -> dict[str, Any]:
    """An agent's file into the attachments bucket, within the account's limits; or why it will not be sent.

    Fetched once, when the reply is first read (the CRM's credential is at hand then, and never stored);
    the send offers the kept copy by presigned URL.
    """
    doc: dict[str, Any] = {"name": file.name, "content_type": file.content_type, "size": file.size}
    if account is None or deps.fetcher is None or deps.blobs is None:
        return {**doc, "reason": "files cannot be kept by this stack"}
    limits = FileLimits.of(account)
    extension = extension_of_name(file.name)
    if extension is None:
        extension = next(iter(extensions_of_type(file.content_type)), None)
    if extension is None or extension not in limits.extensions:
        return {**doc, "reason": f"the account's attachments do not allow {extension or 'this type of'} files"}
    if file.size is not None and file.size > limits.max_bytes:
        return {**doc, "reason": f"{file.size} bytes is over the account's max_bytes {limits.max_bytes}"}
    try:
        fetched = deps.fetcher.get(
            FetchRequest(file.url, headers=file.headers), max_bytes=limits.max_bytes, timeout=FILE_FETCH_SECONDS
        )
    except FetchTooLarge:
        return {**doc, "reason": f"over the account's max_bytes {limits.max_bytes}"}
    except FetchFailed as exc:
        if exc.retryable:
            raise  # the whole event is read again later, the file with it
        return {**doc, "reason": f"not fetched from the CRM: {exc}"}
    if signature_matches(extension, fetched.body) is False:
        return {**doc, "reason": f"the bytes are not a {extension} file"}
    key = f"replies/{conversation.conversation_id}/{reply_id}/{index}.{extension}"
    content_type = content_type_of(extension)
    deps.blobs.put(key, fetched.body, content_type=content_type)
    return {**doc, "content_type": content_type, "size": len(fetched.body), "stored_key": key, "kind": _kind(content_type)}


# -- sending one reply ----------------------------------------------------------------------------------------


def _deliver(view: ConversationView, stored: OutMessage, deps: SenderDeps) -> dict[str, Any]:
    """Send one pending reply; a final refusal marks it failed (with the note) and says so, a retryable one raises."""
    store = deps.conversations
    conversation = view.conversation
    conversation_id = conversation.conversation_id
    now = int(deps.clock() * 1000)
    channel = conversation.channel
    base = {"conversation_id": conversation_id, "reply_id": stored.id, "channel": channel}
    if channel in STORED_ONLY:
        store.mark_reply(conversation_id, stored.id, status="sent", at=now)
        return {**base, "sent": True}

    account = deps.settings.account(conversation.account_id)
    if account is None:
        # Configuration can be fixed and the reply redriven: retryable, so it waits in the backoff first.
        raise ConfigurationError(f"account {conversation.account_id} is not configured")
    secrets = deps.secrets.get(secret_name(deps.secrets_prefix, "account", account.id, account.channel))
    adapter = channels.adapter(channel)
    offered, unsent = _offered_files(stored, adapter.file_kinds, deps)
    reply = Reply(
        id=stored.id,
        conversation_id=conversation_id,
        customer_id=conversation.customer.id,
        text=stored.text,
        last_customer_message_at=max((m.sent_at for m in view.messages), default=None),
        author=stored.author,
        files=offered,
    )
    try:
        sent = adapter.send(reply, account, secrets, deps.http)
    except SendDeferred as exc:  # e.g. WhatsApp outside 24 h: the re-engagement template went instead
        store.hold_reply(conversation_id, stored.id, reason=f"{exc.code}: {exc.message}")
        store.set_waiting(conversation.key, conversation_id)
        return {**base, "sent": False, "deferred": exc.code}
    except SendRefused as exc:
        reason = f"{exc.code}: {exc.message}"
        _fail(view, stored, reason, deps)
        return {**base, "sent": False, "failed": reason}
    except NotImplementedError:
        reason = f"not_supported: sending replies on {channel} is not built yet"
        _fail(view, stored, reason, deps)
        return {**base, "sent": False, "failed": reason}
    unsent += [{"name": name, "reason": why} for name, why in sent.unsent_files]
    store.mark_reply(conversation_id, stored.id, status="sent", at=now, platform_id=sent.platform_id, unsent_files=tuple(unsent))
    return {**base, "sent": True}


def _offered_files(
    stored: OutMessage, kinds: frozenset[str], deps: SenderDeps
) -> tuple[tuple[OutFile, ...], list[dict[str, str]]]:
    offered: list[OutFile] = []
    unsent: list[dict[str, str]] = []
    for file in stored.files:
        name = str(file.get("name") or "file")
        if file.get("reason"):
            unsent.append({"name": name, "reason": str(file["reason"])})
        elif file.get("kind") not in kinds:
            unsent.append({"name": name, "reason": f"the channel does not carry {file.get('kind')} files"})
        elif deps.blobs is None:
            unsent.append({"name": name, "reason": "files cannot be offered by this stack"})
        else:
            url = deps.blobs.presigned_url(str(file["stored_key"]), expires_in=FILE_URL_SECONDS)
            offered.append(OutFile(name, url, str(file["kind"]), file.get("content_type"), file.get("size")))
    return tuple(offered), unsent


def _fail(view: ConversationView, reply: OutMessage, reason: str, deps: SenderDeps) -> None:
    """Failed once: the reply's delivery says why, and a private note tells the agent where they work."""
    conversation_id = view.conversation.conversation_id
    if not deps.conversations.mark_reply(conversation_id, reply.id, status="failed", at=int(deps.clock() * 1000), error=reason):
        log.warning("reply %s was no longer pending when it failed", reply.id)
        return
    _note(view, reply, reason, deps)


def _note(view: ConversationView, reply: OutMessage, reason: str, deps: SenderDeps) -> None:
    crm = deps.settings.crm()
    state = view.state
    if crm.provider in ("none", "") or deps.crm_adapter_for is None or not state.ticket_id or state.provider != crm.provider:
        return
    label = channel_label(view.conversation.channel)
    quoted = reply.text if len(reply.text) <= NOTE_TEXT_LIMIT else reply.text[: NOTE_TEXT_LIMIT - 1] + "\u2026"
    text = f'Switchboard: the customer did not receive this reply on {label}.\nReason: {reason}\nReply: "{quoted}"'
    try:
        deps.crm_adapter_for(crm).add_private_note(state.ticket_id, text, key=f"undelivered:{reply.id}")
    except Exception as exc:  # the reply's own record says failed; the note is the agent's convenience
        log.warning(
            "could not add the undelivered-reply note", extra={"reply_id": reply.id, "error": f"{type(exc).__name__}: {exc}"}
        )


__all__ = ["ReplyFailed", "SenderDeps", "give_up", "process", "reply_id_for"]
