"""The widget script's own promises, checked without a browser (these run with the unit tests).

Its size is the README's number; the rest keeps it a script a portal can embed as it is: no way for a
text to become markup or code, nothing fetched from anywhere but the API it was loaded from, and no
build step (plain JavaScript, no module syntax a classic script tag cannot run).
"""

from __future__ import annotations

import re

from switchboard.chat_widget_file import WIDGET_SCRIPT

SIZE_GOAL = 25_000  # bytes, unminified


def script() -> str:
    return WIDGET_SCRIPT.read_text(encoding="utf-8")


def test_the_widget_is_under_its_size_goal() -> None:
    size = len(WIDGET_SCRIPT.read_bytes())
    assert size < SIZE_GOAL, f"widget.js is {size} bytes; the goal is under {SIZE_GOAL}"


def test_no_text_can_become_markup_or_code() -> None:
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", script(), flags=re.S)  # comments may name what the code avoids
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"):
        assert sink not in code, f"widget.js uses {sink}"
    assert "setTimeout(" in code and not re.search(r"setTimeout\(\s*[\"'`]", code)  # timers get functions, not strings


def test_it_calls_only_the_api_it_was_loaded_from() -> None:
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", script(), flags=re.S)
    assert not re.search(r"https?://", code), "widget.js names a URL of its own"
    assert code.count("fetch(") == 1 and "fetch(API + path" in code


def test_it_is_a_classic_script_in_one_closure() -> None:
    text = script()
    assert not re.search(r"^\s*(import|export)\s", text, flags=re.M)
    body = re.sub(r"^/\*.*?\*/\s*", "", text, flags=re.S)
    assert body.startswith('(() => {\n  "use strict";') and body.rstrip().endswith("})();")
