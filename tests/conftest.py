"""Puts tests/ on the import path once, for every suite: `fakes.*` (ports, platform, CRM, IdP) is
importable from any test module whatever the collection order."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
