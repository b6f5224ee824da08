"""Agents' replies read from the CRM: stored once under ids derived from the CRM's records, sent in order,
failures shown on the reply and told to the agent, the agent's re-link honoured, files kept and offered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest
from fakes.ports import FakeSecrets, FakeSettings, RecordingPublisher

from switchboard import channels, route_stage, sender_stage
from switchboard.aws.blob_store import S3BlobStore
from switchboard.aws.conversation_store import DynamoConversations, DynamoProfiles
from switchboard.channels.base import FetchRequest, Reply, SendRefused, SendRetryable, Sent
from switchboard.conversations import Conversation, CrmState
from switchboard.crm.base import AgentFile, AgentReply, CrmThread, OwnWrites
from switchboard.errors import Retryable
from switchboard.outbound import crm_event_envelope, outbound_envelope
from switchboard.ports import Fetched, FetchFailed
from switchboard.route_stage import RouteDeps
from switchboard.sender_stage import SenderDeps, reply_id_for
from switchboard.settings import Account, CrmSettings, Workstream

from ._fakes import envelope

T0 = 1_700_000_000_000
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
ACCOUNT = Account(
    id="line-tokyo",
    channel="line",
    workstream="social",
    options={"attachments": {"max_bytes": 1000, "extensions": ["png", "pdf"]}},
)
ZENDESK = CrmSettings(provider="zendesk", options={"subdomain": "acme"})


def settings(crm: CrmSettings = ZENDESK) -> FakeSettings:
    return FakeSettings(
        accounts={"line-tokyo": ACCOUNT},
        workstreams={"social": Workstream(id="social", fallback_queue="general")},
        crm_settings=crm,
    )


@dataclass
class FakeCrm:
    """The CRM as the sender sees it: a thread to read, notes written, and what it was told about its own writes."""

    thread: CrmThread
    notes: list[tuple[str, str, str]] = field(default_factory=list)
    owns: list[OwnWrites] = field(default_factory=list)
    reads: int = 0
    fail_read: Exception | None = None

    def read_thread(self, ticket_id: str, *, own: OwnWrites) -> CrmThread:
        self.reads += 1
        self.owns.append(own)
        if self.fail_read is not None:
            raise self.fail_read
        assert ticket_id == self.thread.ticket_id
        return self.thread

    def add_private_note(self, ticket_id: str, text: str, *, key: str) -> None:
        self.notes.append((ticket_id, text, key))


class FakeChannel:
    file_kinds = frozenset({"image"})

    def __init__(self) -> None:
        self.sent: list[Reply] = []
        self.outcomes: dict[str, Exception] = {}  # reply text -> what the platform answers
        self.unsent: tuple[tuple[str, str], ...] = ()

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        self.sent.append(reply)
        if reply.text in self.outcomes:
            raise self.outcomes[reply.text]
        return Sent(platform_id=f"p-{reply.id}", unsent_files=self.unsent)


@dataclass
class FakeFetcher:
    bodies: dict[str, bytes] = field(default_factory=dict)
    requests: list[FetchRequest] = field(default_factory=list)

    def get(self, request: FetchRequest, *, max_bytes: int, timeout: float, check: Any = None) -> Fetched:
        self.requests.append(request)
        if request.url not in self.bodies:
            raise FetchFailed(f"404 from {request.target}", retryable=False, status=404)
        return Fetched(body=self.bodies[request.url], content_type="image/png")


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> FakeChannel:
    fake = FakeChannel()
    monkeypatch.setattr(channels, "adapter", lambda name: fake)
    return fake


def open_conversation(store: DynamoConversations, *, ticket: str = "T-1", contact: str = "C-9") -> Conversation:
    deps = RouteDeps(settings=settings(), conversations=store, crm_queue=RecordingPublisher(), clock=lambda: T0 / 1000)
    route_stage.process(envelope("my order is late", event_id="a", sent_at=T0 - 5000), deps)
    conversation = store.current("line:line-tokyo:U1")
    assert conversation is not None
    store.save_crm_state(conversation.conversation_id, CrmState(provider="zendesk", contact_id=contact, ticket_id=ticket))
    return conversation


def agent(crm_id: str, text: str, at: int, **kw: Any) -> AgentReply:
    return AgentReply(crm_id=crm_id, text=text, created_at=at, author="Aiko (agent)", **kw)


def sender(store: DynamoConversations, crm: FakeCrm, **kw: Any) -> SenderDeps:
    base: dict[str, Any] = {
        "settings": settings(),
        "secrets": FakeSecrets(values={"sb/account/line/line-tokyo": {"channel_access_token": "tok"}}),
        "secrets_prefix": "sb",
        "conversations": store,
        "http": object(),
        "clock": lambda: T0 / 1000 + 60,
        "crm_adapter_for": lambda settings: crm,
    }
    base.update(kw)
    return SenderDeps(**base)


def event_for(conversation: Conversation, ticket: str = "T-1", n: int = 1) -> Any:
    return crm_event_envelope(conversation.conversation_id, "zendesk", ticket, received_at=T0 + n, correlation_id=f"req-{n}")


def test_an_event_reads_the_replies_stores_them_once_and_sends_them_in_the_crms_order(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("202", "second", T0 + 2000), agent("201", "first", T0 + 1000))))
    outcome = sender_stage.process(event_for(conversation), sender(conversations, crm))
    assert (outcome["new"], outcome["sent"]) == (2, 2)
    assert [r.text for r in channel.sent] == ["first", "second"]
    assert [r.id for r in channel.sent] == [reply_id_for("zendesk", "201"), reply_id_for("zendesk", "202")]
    stored = conversations.replies(conversation.conversation_id)
    assert [(r.crm_id, r.status, r.author, r.platform_id) for r in stored] == [
        ("201", "sent", "Aiko (agent)", f"p-{reply_id_for('zendesk', '201')}"),
        ("202", "sent", "Aiko (agent)", f"p-{reply_id_for('zendesk', '202')}"),
    ]
    # What Switchboard wrote itself is handed to the adapter, so it can never read it back as a reply.
    assert crm.owns[0].contact_ids == frozenset({"C-9"})
    assert crm.owns[0].message_ids == frozenset({"line:line-tokyo:a"})


def test_a_repeated_or_reordered_event_sends_nothing_twice_and_a_later_reply_once(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "first", T0 + 1000),)))
    deps = sender(conversations, crm)
    for n in (1, 2, 3):
        sender_stage.process(event_for(conversation, n=n), deps)
    assert [r.text for r in channel.sent] == ["first"]
    crm.thread = replace(crm.thread, replies=(*crm.thread.replies, agent("203", "later", T0 + 3000)))
    sender_stage.process(event_for(conversation, n=4), deps)
    assert [r.text for r in channel.sent] == ["first", "later"]


def test_events_about_another_ticket_or_crm_or_with_replies_off_read_nothing(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "first", T0 + 1000),)))
    assert "not this conversation's" in sender_stage.process(event_for(conversation, "T-2"), sender(conversations, crm))["reason"]
    other = sender(conversations, crm, settings=settings(CrmSettings(provider="kustomer")))
    assert "kustomer" in sender_stage.process(event_for(conversation), other)["reason"]
    off = sender(conversations, crm, settings=settings(replace(ZENDESK, options={"replies": False})))
    assert "replies is false" in sender_stage.process(event_for(conversation), off)["reason"]
    assert crm.reads == 0 and channel.sent == []


def test_a_final_refusal_fails_that_reply_tells_the_agent_and_the_next_reply_still_goes(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "blocked one", T0 + 1000), agent("202", "next", T0 + 2000))))
    channel.outcomes["blocked one"] = SendRefused("the user blocked the account", code="blocked")
    outcome = sender_stage.process(event_for(conversation), sender(conversations, crm))
    assert (outcome["sent"], outcome["failed"]) == (1, 1)
    first, second = conversations.replies(conversation.conversation_id)
    assert first.status == "failed" and first.error is not None and first.error.startswith("blocked:")
    assert second.status == "sent"
    [(ticket, text, key)] = crm.notes
    assert ticket == "T-1" and key == f"undelivered:{first.id}"
    assert "did not receive" in text and "blocked" in text and "blocked one" in text


def test_retryable_failures_keep_the_sent_ones_sent_and_the_last_attempt_fails_the_stuck_reply(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "ok", T0 + 1000), agent("202", "flaky", T0 + 2000))))
    channel.outcomes["flaky"] = SendRetryable("LINE answered 500", retry_after=None)
    deps = sender(conversations, crm)
    for n in (1, 2):
        with pytest.raises(Retryable):
            sender_stage.process(event_for(conversation, n=n), deps)
    assert [r.text for r in channel.sent] == ["ok", "flaky", "flaky"]
    assert [r.status for r in conversations.replies(conversation.conversation_id)] == ["sent", "pending"]
    assert crm.notes == []
    sender_stage.give_up(event_for(conversation, n=3), "SendRetryable: LINE answered 500", deps)
    ok, flaky = conversations.replies(conversation.conversation_id)
    assert ok.status == "sent"
    assert flaky.status == "failed" and "retries_exhausted" in (flaky.error or "") and "500" in (flaky.error or "")
    assert [key for _, _, key in crm.notes] == [f"undelivered:{flaky.id}"]


def test_give_up_on_a_switchboard_reply_fails_it_and_notes_the_ticket(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    from switchboard.conversations import OutMessage

    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9"))
    reply = OutMessage(id="r1", conversation_id=conversation.conversation_id, text="hello", created_at=T0 + 10)
    conversations.put_reply(reply)
    sender_stage.give_up(outbound_envelope(conversation, reply), "TimedOut: no answer in 10 s", sender(conversations, crm))
    stored = conversations.reply(conversation.conversation_id, "r1")
    assert stored is not None and stored.status == "failed" and "TimedOut" in (stored.error or "")
    assert len(crm.notes) == 1


def test_a_note_is_not_attempted_without_a_ticket_and_a_failing_note_does_not_hide_the_failure(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    conversations.save_crm_state(conversation.conversation_id, CrmState(provider="zendesk", contact_id="C-9"))
    crm = FakeCrm(CrmThread("T-1", "C-9"))
    from switchboard.conversations import OutMessage

    conversations.put_reply(OutMessage(id="r1", conversation_id=conversation.conversation_id, text="x", created_at=T0))
    channel.outcomes["x"] = SendRefused("window closed", code="outside_messaging_window")
    with pytest.raises(sender_stage.ReplyFailed):
        sender_stage.process(
            outbound_envelope(conversation, conversations.reply(conversation.conversation_id, "r1")),  # type: ignore[arg-type]
            sender(conversations, crm),
        )
    assert crm.notes == []

    class BrokenCrm(FakeCrm):
        def add_private_note(self, ticket_id: str, text: str, *, key: str) -> None:
            raise RuntimeError("zendesk is down")

    conversations.save_crm_state(conversation.conversation_id, CrmState(provider="zendesk", contact_id="C-9", ticket_id="T-1"))
    conversations.put_reply(OutMessage(id="r2", conversation_id=conversation.conversation_id, text="x", created_at=T0 + 1))
    broken = BrokenCrm(CrmThread("T-1", "C-9"))
    with pytest.raises(sender_stage.ReplyFailed):
        sender_stage.process(
            outbound_envelope(conversation, conversations.reply(conversation.conversation_id, "r2")),  # type: ignore[arg-type]
            sender(conversations, broken),
        )
    stored = conversations.reply(conversation.conversation_id, "r2")
    assert stored is not None and stored.status == "failed"


def test_an_agent_moving_the_ticket_to_another_contact_relinks_the_customer(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    profiles = DynamoProfiles(conversations.table)
    profiles.set_contact(conversation.key, "zendesk", "C-9")
    crm = FakeCrm(CrmThread("T-1", "C-42"))
    outcome = sender_stage.process(event_for(conversation), sender(conversations, crm, profiles=profiles))
    assert outcome["relinked"] is True
    profile = profiles.profile(conversation.key)
    assert profile is not None and profile.contacts["zendesk"] == "C-42"
    # The contact Switchboard wrote the customer's messages as stays "own": its comments are never replies.
    again = sender_stage.process(event_for(conversation, n=2), sender(conversations, crm, profiles=profiles))
    assert again["relinked"] is False
    assert crm.owns[-1].contact_ids == frozenset({"C-9"})


@pytest.fixture
def bucket(aws: None) -> S3BlobStore:
    boto3.client("s3").create_bucket(Bucket="attachments")
    return S3BlobStore("attachments")


def test_agents_files_are_kept_within_the_limits_offered_by_presigned_url_and_refusals_named(
    conversations: DynamoConversations, channel: FakeChannel, bucket: S3BlobStore
) -> None:
    conversation = open_conversation(conversations)
    files = (
        AgentFile("map.png", "https://crm.example/f/1", "image/png", len(PNG), headers={"Authorization": "Bearer crm-secret"}),
        AgentFile("huge.png", "https://crm.example/f/2", "image/png", 5_000),
        AgentFile("run.exe", "https://crm.example/f/3", "application/octet-stream", 10),
        AgentFile("terms.pdf", "https://crm.example/f/4", "application/pdf", 9),
    )
    fetcher = FakeFetcher(bodies={"https://crm.example/f/1": PNG, "https://crm.example/f/4": b"%PDF-1.4\n"})
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "here you go", T0 + 1000, files=files),)))
    channel.unsent = ()
    sender_stage.process(event_for(conversation), sender(conversations, crm, fetcher=fetcher, blobs=bucket))
    [sent] = channel.sent
    [offered] = sent.files
    assert (offered.name, offered.kind, offered.content_type) == ("map.png", "image", "image/png")
    assert offered.url.startswith("https://") and "X-Amz-Signature=" in offered.url and "crm-secret" not in offered.url
    # The CRM's credential went with the fetch only, and only for the files within the limits.
    assert [r.url for r in fetcher.requests] == ["https://crm.example/f/1", "https://crm.example/f/4"]
    assert fetcher.requests[0].headers["Authorization"] == "Bearer crm-secret"
    [stored] = conversations.replies(conversation.conversation_id)
    assert "crm-secret" not in repr(stored)
    reasons = {f["name"]: f["reason"] for f in stored.unsent_files}
    assert set(reasons) == {"huge.png", "run.exe", "terms.pdf"}
    assert "max_bytes" in reasons["huge.png"]
    assert "do not allow" in reasons["run.exe"]
    assert "does not carry file" in reasons["terms.pdf"]
    body = boto3.client("s3").get_object(Bucket="attachments", Key=stored.files[0]["stored_key"])["Body"].read()
    assert body == PNG


def test_a_file_the_platform_refuses_is_named_while_the_text_counts_as_sent(
    conversations: DynamoConversations, channel: FakeChannel, bucket: S3BlobStore
) -> None:
    conversation = open_conversation(conversations)
    files = (AgentFile("map.png", "https://crm.example/f/1", "image/png"),)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "see map", T0 + 1000, files=files),)))
    channel.unsent = (("map.png", "LINE refused the image: too large"),)
    deps = sender(conversations, crm, fetcher=FakeFetcher(bodies={"https://crm.example/f/1": PNG}), blobs=bucket)
    sender_stage.process(event_for(conversation), deps)
    [stored] = conversations.replies(conversation.conversation_id)
    assert stored.status == "sent"
    assert stored.unsent_files == ({"name": "map.png", "reason": "LINE refused the image: too large"},)


# -- receipts: a platform's delivery and read receipts move the replies they cover forward, never back -----------


def receipt(status: str, *, ids: tuple[str, ...] = (), watermark: int | None = None, error: str | None = None) -> Any:
    data: dict[str, Any] = {"receipt": {"status": status, "platform_ids": list(ids), "watermark": watermark, "error": error}}
    return replace(envelope("", event_id=f"rcpt-{status}-{watermark}-{ids}", kind="receipt"), text=None, data=data)


def test_receipts_move_deliveries_forward_by_platform_id_or_watermark_and_are_never_messages(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "one", T0 + 1000), agent("202", "two", T0 + 2000))))
    sender_stage.process(event_for(conversation), sender(conversations, crm))
    one, two = conversations.replies(conversation.conversation_id)
    crm_queue = RecordingPublisher()
    deps = RouteDeps(settings=settings(), conversations=conversations, crm_queue=crm_queue, clock=lambda: T0 / 1000 + 120)
    assert route_stage.process(receipt("delivered", ids=(one.platform_id or "",)), deps)["replies"] == 1
    assert route_stage.process(receipt("read", watermark=(two.sent_at or 0)), deps)["replies"] == 2
    # Never back: a late delivery receipt after the read one moves nothing.
    assert route_stage.process(receipt("delivered", ids=(one.platform_id or "", two.platform_id or "")), deps)["replies"] == 0
    assert [r.status for r in conversations.replies(conversation.conversation_id)] == ["read", "read"]
    assert [m.text for m in conversations.messages(conversation.conversation_id)] == ["my order is late"]
    assert crm_queue.published == []


def test_a_platforms_failed_status_marks_a_sent_reply_failed_with_its_reason(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "one", T0 + 1000),)))
    sender_stage.process(event_for(conversation), sender(conversations, crm))
    [one] = conversations.replies(conversation.conversation_id)
    deps = RouteDeps(settings=settings(), conversations=conversations, crm_queue=RecordingPublisher(), clock=lambda: T0 / 1000)
    route_stage.process(receipt("failed", ids=(one.platform_id or "",), error="131026: message undeliverable"), deps)
    [after] = conversations.replies(conversation.conversation_id)
    assert after.status == "failed" and after.error == "131026: message undeliverable"
    assert route_stage.process(receipt("read", ids=(one.platform_id or "",)), deps)["replies"] == 0


def test_a_receipt_for_no_reply_or_without_a_status_changes_nothing(conversations: DynamoConversations) -> None:
    conversation = open_conversation(conversations)
    deps = RouteDeps(settings=settings(), conversations=conversations, crm_queue=RecordingPublisher(), clock=lambda: T0 / 1000)
    assert route_stage.process(receipt("read", ids=("unknown",)), deps)["replies"] == 0
    bare = replace(receipt("read"), data={"receipt": {"status": "opened"}})
    assert route_stage.process(bare, deps)["receipt"] == "ignored"
    assert conversations.replies(conversation.conversation_id) == []


def test_the_ticket_index_finds_the_conversation_only_for_its_crm_and_ticket(conversations: DynamoConversations) -> None:
    conversation = open_conversation(conversations, ticket="T-7")
    assert conversations.conversation_for_ticket("zendesk", "T-7") == conversation.conversation_id
    assert conversations.conversation_for_ticket("zendesk", "T-8") is None
    assert conversations.conversation_for_ticket("kustomer", "T-7") is None


# -- replies that wait for the customer (WhatsApp outside its 24-hour window, a re-engagement template sent) -----


def test_a_deferred_reply_and_the_ones_after_it_wait_and_go_in_order_when_the_customer_answers(
    conversations: DynamoConversations, channel: FakeChannel
) -> None:
    from switchboard.channels.base import SendDeferred
    from switchboard.outbound import RESUME

    conversation = open_conversation(conversations)
    crm = FakeCrm(CrmThread("T-1", "C-9", (agent("201", "first", T0 + 1000), agent("202", "second", T0 + 2000))))
    channel.outcomes["first"] = SendDeferred("outside the 24-hour window", sent=Sent(platform_id="tmpl-1"))
    outcome = sender_stage.process(event_for(conversation), sender(conversations, crm))
    assert (outcome["sent"], outcome["held"]) == (0, 2)
    assert [r.text for r in channel.sent] == ["first"]  # the second is never offered: it would overtake the first
    first, second = conversations.replies(conversation.conversation_id)
    assert (first.status, first.waiting, second.status, second.waiting) == ("pending", True, "pending", True)
    assert first.error is not None and first.error.startswith("awaiting_customer")
    # A `switchboard reply` written meanwhile waits behind them too.
    from switchboard.conversations import OutMessage

    third = OutMessage(id="r3", conversation_id=conversation.conversation_id, text="third", created_at=T0 + 100_000)
    conversations.put_reply(third)
    assert sender_stage.process(outbound_envelope(conversation, third), sender(conversations, crm))["sent"] is False
    assert len(channel.sent) == 1

    # The customer writes again: route stores it and queues one resume for the waiting conversation.
    outbound = RecordingPublisher()
    deps = RouteDeps(
        settings=settings(),
        conversations=conversations,
        crm_queue=RecordingPublisher(),
        outbound=outbound,
        clock=lambda: T0 / 1000,
    )
    answer = envelope("ok, tell me", event_id="b", sent_at=T0 + 5000)
    route_stage.process(answer, deps)
    route_stage.process(answer, deps)  # a redelivery of the answer queues nothing more
    [resume] = outbound.published
    assert resume.data == {RESUME: True} and resume.conversation_id == conversation.conversation_id
    del channel.outcomes["first"]
    counts = sender_stage.process(resume, sender(conversations, crm))
    assert counts["sent"] == 3
    assert [r.text for r in channel.sent] == ["first", "first", "second", "third"]
    after = conversations.replies(conversation.conversation_id)
    assert [(r.status, r.waiting, r.error) for r in after] == [("sent", False, None)] * 3
    # Nothing waits any more: the customer's next message queues no resume.
    route_stage.process(envelope("thanks", event_id="c", sent_at=T0 + 9000), deps)
    assert len(outbound.published) == 1


def test_a_ticket_recorded_before_the_index_existed_is_indexed_by_the_next_message(conversations: DynamoConversations) -> None:
    import json as _json

    import boto3 as _boto3

    from switchboard import crm_stage

    conversation = open_conversation(conversations, ticket="T-old")
    # As an older version stored it: the crm item without its index attribute.
    doc = {"provider": "zendesk", "contact_id": "C-9", "ticket_id": "T-old"}
    _boto3.client("dynamodb").put_item(
        TableName=conversations.table,
        Item={"pk": {"S": f"c#{conversation.conversation_id}"}, "sk": {"S": "crm"}, "doc": {"S": _json.dumps(doc)}},
    )
    assert conversations.conversation_for_ticket("zendesk", "T-old") is None

    class Appending:
        def whoami(self) -> Any:
            raise AssertionError("no default user in this test")

        def append_message(self, *args: Any, **kwargs: Any) -> None:
            return None

        def drain_notices(self) -> list[Any]:
            return []

    deps = RouteDeps(settings=settings(), conversations=conversations, crm_queue=RecordingPublisher(), clock=lambda: T0 / 1000)
    later = envelope("any news?", event_id="z", sent_at=T0)
    route_stage.process(later, deps)
    routed = later.with_(conversation_id=conversation.conversation_id)
    crm_deps = crm_stage.CrmDeps(settings=settings(), conversations=conversations, adapter_for=lambda s: Appending())  # type: ignore[arg-type,return-value]
    assert crm_stage.process(routed, crm_deps)["action"] == "appended"
    assert conversations.conversation_for_ticket("zendesk", "T-old") == conversation.conversation_id
