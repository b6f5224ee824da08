"""A message that keeps failing in route reaches the dead-letter queue with its reason, and comes back once fixed."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from ._stack import CONFIG, Stack, new_user, wait_for

pytestmark = pytest.mark.e2e

GOOD, STUCK = "e2e-line-a", "e2e-line-dlq"
DLQ_WAIT = 90.0  # five receives two seconds apart, then the move; well inside this


def delete_workstream(stack: Stack, workstream_id: str) -> None:
    state = stack.state()
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=state["endpoint_url"],
        region_name=state["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    table = state["outputs"]["SettingsTableName"]
    key = {"pk": {"S": "workstream"}, "sk": {"S": workstream_id}}
    assert "Item" in dynamodb.get_item(TableName=table, Key=key)
    dynamodb.delete_item(TableName=table, Key=key)
    assert "Item" not in dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = stack.cli_json("dlq", "list")
    return rows


def test_failing_message_is_dead_lettered_then_redriven(stack: Stack) -> None:
    stuck_user, good_user = new_user(), new_user()
    # The quarantine workstream is read by no other test, so route has never cached it.
    delete_workstream(stack, "quarantine")

    stuck = stack.send_text(STUCK, stuck_user, "stuck until the workstream is back")
    stuck_id = f"line:{STUCK}:{stuck['webhookEventId']}"
    stack.send_text(GOOD, good_user, "flowing meanwhile")
    flowing = stack.wait_conversation(GOOD, good_user)
    assert flowing["queue"] == "general"

    def dead_lettered() -> dict[str, Any] | None:
        return next((r for r in dead_letters(stack) if r.get("envelope_id") == stuck_id), None)

    row = wait_for(dead_lettered, "the stuck message in the route dead-letter queue", timeout=DLQ_WAIT)
    assert row["stage"] == "route"
    assert row["message_id"]
    assert row["conversation_id"] is None
    assert row["attempts"] == 5  # maxReceiveCount
    assert "ConfigurationError" in row["error"]
    assert "workstream 'quarantine'" in row["error"]
    assert "is not configured" in row["error"]
    assert stack.conversations_of(STUCK, stuck_user) == []
    # Listing does not consume: the letter is still there.
    assert [r for r in dead_letters(stack) if r.get("envelope_id") == stuck_id] == [row]

    applied = stack.cli("apply", str(CONFIG)).stdout.splitlines()
    assert "created   workstream quarantine" in applied, applied
    redriven = stack.cli_json("dlq", "redrive", "--stage", "route")
    assert stuck_id in [r["envelope_id"] for r in redriven]

    view = stack.wait_conversation(STUCK, stuck_user)
    assert (view["workstream"], view["queue"], view["priority"]) == ("quarantine", "quarantine-q", 10)
    assert [m["text"] for m in view["messages"]] == ["stuck until the workstream is back"]
    assert [r for r in dead_letters(stack) if r.get("envelope_id") == stuck_id] == []
