"""The secrets check itself (no stack needed, so it runs with the unit suite): it finds a planted secret, masked."""

from __future__ import annotations

from pathlib import Path

import yaml

from ._hygiene import MIN_LENGTH, REGISTRY, check_stack, register_config, scan, secrets_in

PLANTED = "planted-channel-secret-4f1c9e"


def test_a_planted_secret_in_a_log_line_is_found_and_masked() -> None:
    findings = scan([("local.err", f"INFO fine\nWARNING signature mismatch, expected key {PLANTED}\n")], [PLANTED])
    assert len(findings) == 1
    assert findings[0].startswith("local.err:2: WARNING signature mismatch")
    assert PLANTED not in findings[0]
    assert "<secret pla…, 29 chars>" in findings[0]


def test_clean_lines_give_no_findings() -> None:
    assert scan([("local.out", "ready http://127.0.0.1:3000\nstopped\n")], [PLANTED]) == []


def test_every_value_under_secrets_is_collected_at_any_depth() -> None:
    document = {
        "accounts": [{"id": "a", "name": "not secret", "secrets": {"channel_secret": "s-one-123456", "token": "t-two-123456"}}],
        "auth": [{"id": "o", "secrets": {"client_secret": "c-three-1234"}}],
        "crm": {"provider": "zendesk", "secrets": {"email": "x@y.example", "api_token": "z-four-12345"}},
    }
    assert sorted(secrets_in(document)) == sorted(["s-one-123456", "t-two-123456", "c-three-1234", "x@y.example", "z-four-12345"])


def test_a_stack_whose_log_or_error_body_holds_an_applied_secret_fails_the_check(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"accounts": [{"id": "a", "secrets": {"channel_secret": PLANTED, "short": "abc"}}]}))
    register_config(config)
    url = "http://127.0.0.1:1"
    (tmp_path / "local.out").write_text("ready http://127.0.0.1:1\nstopped\n")
    (tmp_path / "local.err").write_text("")
    assert check_stack(url, tmp_path) == []

    (tmp_path / "local.err").write_text(f"ERROR could not verify with {PLANTED}\n")
    (leak,) = check_stack(url, tmp_path)
    assert leak.endswith("ERROR could not verify with <secret pla…, 29 chars>"), leak

    (tmp_path / "local.err").write_text("")
    REGISTRY.error_bodies.append((f"POST {url}/webhooks/line/a -> 401", f'{{"error": "bad signature for {PLANTED}"}}'))
    (leak,) = check_stack(url, tmp_path)
    assert leak.startswith(f"error body of POST {url}/webhooks/line/a -> 401:1:"), leak
    assert "abc" not in REGISTRY.known() and len("abc") < MIN_LENGTH  # too short to tell from ordinary text
