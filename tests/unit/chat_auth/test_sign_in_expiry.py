"""Once a sign-in's expires_at has passed, every view and the routing rules see an unauthenticated customer.

The expiry is not stored as a flag that someone must flip: it is derived whenever the conversation
is read, so `conversations show`, `conversations list` and route's facts can never disagree.
"""

from __future__ import annotations

from switchboard import rules
from switchboard.conversations import CrmState, facts, public_view, summary_view
from switchboard.envelope import Envelope, Identity
from switchboard.settings import Condition, Rule, Workstream

from ._chat_fakes import line_conversation
from ._support import NOW

EXPIRES = int(NOW) + 600
SIGNED_IN = Identity(authenticated=True, contact_id="member-7", context={"msdyn_isvip": "true"}, expires_at=EXPIRES)
BEFORE, AFTER = (EXPIRES - 1) * 1000, EXPIRES * 1000
WORKSTREAM = Workstream(
    id="social",
    fallback_queue="general",
    rules=(
        Rule(queue="anonymous", name="anonymous", when=(Condition("authenticated", "eq", False),)),
        Rule(queue="vip", name="VIP", priority=1, when=(Condition("context.msdyn_isvip", "eq", "true"),)),
    ),
)


def _message(at_ms: int) -> Envelope:
    conversation = line_conversation()
    return Envelope(
        id=f"line:line-tokyo:{at_ms}",
        channel="line",
        account_id="line-tokyo",
        customer=conversation.customer,
        kind="text",
        text="still there?",
        sent_at=at_ms,
        received_at=at_ms,
        correlation_id="c",
    )


def test_views_say_authenticated_until_expires_at_and_false_after() -> None:
    conversation = line_conversation(last_message_at=BEFORE).with_(identity=SIGNED_IN)
    assert public_view(conversation, CrmState(), [], BEFORE)["authenticated"] is True
    assert summary_view(conversation, BEFORE)["authenticated"] is True
    shown = public_view(conversation, CrmState(), [], AFTER)
    assert (shown["authenticated"], shown["contact_id"], shown["expires_at"]) == (False, "member-7", EXPIRES)
    assert summary_view(conversation, AFTER)["authenticated"] is False


def test_rules_see_the_same_expiry() -> None:
    conversation = line_conversation(last_message_at=BEFORE).with_(identity=SIGNED_IN)
    before = facts(conversation, _message(BEFORE), BEFORE)
    assert (before["authenticated"], before["contact_id"], before["context.msdyn_isvip"]) == (True, "member-7", "true")
    assert rules.route(WORKSTREAM, before).queue == "vip"

    after = facts(conversation, _message(AFTER), AFTER)
    assert (after["authenticated"], after["contact_id"]) == (False, None)
    assert "context.msdyn_isvip" not in after  # an expired sign-in's context no longer routes
    assert rules.route(WORKSTREAM, after).queue == "anonymous"


def test_a_sign_in_without_expiry_never_lapses() -> None:
    forever = Identity(authenticated=True, contact_id="member-7", expires_at=None)
    conversation = line_conversation(last_message_at=BEFORE).with_(identity=forever)
    assert summary_view(conversation, AFTER + 10**9)["authenticated"] is True
