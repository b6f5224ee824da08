from __future__ import annotations

import sys

import pytest

from switchboard import safe_json


@pytest.mark.parametrize("levels", [safe_json.MAX_DEPTH + 1, 2_000, 30_000, sys.getrecursionlimit() * 3])
def test_deep_arrays_and_objects_are_one_value_error(levels: int) -> None:
    for raw in ("[" * levels + "]" * levels, '{"a":' * levels + "1" + "}" * levels):
        with pytest.raises(safe_json.JsonError, match="nested deeper"):
            safe_json.loads(raw)


def test_the_depth_limit_is_inclusive() -> None:
    depth = safe_json.MAX_DEPTH
    assert safe_json.loads("[" * depth + "]" * depth) is not None
    assert safe_json.depth_exceeds([[1]], 2) is False
    assert safe_json.depth_exceeds([[[1]]], 2) is True
    assert safe_json.depth_exceeds({"a": {"b": [1, "x"]}}, 3) is False


@pytest.mark.parametrize("raw", [b"", b"nope", b"\xff\xfe", b'{"a":', "[1,]"])
def test_malformed_is_a_json_error_that_names_no_content(raw: str | bytes) -> None:
    with pytest.raises(safe_json.JsonError) as caught:
        safe_json.loads(raw)
    assert str(caught.value) == "not valid JSON"
    assert isinstance(caught.value, ValueError)


def test_scalars_and_documents_parse_as_json_does() -> None:
    assert safe_json.loads(b'{"events": [{"type": "message"}]}') == {"events": [{"type": "message"}]}
    assert safe_json.loads("3") == 3
    assert safe_json.loads('"x"') == "x"
