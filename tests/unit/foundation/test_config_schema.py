"""The configuration's JSON Schema: assembled from every plug-in's declarations, and the files we ship pass it.

Every channel and CRM is taken from its registry, so a new plug-in is covered the day it is
registered: its section refuses an unknown setting and a wrongly typed one, and every setting its
code reads is one it declares.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from source_tree import parse

from switchboard import channels, config_schema
from switchboard.config import Desired, validate
from switchboard.crm import registry

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = [ROOT / "infra" / "local" / "demo.yaml", ROOT / "tests" / "e2e" / "config.yaml"]
# Values tried, in order, for a setting a test needs filled: the first the setting's own schema accepts.
SAMPLES: list[Any] = ["https://example.com", "00D5g000001abcd", "admin@example.com", "sample-1", "sample_name", True, 1, {}]
# Values tried for a wrongly typed setting: the first the setting's own schema refuses.
WRONG: list[Any] = [[[1]], {"nested": [1]}, 3.5, "not-a-value-of-this-type", True]


def _accepts(setting: Mapping[str, Any], value: Any) -> bool:
    root = config_schema.schema()
    return Draft202012Validator({**dict(setting), "$defs": root["$defs"]}).is_valid(value)


def _first(candidates: list[Any], setting: Mapping[str, Any], *, accepted: bool) -> Any:
    for value in candidates:
        if _accepts(setting, value) is accepted:
            return value
    raise AssertionError(f"no sample value for {setting}")


def _plugins() -> Iterator[tuple[str, str, type[Any]]]:
    for name in channels.names():
        yield "accounts", name, channels.adapter_class(name)
    for name in registry.names():
        yield "crm", name, registry.adapter_class(name)


PLUGINS = list(_plugins())
PLUGIN_IDS = [f"{section}:{name}" for section, name, _ in PLUGINS]


def _minimal(section: str, name: str, cls: type[Any]) -> dict[str, Any]:
    """A configuration holding one valid object of the plug-in: its required settings and secrets, sampled."""
    obj: dict[str, Any] = {key: _first(SAMPLES, cls.settings_schema[key], accepted=True) for key in cls.required_settings}
    lists = set(getattr(cls, "list_secrets", ()))
    obj["secrets"] = {s: ["sample-secret"] if s in lists else "sample-secret" for s in cls.required_secrets}
    if section == "crm":
        return {"crm": {"provider": name, **obj}}
    account = {"id": "acct-1", "channel": name, "workstream": "w", **obj}
    return {"accounts": [account], "workstreams": [{"id": "w", "fallback_queue": "q"}]}


def _target(doc: dict[str, Any], section: str) -> dict[str, Any]:
    return doc["crm"] if section == "crm" else doc["accounts"][0]


def _path(section: str) -> str:
    return "crm" if section == "crm" else "accounts[0]"


def test_the_schema_is_valid_draft_2020_12() -> None:
    schema = config_schema.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_registered_plugin_has_its_branch() -> None:
    defs = config_schema.schema()["$defs"]
    assert {f"channel_{n}" for n in channels.names()} <= set(defs)
    assert {f"crm_{n}" for n in registry.names()} <= set(defs)
    assert defs["account"]["properties"]["channel"]["enum"] == channels.names()


@pytest.mark.parametrize(("section", "name", "cls"), PLUGINS, ids=PLUGIN_IDS)
def test_a_minimal_object_of_each_plugin_is_accepted(tmp_path: Path, section: str, name: str, cls: type[Any]) -> None:
    result = validate(_minimal(section, name, cls), env={}, base_dir=tmp_path)
    assert isinstance(result, Desired), result


@pytest.mark.parametrize(("section", "name", "cls"), PLUGINS, ids=PLUGIN_IDS)
def test_each_plugin_section_refuses_an_unknown_setting(tmp_path: Path, section: str, name: str, cls: type[Any]) -> None:
    doc = _minimal(section, name, cls)
    _target(doc, section)["no_such_setting"] = "x"
    _target(doc, section)["secrets"]["no_such_secret"] = "x"
    found = [str(i) for i in validate(doc, env={}, base_dir=tmp_path)]  # type: ignore[union-attr]
    assert sorted(found) == [
        f"{_path(section)}.no_such_setting: unknown setting",
        f"{_path(section)}.secrets.no_such_secret: unknown secret",
    ]


@pytest.mark.parametrize(("section", "name", "cls"), PLUGINS, ids=PLUGIN_IDS)
def test_each_plugin_section_refuses_a_wrong_type_in_every_setting(
    tmp_path: Path, section: str, name: str, cls: type[Any]
) -> None:
    assert cls.settings_schema, f"{name} declares no settings"
    for key, setting in cls.settings_schema.items():
        doc = _minimal(section, name, cls)
        _target(doc, section)[key] = _first(WRONG, setting, accepted=False)
        result = validate(doc, env={}, base_dir=tmp_path)
        assert isinstance(result, list), (key, result)
        assert [i.path for i in result] == [f"{_path(section)}.{key}"], (key, [str(i) for i in result])
        assert result[0].message.startswith("must"), str(result[0])


@pytest.mark.parametrize(("section", "name", "cls"), PLUGINS, ids=PLUGIN_IDS)
def test_each_plugin_requires_its_required_settings_and_secrets(tmp_path: Path, section: str, name: str, cls: type[Any]) -> None:
    for key in cls.required_settings:
        doc = _minimal(section, name, cls)
        del _target(doc, section)[key]
        assert [str(i) for i in validate(doc, env={}, base_dir=tmp_path)] == [f"{_path(section)}.{key}: required"]  # type: ignore[union-attr]
    for secret in cls.required_secrets:
        doc = _minimal(section, name, cls)
        del _target(doc, section)["secrets"][secret]
        found = [str(i) for i in validate(doc, env={}, base_dir=tmp_path)]  # type: ignore[union-attr]
        assert found == [f"{_path(section)}.secrets.{secret}: required"]


@pytest.mark.parametrize(("section", "name", "cls"), PLUGINS, ids=PLUGIN_IDS)
def test_every_declared_default_is_accepted_by_its_own_schema(section: str, name: str, cls: type[Any]) -> None:
    for key, setting in cls.settings_schema.items():
        assert setting.get("description"), f"{name}.{key} has no description"
        if "default" in setting:
            assert _accepts(setting, setting["default"]), f"{name}.{key}'s default is refused by its own schema"


@pytest.mark.parametrize("name", channels.names())
def test_every_setting_a_channel_reads_is_declared(name: str) -> None:
    """The settings ``account.option(...)`` reads in the channel's module: each one must be in its schema."""
    module = ROOT / "src" / "switchboard" / "channels" / f"{name}.py"
    if not module.exists():
        module = module.with_suffix("") / "__init__.py"
    read = {
        node.args[0].value
        for node in ast.walk(parse(module))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "option"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert read <= set(channels.adapter_class(name).settings_schema), read - set(channels.adapter_class(name).settings_schema)


# -- the files we ship and the examples in the docs ---------------------------------------------------


def _doc_examples() -> list[tuple[str, Any]]:
    """Every fenced YAML block in docs/ that is a configuration (a mapping of the file's sections).

    docs/extending.md is left out: its example is a channel that exists only in the guide, and
    tests/unit/channels/test_extending_example.py registers it and checks that example.
    """
    found = []
    for md in sorted([*ROOT.glob("docs/*.md"), *ROOT.glob("docs/channels/*.md")]):
        if md.name == "extending.md":
            continue
        text = md.read_text()
        for match in re.finditer(r"^```ya?ml[^\n]*\n(.*?)^```", text, re.M | re.S):
            doc = yaml.safe_load(match.group(1))
            if isinstance(doc, dict) and doc and set(doc) <= set(config_schema.SECTIONS):
                found.append((f"{md.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}", doc))
    return found


DOC_EXAMPLES = _doc_examples()


def test_the_docs_have_configuration_examples() -> None:
    assert len(DOC_EXAMPLES) >= 5, [where for where, _ in DOC_EXAMPLES]
    shown = {a["channel"] for _, doc in DOC_EXAMPLES for a in doc.get("accounts") or []}
    assert shown >= set(channels.names()), "every channel's guide shows its account"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_configurations_pass_the_schema(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert config_schema.check(doc) == []
    Draft202012Validator(config_schema.schema()).validate(doc)  # a stock validator agrees (what editors run)


@pytest.mark.parametrize(("where", "doc"), DOC_EXAMPLES, ids=[w for w, _ in DOC_EXAMPLES])
def test_doc_examples_pass_the_schema(where: str, doc: Any) -> None:
    assert config_schema.check(doc) == [], where
    Draft202012Validator(config_schema.schema()).validate(doc)


# -- Python-reading pitfalls the validator closes ------------------------------------------------------


@pytest.mark.parametrize("value", ["tokyo\n", "ok\n"])
def test_a_trailing_newline_never_passes_a_pattern(value: str) -> None:
    found = config_schema.check({"workstreams": [{"id": value, "fallback_queue": "q"}]})
    assert found == [(("workstreams", 0, "id"), config_schema.ID_MESSAGE)]


@pytest.mark.parametrize("value", [15.0, 2.5])
def test_a_float_is_not_a_whole_number(value: float) -> None:
    found = config_schema.check({"workstreams": [{"id": "w", "fallback_queue": "q", "close_after_minutes": value}]})
    assert found == [(("workstreams", 0, "close_after_minutes"), "must be a positive whole number")]


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_infinity_and_nan_are_refused(value: float) -> None:
    rule = {"when": [{"field": "context.cart", "op": "gt", "value": value}], "queue": "q"}
    found = config_schema.check({"workstreams": [{"id": "w", "fallback_queue": "q", "rules": [rule]}]})
    assert (("workstreams", 0, "rules", 0, "when", 0, "value"), "must be a finite number") in found


@pytest.mark.parametrize("value", [5000, "5000", " 1e3 ", "-2.5", ".5", 1.25])
def test_numbers_and_numeric_text_compare(value: Any) -> None:
    rule = {"when": [{"field": "context.cart", "op": "ge", "value": value}], "queue": "q"}
    assert config_schema.check({"workstreams": [{"id": "w", "fallback_queue": "q", "rules": [rule]}]}) == []


def test_schema_returns_a_copy() -> None:
    first = config_schema.schema()
    first["$defs"].clear()
    assert config_schema.schema()["$defs"], "a caller's change must not leak into the validator"
    assert copy.deepcopy(config_schema.schema()) == config_schema.schema()
