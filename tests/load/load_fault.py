"""Load and fault run (``make load``): the local stack under duplicates, CRM faults, crashes and poison.

What it does, on an in-process local stack whose CRM is the fake CRM (tests/fakes/crm.py):

- 300 LINE messages from 30 customers (and a few Facebook and GBM ones), every webhook delivery
  posted three times with the same body and signature, as platforms redeliver;
- about 10% of CRM API calls answered 503, or 429 with ``Retry-After: 1``;
- stage invocations that crash part-way through their batch (``SWITCHBOARD_LOCAL_CRASH``, read by
  infra/local/faults.py only), leaving Powertools idempotency records in progress;
- poison sent straight onto the inbound and crm queues: bytes that are not JSON, JSON that is no
  envelope, an envelope of an unsupported version, a message for an account nobody configured;
- then agents' replies: two per LINE conversation written in the fake CRM, each followed by the CRM's
  signed event posted three times (as a CRM retries), about 10% of LINE's push calls answered 500 or
  429 (``Retry-After: 1``), and sender invocations that crash part-way; every reply must reach the fake
  LINE exactly once, in the order the agent wrote them, and show ``sent``.

It waits until the queues are empty, then counts from the conversations table, the fake CRM's
records and the dead-letter queues (with each failure's recorded reason), prints the figures and
exits 1 unless nothing was lost, nothing duplicated and every poison message was dead-lettered
with a reason. Everything is counted by the unique text each message carries, so a duplicate
anywhere (stored, written, or as a second ticket or contact) shows.

Run: .venv/bin/python tests/load/load_fault.py [--provider zendesk] [--customers 30] [--per-customer 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fakes.crm import EVENTS_SECRETS, PROVIDERS, FakeCrm  # noqa: E402
from fakes.platform import FakePlatform  # noqa: E402

CLOSED = "http://127.0.0.1:9"  # profile and media APIs: refused, so no message ever leaves this machine
PUSH = "/v2/bot/message/push"
REPLIES_PER_CONVERSATION = 2
LINE = {
    "id": "load-line",
    "channel": "line",
    "name": "LINE load",
    "workstream": "load",
    "api_base_url": CLOSED,
    "data_base_url": CLOSED,
    "secrets": {"channel_secret": "load-line-channel-secret-5e1a", "channel_access_token": "load-line-token-77c0"},
}
FACEBOOK = {
    "id": "load-fb",
    "channel": "facebook",
    "name": "Facebook load",
    "page_id": "104123456789012",
    "workstream": "load",
    "graph_base_url": CLOSED,
    "secrets": {
        "app_secret": "load-fb-app-secret-3a9c",
        "verify_token": "load-fb-verify-0d2e",
        "page_access_token": "load-fb-page-4b1f",
    },
}
GBM = {
    "id": "load-gbm",
    "channel": "gbm",
    "name": "GBM load",
    "brand_id": "load-brand",
    "agent_id": "load-agent",
    "workstream": "load",
    "signing_key": "client_token",
    "secrets": {"client_token": "LOADGBMCLIENTTKN"},
}
WORKSTREAM = {
    "id": "load",
    "fallback_queue": "general",
    "rules": [{"name": "refunds", "when": [{"field": "message.text", "op": "contains", "value": "refund"}], "queue": "billing"}],
}
COPIES = 3


@dataclass
class Sent:
    channel: str
    account_id: str
    customer: str
    text: str


@dataclass
class AgentReply:
    user: str  # the LINE customer it goes to
    conversation_id: str
    text: str


@dataclass
class Replies:
    written: list[AgentReply] = field(default_factory=list)
    event_posts: int = 0
    event_errors: list[str] = field(default_factory=list)
    settled: bool = False
    settle_seconds: float = 0.0
    faults: int = 0
    pushes: dict[str, list[str]] = field(default_factory=dict)  # user -> texts LINE accepted, in order
    statuses: Counter[str] = field(default_factory=Counter)  # delivery status of every agent reply
    dead: int = 0


@dataclass
class Poison:
    stage: str  # route | crm: the stage whose queue it was sent to
    what: str
    message_id: str = ""
    reason: str | None = None


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list)
    posts: int = 0
    post_errors: list[str] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def send_customer(api_url: str, account: dict[str, Any], customer: str, index: int, count: int, run: Run) -> None:
    import requests

    from switchboard import channels

    with requests.Session() as http:
        for n in range(count):
            text = f"{'refund please, ' if n % 4 == 0 else ''}load {account['channel']} c{index} m{n} {uuid.uuid4().hex[:12]}"
            signed = channels.adapter(account["channel"]).simulate(
                account, account["secrets"], text=text, user=customer, event_id=None
            )
            for _ in range(COPIES):  # the same body and signature each time, as a platform's redelivery
                answer = http.post(
                    api_url + signed.path,
                    data=signed.body,
                    headers={"Content-Type": "application/json", **signed.headers},
                    timeout=30,
                )
                with run.lock:
                    run.posts += 1
                    if answer.status_code != 200:
                        run.post_errors.append(f"{signed.path} {answer.status_code} {answer.text[:120]}")
            with run.lock:
                run.sent.append(Sent(account["channel"], account["id"], customer, text))


def customer_ids(channel: str, count: int) -> list[str]:
    if channel == "line":
        return ["U" + uuid.uuid4().hex for _ in range(count)]
    if channel == "facebook":
        return [str(7_000_000_000_000_000 + i * 7919 + int(time.time()) % 1000) for i in range(count)]
    return [str(uuid.uuid4()) for _ in range(count)]


def send_poison(sqs: Any, queue_urls: dict[str, str], run: Run) -> None:
    """Straight onto the queues, past the edge: what a bug, a newer producer or a stale setting would put there."""
    from switchboard.envelope import Customer, Envelope

    ghost = Envelope(
        id=f"line:load-ghost:{uuid.uuid4().hex}",
        channel="line",
        account_id="load-ghost",
        customer=Customer(id="U" + uuid.uuid4().hex),
        kind="text",
        sent_at=int(time.time() * 1000),
        received_at=int(time.time() * 1000),
        correlation_id=uuid.uuid4().hex,
        text="a message for an account nobody configured",
    )
    newer = ghost.to_dict() | {"v": 99, "id": f"line:load-line:{uuid.uuid4().hex}", "account_id": "load-line"}
    no_customer = {k: v for k, v in ghost.to_dict().items() if k != "customer"} | {"id": uuid.uuid4().hex}
    no_conversation = ghost.to_dict() | {"id": f"line:load-line:{uuid.uuid4().hex}", "account_id": "load-line"}
    cases = [
        ("route", "bytes that are not JSON", "\x00\x01 not json {"),
        ("route", "a JSON list, not an envelope", "[1, 2, 3]"),
        ("route", "an envelope of version 99", json.dumps(newer)),
        ("route", "an envelope without a customer", json.dumps(no_customer)),
        ("route", "a message for an unconfigured account", ghost.to_json()),
        ("crm", "bytes that are not JSON", "garbage \xff\xfe"),
        ("crm", "a JSON object, not an envelope", json.dumps({"hello": "world"})),
        ("crm", "an envelope naming no conversation", json.dumps(no_conversation)),
        (
            "crm",
            "an envelope for a conversation that does not exist",
            json.dumps(no_conversation | {"conversation_id": "c-nope"}),
        ),
    ]
    for stage, what, body in cases:
        url = queue_urls["InboundQueue" if stage == "route" else "CrmQueue"]
        answer = sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageGroupId=f"poison-{uuid.uuid4().hex[:8]}",
            MessageDeduplicationId=uuid.uuid4().hex,
        )
        run.poison.append(Poison(stage, what, answer["MessageId"]))


def write_replies(api_url: str, crm: FakeCrm, provider: str, tickets: dict[str, tuple[str, str]], replies: Replies) -> None:
    """For each conversation (id -> (LINE user, ticket)): the agent's replies, each followed by the CRM's event x3."""
    import requests

    lock = threading.Lock()

    def agent(conversation_id: str, user: str, ticket: str) -> None:
        with requests.Session() as http:
            for n in range(REPLIES_PER_CONVERSATION):
                text = f"agent reply {n} to {user[:9]} {uuid.uuid4().hex[:10]}"
                crm.agent_reply(provider, ticket, text)
                with lock:
                    replies.written.append(AgentReply(user, conversation_id, text))
                body, headers = crm.event(provider, ticket)
                for _ in range(COPIES):
                    answer = http.post(f"{api_url}/crm/{provider}/events", data=body, headers=headers, timeout=30)
                    with lock:
                        replies.event_posts += 1
                        if answer.status_code != 200:
                            replies.event_errors.append(f"{answer.status_code} {answer.text[:120]}")

    threads = [threading.Thread(target=agent, args=(c, user, ticket)) for c, (user, ticket) in tickets.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def line_tickets(items: list[dict[str, Any]], run: Run) -> dict[str, tuple[str, str]]:
    """The LINE conversations this run opened and their tickets: conversation id -> (customer, ticket id)."""
    users = {s.text: s.customer for s in run.sent if s.channel == "line"}
    user_of: dict[str, str] = {}
    ticket_of: dict[str, str] = {}
    for item in items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if not pk.startswith("c#"):
            continue
        doc = json.loads(item["doc"]["S"]) if "doc" in item else {}
        if sk.startswith("m#") and doc.get("text") in users:
            user_of[pk[2:]] = users[doc["text"]]
        elif sk == "crm" and doc.get("ticket_id"):
            ticket_of[pk[2:]] = str(doc["ticket_id"])
    return {c: (user, ticket_of[c]) for c, user in user_of.items() if c in ticket_of}


def queue_depth(sqs: Any, urls: list[str]) -> int:
    total = 0
    for url in urls:
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        total += sum(int(v) for v in attrs.values())
    return total


def scan(table: str) -> list[dict[str, Any]]:
    import boto3

    items: list[dict[str, Any]] = []
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def crm_view(crm: FakeCrm, provider: str) -> tuple[list[str], dict[str, list[str]]]:
    """(contact identities, one per contact record; {conversation id: the texts of each of its tickets, joined})."""
    tickets: dict[str, list[str]] = {}
    if provider == "zendesk":
        contacts = [str(u.get("external_id")) for u in crm.records("zendesk", "users") if u.get("external_id")]
        for t in crm.records("zendesk", "tickets"):
            tickets.setdefault(str(t.get("external_id")), []).append("\n".join(str(c.get("body")) for c in t["comments"]))
        return contacts, tickets
    if provider == "salesforce":
        contacts = [str(c.get("Switchboard_Identity__c")) for c in crm.records("salesforce", "Contact")]
        comments = crm.records("salesforce", "CaseComment")
        for case in crm.records("salesforce", "Case"):
            later = [str(c["CommentBody"]) for c in comments if c["ParentId"] == case["Id"]]
            tickets.setdefault(str(case.get("Switchboard_Conversation_Id__c")), []).append(
                "\n".join([str(case.get("Description")), *later])
            )
        return contacts, tickets
    if provider == "dynamics":
        contacts = [str(c["contactid"]) for c in crm.records("dynamics", "contacts")]
        notes = crm.records("dynamics", "annotations")
        for incident in crm.records("dynamics", "incidents"):
            later = [str(n["notetext"]) for n in notes if n["_objectid_incident_value"] == incident["incidentid"]]
            tickets.setdefault(str(incident["incidentid"]), []).append("\n".join([str(incident.get("description")), *later]))
        return contacts, tickets
    contacts = [str(c["attributes"].get("externalId")) for c in crm.records("kustomer", "customers")]
    messages = crm.records("kustomer", "messages")
    for conv in crm.records("kustomer", "conversations"):
        texts = [
            str(m["attributes"].get("preview"))
            for m in messages
            if m["relationships"]["conversation"]["data"]["id"] == conv["id"]
        ]
        tickets.setdefault(str(conv["attributes"].get("externalId")), []).append("\n".join(texts))
    return contacts, tickets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=PROVIDERS, default="zendesk")
    parser.add_argument("--customers", type=int, default=30, help="LINE customers")
    parser.add_argument("--per-customer", type=int, default=10)
    parser.add_argument("--other-customers", type=int, default=3, help="Facebook and GBM customers each (3 messages each)")
    parser.add_argument("--fault-rate", type=float, default=0.10, help="share of CRM API calls answered 503 or 429")
    parser.add_argument("--crashes", type=int, default=3, help="crashed invocations per stage")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for the pipeline to settle")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="switchboard-load-")
    os.environ["SWITCHBOARD_HOME"] = home
    os.environ["SWITCHBOARD_LOCAL_CRASH"] = (
        f"RouteFunction:{args.crashes},CrmWriterFunction:{args.crashes},SenderFunction:{args.crashes}"
    )
    logging.disable(logging.CRITICAL)  # the crashes and faults log loudly, by design; the figures below are the output

    import yaml

    from infra.admin.local import configured_stack
    from infra.local import faults

    run = Run()
    replies = Replies()
    with FakeCrm() as crm, FakePlatform() as line:
        line.line_token(LINE["secrets"]["channel_access_token"])
        line_account = {**LINE, "api_base_url": line.url, "data_base_url": line.url}  # LINE's pushes: the agents' replies
        crm_section = crm.config(args.provider)
        if args.provider != "zendesk":  # Zendesk's events are set up by apply itself (its webhook's signing secret)
            crm_section["secrets"]["events_secret"] = EVENTS_SECRETS[args.provider]
        config = Path(home) / "load.yaml"
        config.write_text(
            yaml.safe_dump(
                {"accounts": [line_account, FACEBOOK, GBM], "workstreams": [WORKSTREAM], "crm": crm_section},
                sort_keys=False,
            )
        )
        stack = configured_stack(config, stack="switchboard-load")
        started = time.monotonic()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # apply's lines and the handlers' log records
                state: dict[str, Any] = stack.start()
                import boto3

                sqs = boto3.client("sqs")
                half = args.fault_rate / 2
                crm.fail_rate(half, status=503)
                crm.fail_rate(half / (1 - half), status=429, retry_after=1)  # of the calls the 503s left: half the faults each
                plan = [(LINE, c, args.per_customer) for c in customer_ids("line", args.customers)]
                plan += [(FACEBOOK, c, 3) for c in customer_ids("facebook", args.other_customers)]
                plan += [(GBM, c, 3) for c in customer_ids("gbm", args.other_customers)]
                threads = [
                    threading.Thread(target=send_customer, args=(state["api_url"], account, customer, i, count, run))
                    for i, (account, customer, count) in enumerate(plan)
                ]
                for thread in threads:
                    thread.start()
                send_poison(sqs, stack.queue_urls, run)
                for thread in threads:
                    thread.join()
                sent_done = time.monotonic()
                queues = [stack.queue_urls["InboundQueue"], stack.queue_urls["CrmQueue"]]
                quiet = 0
                deadline = time.monotonic() + args.timeout
                while quiet < 3 and time.monotonic() < deadline:
                    quiet = quiet + 1 if queue_depth(sqs, queues) == 0 else 0
                    time.sleep(1.0)
                settled = quiet >= 3
                settle_seconds = time.monotonic() - sent_done
                crm.clear_faults()
                table = state["outputs"]["ConversationsTableName"]
                tickets = line_tickets(scan(table), run)

                # The way back: agents reply, the CRM's events arrive three times, LINE has a bad day.
                line.fail_rate(PUSH, half, status=500)
                line.fail_rate(PUSH, half / (1 - half), status=429, retry_after=1)
                replies_started = time.monotonic()
                write_replies(state["api_url"], crm, args.provider, tickets, replies)
                outbound = [stack.queue_urls["OutboundQueue"]]
                quiet = 0
                deadline = time.monotonic() + args.timeout
                while quiet < 3 and time.monotonic() < deadline:
                    quiet = quiet + 1 if queue_depth(sqs, outbound) == 0 else 0
                    time.sleep(1.0)
                replies.settled = quiet >= 3
                replies.settle_seconds = time.monotonic() - replies_started
                replies.faults = line.faults_injected
                line.clear_faults()
                for push in line.line_pushes():
                    replies.pushes.setdefault(push.to, []).extend(str(m.get("text")) for m in push.messages)
                from infra.admin.dlq import list_dead_letters
                from infra.admin.resources import Resources

                dead = list_dead_letters(Resources.from_state(state))
                items = scan(table)
                agent_texts = {r.text for r in replies.written}
                for item in items:
                    if item["sk"]["S"].startswith("o#") and json.loads(item["doc"]["S"]).get("text") in agent_texts:
                        replies.statuses[item.get("status", {}).get("S", "pending")] += 1
                replies.dead = sum(1 for row in dead if row["stage"] == "outbound")
        finally:
            with contextlib.redirect_stdout(io.StringIO()):
                stack.stop()
        api_calls = crm.calls(provider=args.provider, kind="api")
        contacts, tickets_by = crm_view(crm, args.provider)
        crm_errors = list(crm.errors)
    total_seconds = time.monotonic() - started
    inbound_ok = report(
        args,
        run,
        items,
        dead,
        contacts,
        tickets_by,
        api_calls,
        faults.crashes(),
        settled,
        settle_seconds,
        total_seconds,
        crm_errors,
    )
    return max(inbound_ok, report_replies(replies))


def report_replies(replies: Replies) -> int:
    """The way back's figures: every agent's reply on LINE exactly once, in the order written; 1 unless so."""
    expected: dict[str, list[str]] = {}
    for reply in replies.written:
        expected.setdefault(reply.user, []).append(reply.text)
    sent = duplicated = lost = out_of_order = 0
    for user, texts in expected.items():
        got = [t for t in replies.pushes.get(user, []) if t in texts]
        counts = Counter(got)
        sent += sum(1 for t in texts if counts[t] >= 1)
        duplicated += sum(counts[t] - 1 for t in texts if counts[t] > 1)
        lost += sum(1 for t in texts if counts[t] == 0)
        out_of_order += list(dict.fromkeys(got)) != [t for t in texts if counts[t]]
    print(
        f"agents' replies: {len(replies.written)} written in {len(expected)} conversations, "
        f"settled={'yes' if replies.settled else 'NO'} in {replies.settle_seconds:.1f} s"
    )
    print(f"  CRM events:      {replies.event_posts} posts (x{COPIES} per reply), {len(replies.event_errors)} not answered 200")
    print(f"  sent to LINE:    {sent} replies, duplicated {duplicated}, lost {lost}, conversations out of order {out_of_order}")
    print(f"  delivery:        {dict(sorted(replies.statuses.items()))}; {replies.dead} dead-lettered on the outbound stage")
    print(f"  faults injected: {replies.faults} LINE push calls answered 500 or 429")
    for error in replies.event_errors[:5]:
        print(f"    event post failed: {error}")
    ok = (
        replies.settled
        and not replies.event_errors
        and sent == len(replies.written) > 0
        and duplicated == lost == out_of_order == 0
        and replies.statuses.get("sent", 0) == len(replies.written)
        and replies.dead == 0
        and replies.faults > 0
    )
    print("PASS: every reply sent once, in order" if ok else "FAIL (replies)")
    return 0 if ok else 1


def report(
    args: argparse.Namespace,
    run: Run,
    items: list[dict[str, Any]],
    dead: list[dict[str, Any]],
    contacts: list[str],
    tickets_by: dict[str, list[str]],
    api_calls: list[Any],
    crashes: list[str],
    settled: bool,
    settle_seconds: float,
    total_seconds: float,
    crm_errors: list[str],
) -> int:
    from switchboard.crm.dynamics import record_id

    sent_texts = {s.text for s in run.sent}
    stored: Counter[str] = Counter()
    written_marks = 0
    conversation_of: dict[str, str] = {}  # text -> conversation id
    for item in items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if not pk.startswith("c#"):
            continue
        if sk.startswith("m#"):
            doc = json.loads(item["doc"]["S"])
            text = doc.get("text")
            if text in sent_texts:
                stored[text] += 1
                conversation_of[text] = pk[2:]
                written_marks += "written_at" in item
    recorded = len(stored)
    stored_twice = sum(1 for n in stored.values() if n > 1)

    # In the CRM: every text in exactly one ticket, once; one ticket per conversation; one contact per customer.
    def ticket_key(conversation_id: str) -> str:
        return record_id("incident", conversation_id) if args.provider == "dynamics" else conversation_id

    written = written_twice = 0
    for text in sent_texts:
        conversation_id = conversation_of.get(text)
        bodies = tickets_by.get(ticket_key(conversation_id), []) if conversation_id else []
        hits = sum(body.count(text) for body in bodies)
        written += hits >= 1
        written_twice += hits > 1
    our_conversations = set(conversation_of.values())
    tickets_per_conversation = [len(tickets_by.get(ticket_key(c), [])) for c in our_conversations]
    extra_tickets = sum(max(n - 1, 0) for n in tickets_per_conversation)
    customers = {(s.channel, s.account_id, s.customer) for s in run.sent}
    identity_count = Counter(contacts)

    def contact_key(channel: str, account_id: str, customer: str) -> str:
        key = f"{channel}:{account_id}:{customer}"
        return record_id("contact", key) if args.provider == "dynamics" else key

    contacts_per_customer = [identity_count.get(contact_key(*c), 0) for c in customers]
    extra_contacts = sum(max(n - 1, 0) for n in contacts_per_customer)
    customer_of = {s.text: (s.channel, s.account_id, s.customer) for s in run.sent}
    conversations_per_customer = Counter(customer for customer, _ in {(customer_of[t], c) for t, c in conversation_of.items()})

    by_id = {row["message_id"]: row for row in dead}
    for poison in run.poison:
        row = by_id.get(poison.message_id)
        poison.reason = row["error"] if row else None
    poison_ids = {p.message_id for p in run.poison}
    other_dead = [row for row in dead if row["message_id"] not in poison_ids]
    poison_ok = sum(1 for p in run.poison if p.reason and not p.reason.startswith("unknown"))

    sent = len(run.sent)
    lost_recorded = len(sent_texts - set(stored))
    lost_written = sent - written
    split_conversations = sum(1 for n in conversations_per_customer.values() if n > 1)
    duplicated = stored_twice + written_twice + extra_tickets + extra_contacts + split_conversations
    faults = [c for c in api_calls if c.fault]
    fault_kinds = Counter(c.status for c in faults)
    by_channel = Counter(s.channel for s in run.sent)

    print(f"load and fault run: CRM {args.provider}, {len(customers)} customers, settled={'yes' if settled else 'NO'}")
    print(
        f"  sent:            {sent} messages ({', '.join(f'{c} {n}' for c, n in sorted(by_channel.items()))}), "
        f"{run.posts} webhook posts (x{COPIES} each), {len(run.post_errors)} not answered 200"
    )
    print(f"  recorded:        {recorded} unique messages stored in {len(our_conversations)} conversations")
    print(
        f"  written to CRM:  {written} messages in {sum(tickets_per_conversation)} tickets for {len(customers)} contacts "
        f"({written_marks} marked written)"
    )
    print(
        f"  duplicated:      {duplicated} (messages stored twice {stored_twice}, written twice {written_twice}, "
        f"extra tickets {extra_tickets}, extra contacts {extra_contacts}, customers with >1 conversation "
        f"{split_conversations})"
    )
    print(f"  lost:            {max(lost_recorded, lost_written)} (not recorded {lost_recorded}, not written {lost_written})")
    print(
        f"  faults injected: {len(faults)} of {len(api_calls)} CRM API calls "
        f"({', '.join(f'{s}: {n}' for s, n in sorted(fault_kinds.items()))}); {len(crashes)} crashed invocations"
    )
    for crash in crashes:
        print(f"    crash: {crash} left in progress")
    print(
        f"  dead-lettered:   {len(dead)} ({poison_ok} of {len(run.poison)} poison messages with their reason, "
        f"{len(other_dead)} other)"
    )
    for poison in run.poison:
        print(f"    {poison.stage:5} {poison.what}: {poison.reason or 'NOT dead-lettered'}")
    for row in other_dead:
        print(f"    NOT POISON {row['stage']} {row['message_id']}: {row['error']}")
    for error in run.post_errors[:5]:
        print(f"    post failed: {error}")
    for error in crm_errors[:5]:
        print(f"    fake CRM bug: {error}")
    print(f"  time:            {total_seconds:.1f} s in all, {settle_seconds:.1f} s to settle after the last post")

    ok = (
        settled
        and not run.post_errors
        and max(lost_recorded, lost_written) == 0
        and duplicated == 0
        and poison_ok == len(run.poison)
        and not other_dead
        and not crm_errors
        and len(crashes) > 0
        and len(faults) > 0
    )
    print("PASS: 0 lost, 0 duplicated, every poison message dead-lettered with its reason" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
