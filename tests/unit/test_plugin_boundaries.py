"""A channel is its own module: outside it, at most two product source files name it in code.

Adding a channel should be its module (or package; a family's shared base module, such as Meta's for
Facebook, Instagram and WhatsApp, counts as each member's own), its ``functions/webhook_<channel>/`` folder, its
template resources and one registry line; anything else that has to know the channel by name is a
place a newcomer must find and change. So, for every registered channel, the product's Python files
(``src/``, ``functions/``, ``infra/``) other than those are read token by token and the files that
name the channel in code are counted: identifiers and string literals, not comments or
docstrings. A token names the channel when the channel's name is the whole token, or one of its
parts separated by ``_``, ``-``, ``.``, ``:`` or ``/`` (case aside): ``line_body``, ``DEMO_LINE_USER``,
``"webhook_line"`` and ``"/webhooks/line/{id}"`` do; ``lines``, ``readline``, ``LineAdapter`` and a
sentence that happens to contain the word do not (a string literal is one token, and a space does
not separate parts).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from functools import cache
from pathlib import Path

import pytest
from source_tree import parse

from switchboard import channels

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("src", "functions", "infra")
MAX_FILES_NAMING_A_CHANNEL = 2  # the registry, and one more at most
_SEPARATORS = re.compile(r"[_\-.:/]")
_STRING = re.compile(r"^[A-Za-z]*(\"\"\"|'''|\"|')(.*)\1$", re.S)


def _docstring_lines(tree: ast.Module) -> set[int]:
    """Lines of strings that are whole statements (docstrings and the like): prose, not code."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def code_tokens(source: str) -> list[tuple[int, str]]:
    """(line, text) of every identifier and string literal's content, docstrings and comments left out."""
    prose = _docstring_lines(parse(source))
    found: list[tuple[int, str]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME:
            found.append((token.start[0], token.string))
        elif token.type == tokenize.STRING and token.start[0] not in prose:
            literal = _STRING.match(token.string)
            found.append((token.start[0], literal.group(2) if literal else token.string))
    return found


def names(token: str, name: str) -> bool:
    return name.lower() in (part.lower() for part in _SEPARATORS.split(token))


@cache
def _tokens(path: Path) -> list[tuple[int, str]]:
    return code_tokens(path.read_text(encoding="utf-8"))


def _family(channel: str) -> tuple[str, ...]:
    """The modules of the classes the channel's adapter is built from, below the shared base: a family's
    common module (Meta's, for Facebook, Instagram and WhatsApp) is part of each member's own code."""
    found = []
    for cls in channels.adapter_class(channel).__mro__:
        module = cls.__module__
        if module.startswith("switchboard.channels.") and module != "switchboard.channels.base":
            found.append("src/" + module.replace(".", "/") + ".py")
    return tuple(found)


def _own(relative: str, channel: str) -> bool:
    own = (
        f"src/switchboard/channels/{channel}.py",
        f"src/switchboard/channels/{channel}/",
        f"functions/webhook_{channel}/",
        *_family(channel),
    )
    return relative.startswith(own)


def files_naming(channel: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for folder in PRODUCT:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if _own(relative, channel):
                continue
            lines = sorted({line for line, token in _tokens(path) if names(token, channel)})
            if lines:
                found[relative] = lines
    return found


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("line", True),
        ("line_body", True),
        ("DEMO_LINE_USER", True),
        ("webhook_line", True),
        ("/webhooks/line/{account_id}", True),
        ("switchboard.channels.line:LineAdapter", True),
        ("lines", False),
        ("readline", False),
        ("LineAdapter", False),
        ("not valid YAML at line 3", False),
    ],
)
def test_what_counts_as_naming_a_channel(token: str, expected: bool) -> None:
    assert names(token, "line") is expected


def test_docstrings_and_comments_are_not_code() -> None:
    source = '"""Talks to LINE: line."""\nx = 1  # line\ndef f():\n    """line"""\n    return "line", line_count, readline\n'
    assert [t for _, t in code_tokens(source) if names(t, "line")] == ["line", "line_count"]


@pytest.mark.parametrize("channel", channels.names())
def test_at_most_two_product_files_name_a_channel_outside_its_own(channel: str) -> None:
    found = files_naming(channel)
    assert "src/switchboard/channels/__init__.py" in found, "the registry names every channel"
    assert len(found) <= MAX_FILES_NAMING_A_CHANNEL, found
