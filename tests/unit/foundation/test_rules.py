"""Routing rules (interface section 3): every operator, numbers held as strings, first match wins, fallback."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard import rules
from switchboard.envelope import Routing
from switchboard.settings import Condition, Rule, Workstream

ABSENT = object()


def holds(actual: Any, op: str, value: Any = None) -> bool:
    facts = {} if actual is ABSENT else {"field": actual}
    return rules.holds(Condition("field", op, value), facts)


@pytest.mark.parametrize(
    ("actual", "op", "value", "expected"),
    [
        # eq / ne: strings, numbers held as strings, booleans against "true"
        ("line", "eq", "line", True),
        ("line", "eq", "LINE", False),
        ("line", "ne", "gbm", True),
        ("line", "ne", "line", False),
        ("10000", "eq", 10000, True),
        ("10000.0", "eq", 10000, True),
        (10000, "eq", "10000", True),
        ("10000", "ne", 10000, False),
        (True, "eq", "true", True),
        (True, "eq", "TRUE", True),
        ("true", "eq", True, True),
        (False, "eq", "true", False),
        (False, "eq", False, True),
        ("false", "eq", False, True),
        (True, "ne", "true", False),
        (True, "eq", 1, False),  # a bool is not the number 1
        # gt / ge / lt / le: numbers compare as numbers, even held as strings
        ("10000", "gt", 5000, True),
        ("10000", "gt", "5000", True),  # lexicographically "10000" < "5000": must be numeric
        ("999", "gt", 5000, False),
        ("5000", "gt", 5000, False),
        ("5000", "ge", 5000, True),
        ("4999.99", "ge", 5000, False),
        (" 42 ", "lt", 100, True),
        ("100", "lt", 100, False),
        ("100", "le", 100, True),
        (101, "le", "100", False),
        (2.5, "gt", 2, True),
        ("abc", "gt", 1, False),
        ("abc", "lt", 1, False),
        ("abc", "le", 1, False),
        ("", "ge", 0, False),
        (True, "gt", 0, False),  # booleans are not numbers
        ("nan", "gt", 1, False),
        ("inf", "gt", 1, False),
        # in
        ("line", "in", ["line", "gbm"], True),
        ("facebook", "in", ["line", "gbm"], False),
        ("10000", "in", [5000, 10000], True),
        ("line", "in", "line", True),  # a single value is a one-item list
        # contains: case-insensitive substring, or list membership
        ("I want a REFUND please", "contains", "refund", True),
        ("hello", "contains", "refund", False),
        (["vip", "gold"], "contains", "vip", True),
        (["vip", "gold"], "contains", "silver", False),
        # exists
        ("x", "exists", None, True),
        ("x", "exists", True, True),
        ("x", "exists", "true", True),
        ("x", "exists", False, False),
        ("", "exists", None, False),
        (None, "exists", None, False),
        (ABSENT, "exists", None, False),
        (ABSENT, "exists", False, True),
        (0, "exists", None, True),
        (False, "exists", None, True),
        # absent (or null) fields equal nothing; ne holds for them
        (ABSENT, "eq", "x", False),
        (ABSENT, "ne", "x", True),
        (None, "ne", "x", True),
        (ABSENT, "gt", 1, False),
        (ABSENT, "lt", 1, False),
        (ABSENT, "in", ["x"], False),
        (ABSENT, "contains", "x", False),
        (None, "eq", None, False),
    ],
)
def test_operator(actual: Any, op: str, value: Any, expected: bool) -> None:
    assert holds(actual, op, value) is expected


def test_every_operator_is_covered() -> None:
    assert set(rules.OPERATORS) == {"eq", "ne", "gt", "ge", "lt", "le", "in", "contains", "exists"}


def test_unknown_operator_raises() -> None:
    with pytest.raises(ValueError, match="bogus"):
        holds(1, "bogus", 1)


def _workstream() -> Workstream:
    return Workstream(
        id="chat",
        fallback_queue="general",
        rules=(
            Rule(name="anonymous", queue="anonymous", when=(Condition("authenticated", "eq", False),)),
            Rule(name="vip", queue="vip", priority=1, when=(Condition("context.msdyn_isvip", "eq", "true"),)),
            Rule(name="big carts", queue="sales", priority=2, when=(Condition("context.msdyn_cartvalue", "gt", 5000),)),
            Rule(
                name="line refunds",
                queue="billing",
                when=(Condition("channel", "in", ["line", "gbm"]), Condition("message.text", "contains", "refund")),
            ),
        ),
    )


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"authenticated": False, "context.msdyn_isvip": "true"}, Routing("chat", "anonymous", 10, "anonymous")),
        (
            {"authenticated": True, "context.msdyn_isvip": "true", "context.msdyn_cartvalue": "10000"},
            Routing("chat", "vip", 1, "vip"),  # first matching rule wins though big carts also holds
        ),
        ({"authenticated": True, "context.msdyn_isvip": True}, Routing("chat", "vip", 1, "vip")),
        ({"authenticated": True, "context.msdyn_cartvalue": "10000"}, Routing("chat", "sales", 2, "big carts")),
        ({"authenticated": True, "context.msdyn_cartvalue": "4000"}, Routing("chat", "general", 10, None)),
        ({"authenticated": True, "context.msdyn_cartvalue": "abc"}, Routing("chat", "general", 10, None)),
        (
            {"authenticated": True, "channel": "line", "message.text": "Refund!"},
            Routing("chat", "billing", 10, "line refunds"),  # rule without priority: 10
        ),
        ({"authenticated": True, "channel": "facebook", "message.text": "refund"}, Routing("chat", "general", 10, None)),
        ({"authenticated": True, "channel": "line"}, Routing("chat", "general", 10, None)),  # all conditions must hold
        ({}, Routing("chat", "general", 10, None)),  # authenticated absent: eq false does not hold
    ],
)
def test_route_first_matching_rule_or_fallback(facts: dict[str, Any], expected: Routing) -> None:
    assert rules.route(_workstream(), facts) == expected


def test_fallback_priority_is_ten_even_without_rules() -> None:
    assert rules.route(Workstream(id="w", fallback_queue="q"), {"channel": "line"}) == Routing("w", "q", 10, None)


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("channel", True),
        ("message.text", True),
        ("message.kind", True),
        ("requested_live_agent", True),
        ("context.msdyn_cartvalue", True),
        ("context.", False),
        ("message.body", False),
        ("", False),
    ],
)
def test_known_fields(name: str, known: bool) -> None:
    assert rules.is_known_field(name) is known
