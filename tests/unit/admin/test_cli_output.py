"""What `switchboard` prints for people shows a customer's control characters as escapes; ``--json`` keeps them.

A customer (or a CRM, or a platform) writes the text these commands print. Raw, an ESC sequence
could retitle or clear the admin's terminal, hide lines or fake output, and a bidi override
reorders what the admin reads.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import boto3
import pytest
import yaml

from infra.admin import cli
from infra.admin.apply import apply_file
from infra.admin.resources import Resources
from switchboard.aws.conversation_store import DynamoConversations, DynamoFailureLog
from switchboard.conversations import Conversation, CrmState
from switchboard.envelope import Customer, Envelope, Identity

# An OSC that retitles the terminal, a screen clear, colour, a C1 CSI, DEL, a bidi override, a line separator.
HOSTILE_TEXT = "refund\x1b]0;pwned\x07\x1b[2J please \x1b[31mnow\x1b[0m\x9b1m\x7f \u202eevil\u202c\u2028end\nline2"
HOSTILE_NAME = "Taro\x1b[8m hidden\u202e"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def conversation_id(resources: Resources) -> str:
    """A conversation whose customer name, context, CRM notice and message text carry terminal escapes."""
    now = int(time.time() * 1000)
    store = DynamoConversations(resources.conversations_table)
    customer = Customer(id="U0123\x1b[1m", name=HOSTILE_NAME)
    conversation = Conversation(
        conversation_id="0190aabbccdd0011223344556677",
        channel="line",
        account_id="line-a",
        customer=customer,
        workstream="social",
        queue="billing",
        priority=10,
        created_at=now,
        updated_at=now,
        last_message_at=now,
        close_after_minutes=1440,
        message_count=1,
        identity=Identity(authenticated=False, context={"tier\x1b[5m": "gold\nplatinum", "cart": 5000}),
    )
    store.open(conversation, replacing=None)
    envelope = Envelope(
        id="line:line-a:m1",
        channel="line",
        account_id="line-a",
        customer=customer,
        kind="text",
        sent_at=now,
        received_at=now,
        correlation_id="c1",
        text=HOSTILE_TEXT,
        conversation_id=conversation.conversation_id,
    )
    store.add_message(conversation.conversation_id, envelope, 1)
    store.save_crm_state(conversation.conversation_id, CrmState(provider="zendesk", notices=("CRM says \x1b[41mhi",)))
    return conversation.conversation_id


def test_show_escapes_control_characters_and_prints_nested_values_readably(
    conversation_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "conversations", "show", conversation_id)
    assert code == 0
    assert not RAW.search(out), repr(out)
    assert "refund\\x1b]0;pwned\\x07\\x1b[2J please \\x1b[31mnow\\x1b[0m\\x9b1m\\x7f \\u202eevil\\u202c\\u2028end\\nline2" in out
    lines = out.splitlines()
    assert "        customer: Taro\\x1b[8m hidden\\u202e (U0123\\x1b[1m)" in lines
    assert "         context: tier\\x1b[5m=gold\\nplatinum, cart=5000" in lines
    assert "      contact_id: -" in lines
    assert "   authenticated: false" in lines
    (crm,) = [line for line in lines if line.startswith("             crm: ")]
    assert crm.startswith("             crm: provider=zendesk, contact_id=-, ticket_id=-, owner_id=-")
    assert "notices=[CRM says \\x1b[41mhi]" in crm
    assert "None" not in out and "{'" not in out and "'id'" not in out  # no Python reprs


def test_show_json_keeps_every_character(conversation_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "conversations", "show", conversation_id, "--json")
    assert code == 0
    assert not RAW.search(out), repr(out)  # escaped as JSON (\u001b), not raw
    view = json.loads(out)
    assert view["messages"][0]["text"] == HOSTILE_TEXT
    assert view["customer"] == {"id": "U0123\x1b[1m", "name": HOSTILE_NAME}
    assert view["context"] == {"tier\x1b[5m": "gold\nplatinum", "cart": 5000}
    assert view["crm"]["notices"] == ["CRM says \x1b[41mhi"]


def test_list_escapes_and_list_json_keeps(conversation_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "conversations", "list")
    assert code == 0
    assert not RAW.search(out), repr(out)
    (row,) = out.splitlines()[1:]
    assert row.startswith(f"{conversation_id:<30} line      line-a           Taro\\x1b[8m hidden\\u202e")
    code, out, _ = run(capsys, "conversations", "list", "--json")
    assert not RAW.search(out)
    (listed,) = json.loads(out)
    assert listed["customer"] == {"id": "U0123\x1b[1m", "name": HOSTILE_NAME}


def test_dlq_list_escapes_the_error(resources: Resources, capsys: pytest.CaptureFixture[str]) -> None:
    sqs = boto3.client("sqs")
    body = json.dumps({"id": "env-1", "conversation_id": "conv\x1b[2J"})
    message_id = sqs.send_message(
        QueueUrl=resources.inbound_dlq_url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId="d1"
    )["MessageId"]
    error = "zendesk POST /tickets.json: HTTP 422: \x1b]0;owned\x07invalid \u202erequester"
    DynamoFailureLog(resources.conversations_table).record(
        "route", message_id, error=error, conversation_id="conv\x1b[2J", envelope_id="env-1"
    )
    code, out, _ = run(capsys, "dlq", "list", "--stage", "route")
    assert code == 0
    assert not RAW.search(out), repr(out)
    assert "conversation=conv\\x1b[2J" in out
    assert "HTTP 422: \\x1b]0;owned\\x07invalid \\u202erequester" in out
    code, out, _ = run(capsys, "dlq", "list", "--stage", "route", "--json")
    assert not RAW.search(out)
    assert json.loads(out)[0]["error"] == error


def test_export_yaml_escapes_and_stays_the_same_data(
    resources: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "Evil \u202eshop\x1b[2J 日本"
    config = {
        "workstreams": [{"id": "social", "fallback_queue": "日本"}],
        "accounts": [
            {
                "id": "line-a",
                "channel": "line",
                "name": name,
                "workstream": "social",
                "secrets": {"channel_secret": "cs-1", "channel_access_token": "tok-1"},
            }
        ],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    assert apply_file(path, resources, dry_run=False)[0] == 0
    code, out, _ = run(capsys, "export")
    assert code == 0
    assert not RAW.search(out), repr(out)
    assert yaml.safe_load(out)["accounts"][0]["name"] == name
    assert "fallback_queue: 日本" in out  # text with nothing to escape stays readable
    code, out, _ = run(capsys, "export", "--json")
    assert not RAW.search(out)
    assert json.loads(out)["accounts"][0]["name"] == name


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),
        ("\u202ecba\u202c \u2066x\u2069 \u200f\u061c", "\\u202ecba\\u202c \\u2066x\\u2069 \\u200f\\u061c"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("山田 太郎 👨\u200d👩\u200d👧 café", "山田 太郎 👨\u200d👩\u200d👧 café"),  # ZWJ emoji and accents stay
        ("C:\\path", "C:\\path"),
    ],
)
def test_escape(text: str, shown: str) -> None:
    assert cli.escape(text) == shown


def test_readable_nested_values() -> None:
    assert cli.readable({"id": "U1", "name": None}) == "id=U1, name=-"
    assert cli.readable({"a": {"b": [1, True]}, "c": []}) == "a={b=[1, true]}, c=-"
    assert cli.readable({}) == "-"
    assert cli.readable(["x\x1b", None]) == "x\\x1b, -"


def test_apply_json_report_is_still_json(resources: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"workstreams": [{"id": "social", "fallback_queue": "general"}]}))
    code, out, _ = run(capsys, "apply", str(path), "--json")
    assert code == 0
    assert json.loads(out) == [{"kind": "workstream", "id": "social", "status": "created"}]
