from __future__ import annotations

import re
import socket

import pytest


def test_a_test_cannot_connect_beyond_loopback() -> None:
    # 192.0.2.1 is TEST-NET-1 (never routed); the guard refuses before any packet is sent anyway.
    with socket.socket() as s, pytest.raises(OSError, match=re.escape("tests may not connect to 192.0.2.1")):
        s.connect(("192.0.2.1", 9))


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())
