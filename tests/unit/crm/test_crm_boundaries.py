"""A CRM is one module: the rest of the product names it in at most two files, and CRM code names no channel.

"Names" means in code: identifiers and string literals, not docstrings or comments. A token names
``x`` when ``x`` is the whole token or one of its ``_``/``-``/``.``/``:``/``/``-separated parts,
whatever the case: ``SALESFORCE_LIMIT`` and ``"switchboard.crm.zendesk:ZendeskAdapter"`` name a CRM,
``lines`` does not name the LINE channel.

One exception for CRM code: a string literal that is exactly a channel *medium* (the generic kind
a channel declares, such as "chat" or "facebook") names the medium, which is what CRMs map from
(Kustomer's channel vocabulary), even where a channel happens to share the name.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/unit: the shared source_tree helper
from source_tree import parse

from switchboard import channels
from switchboard.crm import registry

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("src", "functions", "infra")
CRM_PACKAGE = ROOT / "src" / "switchboard" / "crm"
MAX_FILES_NAMING_A_CRM = 2
_TOKEN = re.compile(r"[A-Za-z0-9_\-.:/]+")
_PART = re.compile(r"[_\-.:/]")


def _docstrings(tree: ast.Module) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _code_texts(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    """Every identifier and string literal of the module: (text, is a string literal)."""
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id, False
        elif isinstance(node, ast.Attribute):
            yield node.attr, False
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, False
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            yield node.arg, False
        elif isinstance(node, ast.alias):
            yield node.name, False
            if node.asname:
                yield node.asname, False
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, False
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value, True


def _names(text: str, name: str) -> bool:
    wanted = name.lower()
    return any(token == wanted or wanted in _PART.split(token) for token in _TOKEN.findall(text.lower()))


def names_in_code(source: str, name: str, *, media: frozenset[str] = frozenset()) -> bool:
    """Whether the module's code names ``name``; a literal that is exactly one of ``media`` does not count."""
    for text, literal in _code_texts(parse(source)):
        if literal and text in media:
            continue
        if _names(text, name):
            return True
    return False


def product_files() -> list[Path]:
    return sorted(p for folder in PRODUCT for p in (ROOT / folder).rglob("*.py") if ".aws-sam" not in p.parts)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _crm_module(provider: str) -> Path:
    module = registry.PROVIDERS[provider].partition(":")[0]
    return ROOT / "src" / Path(*module.split(".")).with_suffix(".py")


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ('"""Talks to Salesforce."""\n# salesforce\nx = 1\n', "salesforce", False),
        ("SALESFORCE_LIMIT = 300\n", "salesforce", True),
        ("def salesforce_codes(): pass\n", "salesforce", True),
        ('T = {"z": "switchboard.crm.zendesk:ZendeskAdapter"}\n', "zendesk", True),
        ('URL = "https://x.example/kustomer/v1"\n', "kustomer", True),
        ('M = f"{a} dynamics-365"\n', "dynamics", True),
        ("lines = []\nfor line_ in lines: pass\n", "line", True),
        ("lines = []\ndeadline = 1\n", "line", False),
        ('LABEL = "Zendesky"\n', "zendesk", False),
        ("from switchboard.channels import gbm\n", "gbm", True),
        ('def f():\n    """Google Business Messages (gbm)."""\n    return 1\n', "gbm", False),
    ],
)
def test_what_counts_as_naming(source: str, name: str, expected: bool) -> None:
    assert names_in_code(source, name) is expected


def test_a_literal_that_is_exactly_a_medium_names_the_medium() -> None:
    media = frozenset({"chat", "facebook"})
    assert not names_in_code('KINDS = frozenset({"chat", "facebook"})\n', "facebook", media=media)
    assert names_in_code('if channel == "facebook messenger": pass\n', "facebook", media=media)
    assert names_in_code("facebook = 1\n", "facebook", media=media)


def test_every_registered_crm_has_its_own_module() -> None:
    for provider in registry.names():
        assert _crm_module(provider).is_file(), provider


@pytest.mark.parametrize("provider", registry.names())
def test_a_crm_is_named_in_at_most_two_product_files_besides_its_module(provider: str) -> None:
    own = _crm_module(provider)
    naming = [_relative(p) for p in product_files() if p != own and names_in_code(p.read_text(encoding="utf-8"), provider)]
    assert len(naming) <= MAX_FILES_NAMING_A_CRM, f"{provider} is named in {naming}"


def test_crm_code_names_no_channel() -> None:
    media = frozenset(channels.info(name).medium for name in channels.names())
    found = [
        f"{_relative(path)} names {channel}"
        for path in sorted(CRM_PACKAGE.rglob("*.py"))
        for channel in channels.names()
        if names_in_code(path.read_text(encoding="utf-8"), channel, media=media)
    ]
    assert found == []
