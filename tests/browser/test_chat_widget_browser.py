"""The chat widget in real headless Chromium, on a portal page of another origin, against a local stack.

Each test opens a fresh browser (empty sessionStorage) on the test portal (tests/browser/_servers.py),
which embeds a widget with the one script tag a business adds, and checks what a visitor and the
business see: the widget's DOM (the data-switchboard hooks), its events on window, and the
conversation the stack stored (`switchboard conversations show`).
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e import _hygiene
from e2e._stack import Stack
from selenium.webdriver.common.keys import Keys

from ._browser import Widget, until
from ._servers import FlakyProxy, Portal
from .conftest import CONTACT, OPEN, WEB

pytestmark = pytest.mark.browser


def started(widget: Widget) -> dict[str, Any]:
    """The session the widget keeps once its chat has started; its session token joins the secrets no log may show."""
    kept: dict[str, Any] = until(lambda: (s := widget.session()) and s.get("token") and s, "the widget's session")
    _hygiene.REGISTRY.add([kept["token"]])
    return kept


def transcript(stack: Stack, conversation_id: str) -> list[tuple[str, str]]:
    """Both directions as the stack stored them; events (the chat's start and end) have no text."""
    return [(m["direction"], m["text"]) for m in stack.show(conversation_id)["messages"] if m["text"] is not None]


def stored(stack: Stack, conversation_id: str, expected: list[tuple[str, str]]) -> None:
    until(lambda: transcript(stack, conversation_id) == expected, f"the stack to hold exactly {expected}")


def test_a_signed_in_visitor_chats_with_an_agent_and_a_reload_continues_the_chat(
    stack: Stack, portal: Portal, browser: Widget
) -> None:
    widget = browser.open_page(portal.url(WEB, stack.url))
    assert widget.wait_ready()["detail"] == {"widget_id": WEB, "auth": "jwt", "restored": False}
    assert widget.state()["panel_open"] is False

    widget.open()  # opening starts the chat: the page's token function is asked for the portal's JWT
    assert widget.wait_chatting()["focused"] == "input"
    log, panel = widget.hook("log"), widget.hook("panel")
    assert (log.get_attribute("role"), log.get_attribute("aria-live")) == ("log", "polite")  # new messages are announced
    assert panel.get_attribute("data-authenticated") == "true"
    assert widget.hook("send").tag_name == "button" and widget.hook("end").tag_name == "button"
    conversation_id = started(widget)["conversation_id"]
    widget.type("Where is my order 1234?")
    widget.wait_messages([("in", "Where is my order 1234?")], "the visitor's message, stored")
    view = stack.show(conversation_id)
    assert (view["channel"], view["account_id"], view["authenticated"], view["contact_id"]) == ("chat", WEB, True, CONTACT)
    assert (view["context"], view["queue"]) == ({"tier": "gold"}, "vip")  # routed on the token's context

    stack.cli("reply", conversation_id, "--text", "It ships today.")
    expected = [("in", "Where is my order 1234?"), ("out", "It ships today.")]
    rows = widget.wait_messages(expected, "the agent's reply")
    assert [(e["detail"]["direction"], e["detail"]["text"]) for e in widget.events("message")] == expected
    assert all(e["detail"]["widget_id"] == WEB for e in widget.events("message"))

    browser.driver.refresh()
    assert widget.wait_ready()["detail"]["restored"] is True
    again = widget.wait_messages(expected, "the same transcript after a reload")
    assert [m["id"] for m in again] == [m["id"] for m in rows]
    assert widget.state()["panel_open"] is True  # it was open before the reload
    assert widget.events("message") == []  # nothing new was shown: the kept transcript raises no events again

    widget.type("Thanks!")  # the same chat goes on
    expected.append(("in", "Thanks!"))
    widget.wait_messages(expected, "the message written after the reload")
    assert widget.session()["conversation_id"] == conversation_id  # type: ignore[index]
    stored(stack, conversation_id, expected)


def test_markup_from_the_visitor_or_an_agent_shows_as_text_and_runs_nothing(
    stack: Stack, portal: Portal, browser: Widget
) -> None:
    visitor = '<img src=x onerror="window.__xss = 1"> & <b>bold</b>'
    agent = '<img src=x onerror="window.__xss = 2"><script>window.__xss = 3</script><a href="javascript:alert(1)">x</a>'
    widget = browser.open_page(portal.url(WEB, stack.url))
    widget.open()
    widget.wait_chatting()
    conversation_id = started(widget)["conversation_id"]
    widget.type(visitor)
    widget.wait_messages([("in", visitor)], "the visitor's markup, as text")
    stack.cli("reply", conversation_id, "--text", agent)
    widget.wait_messages([("in", visitor), ("out", agent)], "the agent's markup, as text")
    assert widget.state()["markup"] == 0  # no element but the widget's own in the log: no img, script or a
    ran = browser.driver.execute_script(
        "return [window.__xss === undefined, document.querySelectorAll('img, script[src=x]').length,"
        " document.querySelector('[data-switchboard=root]').shadowRoot.querySelectorAll('img, script, a').length]"
    )
    assert ran == [True, 0, 0]
    stored(stack, conversation_id, [("in", visitor), ("out", agent)])


def test_a_token_function_that_never_answers_gives_token_timeout_after_10_seconds(
    stack: Stack, portal: Portal, proxy: FlakyProxy, browser: Widget
) -> None:
    widget = browser.open_page(portal.url(WEB, proxy.url, token="never"))
    seen_before = len(proxy.seen)
    opened_at = browser.driver.execute_script("return performance.now()")
    widget.open()
    [error] = until(lambda: widget.events("error"), "the switchboard:error event", timeout=20)
    assert error["detail"] == {"widget_id": WEB, "code": "token_timeout"}
    waited = (error["at"] - opened_at) / 1000
    assert 9.5 <= waited <= 15, f"the widget waited {waited:.1f} s for the token, not 10 s"
    state = widget.state()
    assert state["error"] is not None and "token_timeout" in state["error"]
    assert not state["form_open"] and state["focused"] == "restart"
    assert not [s for s in proxy.seen[seen_before:] if s[1].endswith("/conversations")], "a chat was started without a token"


def test_a_token_the_server_refuses_shows_the_servers_code(stack: Stack, portal: Portal, browser: Widget) -> None:
    widget = browser.open_page(portal.url(WEB, stack.url, token="refused"))
    widget.open()
    [error] = until(lambda: widget.events("error"), "the switchboard:error event")
    assert error["detail"] == {"widget_id": WEB, "code": "invalid_token"}
    assert "invalid_token" in widget.state()["error"]
    assert widget.session() is None


def test_an_anonymous_visitor_gives_an_optional_name_and_e_mail_using_the_keyboard_only(
    stack: Stack, portal: Portal, browser: Widget
) -> None:
    widget = browser.open_page(portal.url(OPEN, stack.url))
    assert widget.wait_ready()["detail"]["auth"] == "anonymous"
    launcher = widget.hook("launcher")
    assert launcher.tag_name == "button" and launcher.get_attribute("aria-expanded") == "false"
    launcher.send_keys(Keys.ENTER)  # a button: Enter opens it
    until(lambda: widget.state()["start_form_open"], "the name and e-mail form")
    assert widget.state()["focused"] == "name"
    widget.hook("name").send_keys("Kim <b>Lee</b>", Keys.TAB)
    assert widget.state()["focused"] == "email"
    widget.hook("email").send_keys("kim@example.com", Keys.ENTER)  # Enter in the form starts the chat
    assert widget.wait_chatting()["focused"] == "input"
    conversation_id = started(widget)["conversation_id"]
    widget.type("Hello, anyone there?")
    widget.wait_messages([("in", "Hello, anyone there?")], "the anonymous visitor's message")
    view = stack.show(conversation_id)
    assert (view["authenticated"], view["contact_id"], view["customer"]["name"]) == (False, None, "Kim <b>Lee</b>")

    widget.hook("input").send_keys(Keys.ESCAPE)  # Escape minimises, and the focus goes back to the launcher
    state = widget.state()
    assert not state["panel_open"] and state["focused"] == "launcher"
    assert launcher.get_attribute("aria-expanded") == "false"


def test_a_page_on_an_origin_not_allowed_cannot_start_a_chat(
    stack: Stack, portal: Portal, proxy: FlakyProxy, browser: Widget
) -> None:
    widget = browser.open_page(portal.url(WEB, proxy.url, origin=portal.other_origin))
    assert widget.wait_ready()["detail"]["auth"] is None  # the script loads (a script tag needs no CORS); its API does not
    widget.open()
    [error] = until(lambda: widget.events("error"), "the switchboard:error event", timeout=20)
    # The 403 carries no CORS header, so the browser hands the page a network error rather than the answer.
    assert error["detail"]["code"] in ("origin_not_allowed", "network_error")
    assert widget.state()["error"] is not None and widget.session() is None

    # The page's own attempts: a chat start with a JSON body is stopped at its preflight; a "simple" text/plain
    # POST, which a browser sends without asking, reaches the stack and is refused there, starting nothing.
    outcome = browser.driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1], api = arguments[0];
        const post = (widget, type, body) =>
          fetch(api + '/chat/' + widget + '/conversations', {method: 'POST', headers: {'Content-Type': type}, body});
        const tries = [post('browser-web', 'application/json', '{}'),
                       post('browser-open', 'text/plain', '{"text": "from a page not allowed"}')];
        const shown = (x) => (x.status === 'fulfilled' ? 'answered ' + x.value.status : 'blocked');
        Promise.allSettled(tries).then((results) => done(results.map(shown)));
        """,
        proxy.url,
    )
    assert outcome == ["blocked", "blocked"]
    assert ("OPTIONS", "/chat/browser-web/conversations", 403) in proxy.seen
    assert ("POST", "/chat/browser-open/conversations", 403) in proxy.seen
    assert not [s for s in proxy.seen if s[:2] == ("POST", "/chat/browser-web/conversations")]


def test_a_message_whose_answer_or_request_is_lost_is_retried_with_its_id_and_stored_once(
    stack: Stack, portal: Portal, proxy: FlakyProxy, browser: Widget
) -> None:
    widget = browser.open_page(portal.url(WEB, proxy.url))
    widget.open()
    widget.wait_chatting()
    conversation_id = started(widget)["conversation_id"]

    before = len(proxy.attempts)
    proxy.hold_polls()  # the transcript's copy must not settle the message before the widget retries
    try:
        proxy.lose("answer")  # the stack stores it; the browser sees a network error and tries again
        widget.type("first: its answer is lost")
        until(lambda: len(proxy.attempts) - before >= 2, "the widget's retry")
    finally:
        proxy.release_polls()
    widget.wait_messages([("in", "first: its answer is lost")], "the first message, shown once")
    first = proxy.attempts[before:]
    assert len(first) == 2 and len(set(first)) == 1, first  # the stack got it twice, under one id

    before = len(proxy.attempts)
    proxy.lose("request", 2)  # twice it never reaches the stack
    widget.type("second: lost twice on the way")
    expected = [("in", "first: its answer is lost"), ("in", "second: lost twice on the way")]
    widget.wait_messages(expected, "the second message, shown once")
    second = proxy.attempts[before:]
    assert len(second) == 3 and len(set(second)) == 1 and second[0] != first[0], second
    stored(stack, conversation_id, expected)


def test_a_message_unsent_at_a_reload_is_sent_after_it_under_the_same_id(
    stack: Stack, portal: Portal, proxy: FlakyProxy, browser: Widget
) -> None:
    widget = browser.open_page(portal.url(WEB, proxy.url))
    widget.open()
    widget.wait_chatting()
    conversation_id = started(widget)["conversation_id"]
    before = len(proxy.attempts)
    proxy.lose("request", 3)
    widget.type("written just before a reload")
    until(lambda: len(proxy.attempts) > before, "the first try")
    [unsent] = widget.session()["outbox"]  # type: ignore[index]
    assert widget.state()["messages"][-1]["state"] == "sending"

    browser.driver.refresh()  # while the message is still unsent
    widget.wait_ready()
    widget.wait_messages([("in", "written just before a reload")], "the message after the reload, sent and shown once")
    tries = proxy.attempts[before:]
    assert set(tries) == {unsent["id"]} and len(tries) >= 4, tries
    stored(stack, conversation_id, [("in", "written just before a reload")])


def test_ending_the_chat_closes_the_conversation_and_offers_a_new_one(stack: Stack, portal: Portal, browser: Widget) -> None:
    widget = browser.open_page(portal.url(WEB, stack.url))
    widget.open()
    widget.wait_chatting()
    conversation_id = started(widget)["conversation_id"]
    widget.type("That is all, thanks.")
    widget.wait_messages([("in", "That is all, thanks.")], "the last message")
    widget.hook("end").click()
    until(lambda: (s := widget.state())["notices"] == ["The chat has ended."] and not s["form_open"], "the ended chat")
    assert widget.state()["focused"] == "restart"
    until(lambda: stack.show(conversation_id)["status"] == "closed", "the conversation closed")

    widget.hook("restart").click()  # a new chat: a new conversation, an empty transcript
    widget.wait_chatting()
    assert started(widget)["conversation_id"] != conversation_id
    assert widget.state()["messages"] == [] and widget.state()["notices"] == []
