"""Parsing the project's own source in tests that check its shape.

CPython 3.11 before 3.11.8 can fail ``ast.parse`` with "SystemError: AST constructor recursion depth
mismatch" in a thread whose recursion counter an earlier RecursionError left skewed (the suite
deliberately nests JSON past the limit). The counter is per thread, so parsing in a fresh thread
is immune to whatever ran before in the worker.
"""

from __future__ import annotations

import ast
import threading
from pathlib import Path


def parse(source: str | Path) -> ast.Module:
    text = source.read_text() if isinstance(source, Path) else source
    result: list[ast.Module] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(ast.parse(text))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
