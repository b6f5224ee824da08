"""Parsing the project's own source in tests that check its shape.

CPython 3.11 keeps the AST converter's recursion counter per interpreter, not per thread, so an
``ast.parse`` racing another thread's ``compile`` (moto's server threads compile werkzeug's routing
rules as they start) can fail with "SystemError: AST constructor recursion depth mismatch" although
the source is fine (fixed in later CPython releases). The race is transient: parse again. Should it
persist, parse in a child interpreter, whose AST pickles back whole.
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
import time
from pathlib import Path

_RACE = "AST constructor recursion depth mismatch"


def parse(source: str | Path) -> ast.Module:
    text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
    for attempt in range(5):
        try:
            return ast.parse(text)
        except SystemError as exc:
            if _RACE not in str(exc):
                raise
            time.sleep(0.02 * (attempt + 1))
    child = subprocess.run(
        [sys.executable, "-c", "import ast, pickle, sys; sys.stdout.buffer.write(pickle.dumps(ast.parse(sys.stdin.read())))"],
        input=text.encode("utf-8"),
        capture_output=True,
        check=True,
    )
    tree: ast.Module = pickle.loads(child.stdout)  # noqa: S301 - our own child process, parsing our own source
    return tree
