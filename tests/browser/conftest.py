"""The browser suite's session: a local stack with the test widgets, a key server, the test portal and the flaky proxy.

The stack is `switchboard local --config <this suite's document>`, started and checked like the e2e
suite's (tests/e2e/_stack.py), including the secrets hygiene check when it stops: no JWT or session
token the browser handled may appear in its logs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e import _hygiene
from e2e._stack import Stack, dump_config, start_stack
from fakes.idp import FakeIdp

from ._browser import Widget, chromium, require_chromium
from ._servers import FlakyProxy, Portal

ISSUER = "portal.browser.example"
WEB = "browser-web"  # jwt; the page's token function is portal.auth.getToken
OPEN = "browser-open"  # no auth setting: anonymous visitors, asked for an optional name and e-mail
CONTACT = "contact-browser-0001"  # the signed-in visitor's contact id (the token's sub)


@pytest.fixture(scope="session")
def hygiene() -> None:
    """Before any fake or stack starts: what the secrets check, run as each stack stops, needs to know (tests/e2e/_hygiene.py)."""
    _hygiene.record_requests()
    _hygiene.track_fakes()


@pytest.fixture(scope="session")
def idp(hygiene: None) -> Iterator[FakeIdp]:
    with FakeIdp() as fake:
        fake.new_key("k1")
        fake.serve_array(("k1", int(time.time()) + 86400))
        yield fake


@pytest.fixture(scope="session")
def portal(idp: FakeIdp) -> Iterator[Portal]:
    def sign() -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": CONTACT, "iat": now, "exp": now + 300, "lwicontexts": '{"tier": "gold"}'}
        token = idp.token(claims, kid="k1")
        _hygiene.REGISTRY.add([token])
        return token

    server = Portal(sign)
    server.start()
    yield server
    server.stop()


def configuration(idp: FakeIdp, portal: Portal) -> dict[str, Any]:
    return {
        "auth_settings": [
            {
                "id": "browser-portal",
                "type": "jwt",
                "public_key_url": idp.key_url("/keys"),
                "issuer": ISSUER,
                "client_function": "portal.auth.getToken",
            }
        ],
        "widgets": [
            {"id": WEB, "workstream": "web", "auth_setting": "browser-portal", "allowed_origins": [portal.origin]},
            {"id": OPEN, "workstream": "web", "allowed_origins": [portal.origin], "ask_contact": True},
        ],
        "workstreams": [
            {
                "id": "web",
                "fallback_queue": "web-chat",
                "rules": [{"name": "gold", "when": [{"field": "context.tier", "op": "eq", "value": "gold"}], "queue": "vip"}],
            }
        ],
        "crm": {"provider": "none"},
    }


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, hygiene: None, idp: FakeIdp, portal: Portal) -> Iterator[Stack]:
    require_chromium()  # before a stack is started for nothing
    home = tmp_path_factory.mktemp("browser-home")
    config = home / "browser-config.yaml"
    config.write_text(dump_config(configuration(idp, portal)))
    with start_stack(config, home) as running:
        yield running


@pytest.fixture(scope="session")
def proxy(stack: Stack) -> Iterator[FlakyProxy]:
    server = FlakyProxy(stack.url)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browser() -> Iterator[Widget]:
    """A fresh headless Chromium (empty profile, so empty sessionStorage) per test."""
    with chromium() as driver:
        yield Widget(driver)
