from __future__ import annotations

import ast

import pytest
import source_tree


def test_a_racing_parse_is_retried_then_parsed_in_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def racing(text: str) -> ast.Module:
        calls.append(text)
        raise SystemError("AST constructor recursion depth mismatch (before=15, after=29)")

    monkeypatch.setattr(source_tree.ast, "parse", racing)
    monkeypatch.setattr(source_tree.time, "sleep", lambda seconds: None)
    tree = source_tree.parse("import requests\n")
    assert len(calls) == 5
    assert isinstance(tree.body[0], ast.Import) and tree.body[0].names[0].name == "requests"


def test_any_other_system_error_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str) -> ast.Module:
        raise SystemError("something else")

    monkeypatch.setattr(source_tree.ast, "parse", broken)
    with pytest.raises(SystemError, match="something else"):
        source_tree.parse("x = 1\n")
