"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium, and the widget as a page object.

The browser is the system's, found at fixed paths (overridable with ``SWITCHBOARD_CHROMIUM`` and
``SWITCHBOARD_CHROMEDRIVER``); Selenium is told both, so it never looks for or downloads a driver. The
flags keep a headless run on a closed network quiet: no first-run, sync, component updates, background
requests or QUIC, and a profile directory of its own per browser (so sessionStorage starts empty).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.shadowroot import ShadowRoot
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path(os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("SWITCHBOARD_CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL = "sudo apt-get install -y chromium chromium-driver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers have a small /dev/shm
    "--no-proxy-server",  # the pages and the stack are on loopback; a proxy in the environment must not catch them
    "--window-size=1000,700",
)
WAIT = 30.0


def require_chromium() -> None:
    """Fail (never skip) with the one command to run when the browser or its driver is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"the browser tests need Debian's Chromium and its driver ({', '.join(missing)} missing): run `{INSTALL}` "
            "(`make test` installs them itself when run as root)",
            pytrace=False,
        )


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="switchboard-chromium-") as profile:
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


def until(probe: Any, what: str, timeout: float = WAIT) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


# Reads the widget's state in one round trip. The widget is in an open shadow root under [data-switchboard=root].
_READ = """
const host = document.querySelector('[data-switchboard=root]');
if (!host || !host.shadowRoot) return null;
const root = host.shadowRoot;
const hook = (name) => root.querySelector('[data-switchboard=' + name + ']');
return {
  messages: Array.from(root.querySelectorAll('[data-switchboard=message]'), (m) => ({
    direction: m.getAttribute('data-direction'), text: m.querySelector('[data-switchboard=text]').textContent,
    author: (m.querySelector('[data-switchboard=author]') || {}).textContent || null,
    id: m.getAttribute('data-id'), state: m.getAttribute('data-state')})),
  notices: Array.from(root.querySelectorAll('[data-switchboard=notice]'), (n) => n.textContent),
  error: hook('error').hidden ? null : hook('error').textContent,
  panel_open: !hook('panel').hidden,
  form_open: !hook('form').hidden,
  start_form_open: !hook('start-form').hidden,
  markup: root.querySelectorAll('[data-switchboard=log] *:not(div):not(span):not(p)').length,
  focused: root.activeElement ? root.activeElement.getAttribute('data-switchboard') : null,
};
"""


class Widget:
    """The embedded widget on the page the driver shows."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def open_page(self, url: str) -> Widget:
        self.driver.get(url)
        self.wait_ready()
        return self

    def wait_ready(self) -> dict[str, Any]:
        ready: dict[str, Any] = until(lambda: self.events("ready"), "the widget's switchboard:ready event")[0]
        return ready

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.driver.execute_script("return window.__events || []") or []
        return [e for e in events if kind is None or e["type"] == kind]

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = until(lambda: self.driver.execute_script(_READ), "the widget in the page")
        return state

    def root(self) -> ShadowRoot:
        host = self.driver.find_element(By.CSS_SELECTOR, "[data-switchboard=root]")
        return host.shadow_root

    def hook(self, name: str) -> WebElement:
        return self.root().find_element(By.CSS_SELECTOR, f"[data-switchboard={name}]")

    def open(self) -> None:
        self.hook("launcher").click()

    def wait_chatting(self) -> dict[str, Any]:
        """The chat has started: the message box is there (and has the focus)."""
        return until(lambda: (s := self.state())["form_open"] and s, "the chat to start")  # type: ignore[no-any-return]

    def session(self) -> dict[str, Any] | None:
        """What the widget keeps in sessionStorage (conversation id, session token, cursor, transcript, outbox)."""
        kept: dict[str, Any] | None = self.driver.execute_script(
            "for (let i = 0; i < sessionStorage.length; i++) { const k = sessionStorage.key(i);"
            " if (k.startsWith('switchboard:')) return JSON.parse(sessionStorage.getItem(k)); } return null;"
        )
        return kept

    def messages(self) -> list[tuple[str, str]]:
        return [(m["direction"], m["text"]) for m in self.state()["messages"]]

    def wait_messages(self, expected: list[tuple[str, str]], what: str, *, settled: bool = True) -> list[dict[str, Any]]:
        """Until the widget shows exactly ``expected`` (direction, text), in order; ``settled``: each has its server id."""

        def shown() -> list[dict[str, Any]] | None:
            rows: list[dict[str, Any]] = self.state()["messages"]
            same = [(m["direction"], m["text"]) for m in rows] == expected
            return rows if same and (not settled or all(m["id"] and not m["state"] for m in rows)) else None

        found: list[dict[str, Any]] = until(shown, what)
        return found

    def type(self, text: str) -> None:
        """Typed as a visitor types: into the focused message box, Enter sends."""
        box = self.hook("input")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)
