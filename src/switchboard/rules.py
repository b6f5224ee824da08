"""Routing rules (interface section 3): the first rule whose conditions all hold decides.

Context variables arrive as strings from JWTs and portals ("10000"), while admins write numbers in
YAML (5000). Ordering operators therefore compare numerically whenever both sides read as numbers,
and equality treats "10000" and 10000 (and "true" and true) as the same value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from switchboard.envelope import Routing
from switchboard.settings import Condition, Rule, Workstream

OPERATORS = frozenset({"eq", "ne", "gt", "ge", "lt", "le", "in", "contains", "exists"})
FIELDS = frozenset(
    {
        "channel",
        "account_id",
        "authenticated",
        "contact_id",
        "customer.name",
        "customer.locale",
        "message.text",
        "message.kind",
        "requested_live_agent",
    }
)
_MISSING = object()


def is_known_field(name: str) -> bool:
    return name in FIELDS or (name.startswith("context.") and len(name) > len("context."))


def route(workstream: Workstream, facts: Mapping[str, Any]) -> Routing:
    """Pick the queue for a conversation whose facts (rule field -> value) are ``facts``."""
    for rule in workstream.rules:
        if matches(rule, facts):
            return Routing(workstream=workstream.id, queue=rule.queue, priority=rule.priority, rule=rule.name)
    return Routing(workstream=workstream.id, queue=workstream.fallback_queue, priority=10, rule=None)


def matches(rule: Rule, facts: Mapping[str, Any]) -> bool:
    return all(holds(condition, facts) for condition in rule.when)


def holds(condition: Condition, facts: Mapping[str, Any]) -> bool:
    actual = facts.get(condition.field, _MISSING)
    op, expected = condition.op, condition.value
    if op == "exists":
        present = actual is not _MISSING and actual is not None and actual != ""
        return present if expected is None or _truthy(expected) else not present
    if actual is _MISSING or actual is None:
        # An absent field equals nothing; "ne" holds for it, so "not VIP" rules still catch anonymous visitors.
        return op == "ne"
    if op == "eq":
        return _equal(actual, expected)
    if op == "ne":
        return not _equal(actual, expected)
    if op == "in":
        options = expected if isinstance(expected, list | tuple) else [expected]
        return any(_equal(actual, option) for option in options)
    if op == "contains":
        if isinstance(actual, list | tuple):
            return any(_equal(item, expected) for item in actual)
        return str(expected).casefold() in _text(actual).casefold()
    left, right = _number(actual), _number(expected)
    if left is None or right is None:
        return False
    if op == "gt":
        return left > right
    if op == "ge":
        return left >= right
    if op == "lt":
        return left < right
    if op == "le":
        return left <= right
    raise ValueError(f"unknown operator {op!r}")


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _equal(actual: Any, expected: Any) -> bool:
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return left == right
    if isinstance(actual, bool) or isinstance(expected, bool):
        return _text(actual).casefold() == _text(expected).casefold()
    return _text(actual) == _text(expected)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.casefold() == "true")
