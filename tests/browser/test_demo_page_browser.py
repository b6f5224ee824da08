"""The README's walk-through of the demo portal page: `switchboard local` (no --config) serves /demo/chat, a visitor
chats there signed in, `switchboard reply` answers, and the widget shows it. Its screenshot is the README's.

``UPDATE_SCREENSHOTS=1`` writes the screenshot to docs/images/chat-widget.png; otherwise it goes to the
test's temporary folder (a test run leaves the work tree as it found it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e import _hygiene
from e2e._stack import ROOT, Stack, start_stack

from ._browser import Widget, until

pytestmark = pytest.mark.browser

SCREENSHOT = ROOT / "docs" / "images" / "chat-widget.png"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, hygiene: None) -> Iterator[Stack]:
    with start_stack(None, tmp_path_factory.mktemp("demo-browser-home")) as running:
        yield running


def test_the_demo_page_chats_signed_in_and_switchboard_reply_answers(demo: Stack, browser: Widget, tmp_path: Path) -> None:
    output = (demo.home / "local.out").read_text()
    assert f"demo chat page: {demo.url}/demo/chat" in output.splitlines()
    page = requests.get(f"{demo.url}/demo/chat", timeout=10)
    assert page.status_code == 200 and "/chat/demo-web/widget.js" in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self';")  # no inline script or style

    browser.driver.set_window_size(1100, 900)  # room for the whole panel in the README's screenshot
    browser.driver.get(f"{demo.url}/demo/chat")
    events = lambda: browser.driver.execute_script("return document.getElementById('events').textContent")  # noqa: E731
    until(lambda: "switchboard:ready" in events(), "the widget on the demo page")
    browser.open()
    assert browser.wait_chatting()["focused"] == "input"
    kept = until(lambda: (s := browser.session()) and s.get("token") and s, "the demo chat's session")
    _hygiene.REGISTRY.add([kept["token"]])
    conversation_id = kept["conversation_id"]
    browser.type("Hi! Can I change my delivery address?")
    view = until(lambda: (v := demo.show(conversation_id))["queue"] and v, "the demo chat routed")
    assert (view["account_id"], view["authenticated"], view["contact_id"]) == ("demo-web", True, "demo-contact-0001")
    assert (view["context"], view["queue"]) == ({"plan": "gold", "cart_value": "120"}, "vip")

    demo.cli("reply", conversation_id, "--text", "Of course. Which order is it about?")
    browser.wait_messages(
        [("in", "Hi! Can I change my delivery address?"), ("out", "Of course. Which order is it about?")], "the reply"
    )
    assert "switchboard:message (out)" in events()
    # The page's theme reaches into the widget's shadow root through its CSS custom property, under the strict CSP.
    launcher = browser.driver.execute_script(
        "return getComputedStyle(document.querySelector('[data-switchboard=root]').shadowRoot"
        ".querySelector('[data-switchboard=launcher]')).backgroundColor"
    )
    assert launcher == "rgb(11, 61, 145)"
    browser.driver.execute_script("document.querySelector('[data-switchboard=root]').shadowRoot.activeElement.blur()")

    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / SCREENSHOT.name
    target.parent.mkdir(parents=True, exist_ok=True)
    assert browser.driver.save_screenshot(str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_demo_routes_are_local_only(demo: Stack) -> None:
    template = (ROOT / "template.yaml").read_text()
    assert "/demo" not in template  # the gateway's page hook serves them; a deployed API has no such route
    token = requests.get(f"{demo.url}/demo/token", timeout=10)
    assert token.status_code == 200 and token.headers["Cache-Control"] == "no-store"
    _hygiene.REGISTRY.add([token.json()["token"]])
    assert requests.post(f"{demo.url}/demo/chat", timeout=10).status_code == 405
    assert requests.get(f"{demo.url}/demo/nothing", timeout=10).status_code == 404
