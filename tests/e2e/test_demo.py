"""`make demo` as the README walks through it: a LINE message in, routed, and `switchboard reply` reaching the
demo's stand-in for LINE (its pushes print on the command's output), the transcript showing both directions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._stack import Stack, start_stack, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(None, tmp_path_factory.mktemp("demo-home")) as running:
        yield running


def test_the_walk_through_a_refund_routed_to_billing_and_a_reply_on_the_demo_line(demo: Stack) -> None:
    sent = demo.cli("send", "line", "--account", "line-demo", "--text", "I'd like a refund for order 1234")
    assert sent.stdout.strip() == "200 {}"

    def routed() -> list[dict[str, Any]] | None:
        rows = [r for r in demo.conversations() if r["account_id"] == "line-demo"]
        return rows or None

    [row] = wait_for(routed, "the demo conversation")
    assert row["queue"] == "billing"
    conversation_id = str(row["conversation_id"])
    demo.cli("reply", conversation_id, "--text", "Your refund is on its way.")

    def pushed() -> str | None:
        output = (demo.home / "local.out").read_text()
        return output if "demo LINE  push to" in output else None

    output = wait_for(pushed, "the reply on the demo LINE")
    assert f"push to {row['customer']['id']}: Your refund is on its way." in output

    def marked_sent() -> dict[str, Any] | None:
        view = demo.show(conversation_id)
        return view if view["messages"][-1]["delivery"]["status"] == "sent" else None

    shown = wait_for(marked_sent, "the reply marked sent")
    assert [(m["direction"], m["text"]) for m in shown["messages"]] == [
        ("in", "I'd like a refund for order 1234"),
        ("out", "Your refund is on its way."),
    ]
