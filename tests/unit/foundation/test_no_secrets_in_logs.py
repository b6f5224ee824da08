"""No secret value appears in any log line the edge writes, whether it refuses or accepts a request."""

from __future__ import annotations

import json
import sys

import pytest
from fakes.ports import RefusingPublisher

from switchboard.observability import logger

from ._fakes import LINE_SECRET, LINE_TOKEN, PREFIX, line_body, line_event, signed_headers
from .test_edge import make_deps, post


def _scenarios() -> list[tuple[str, bytes, dict[str, str], str]]:
    body = line_body(line_event(f"my secret is not {LINE_SECRET[:4]}", "U1", "01A"))
    empty = b'{"destination":"U123","events":[]}'
    return [
        ("accepted", body, signed_headers(body), "line-tokyo"),
        ("verify request", empty, signed_headers(empty), "line-tokyo"),
        ("missing signature", body, {}, "line-tokyo"),
        ("bad signature", body, signed_headers(body, "wrong"), "line-tokyo"),
        ("secret sent as the signature", body, {"X-Line-Signature": LINE_SECRET}, "line-tokyo"),
        ("not line", b"[1]", signed_headers(b"[1]"), "line-tokyo"),
        ("unknown account", body, signed_headers(body), "nobody"),
        ("disabled account", body, signed_headers(body), "line-off"),
    ]


def test_no_secret_in_edge_logs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logger.registered_handler, "stream", sys.stdout)
    expected_statuses = []
    for _, body, headers, account_id in _scenarios():
        expected_statuses.append(post(make_deps(), body, headers, account_id).status)
    refused = post(
        make_deps(RefusingPublisher()),
        line_body(line_event("hi", "U1", "01B")),
        signed_headers(line_body(line_event("hi", "U1", "01B"))),
    )
    missing = post(make_deps(secrets=False), line_body(line_event("hi", "U1", "01C")), {"X-Line-Signature": "x"})
    assert expected_statuses == [200, 200, 401, 401, 401, 400, 404, 404]
    assert (refused.status, missing.status) == (503, 401)

    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is a Powertools JSON record
    messages = [r["message"] for r in records]
    # The log really was captured: one line per outcome.
    assert messages.count("webhook accepted") == 2
    assert messages.count("webhook refused") == 7
    assert messages.count("webhook not enqueued") == 1
    for record in records:
        assert record["service"]
    for line in lines:
        assert LINE_SECRET not in line
        assert LINE_TOKEN not in line
    # The refusal says why, in codes, without the secret.
    refusals = [r for r in records if r["message"] == "webhook refused"]
    assert {r["error"] for r in refusals} == {"missing_signature", "invalid_signature", "bad_request", "not_found"}
    assert [r["missing_secret"] for r in refusals if "missing_secret" in r] == [f"{PREFIX}/account/line/line-tokyo"]
