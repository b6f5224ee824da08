"""GET /chat/{widget_id}/config and /widget.js: what the embeddable widget loads (interface section 7)."""

from __future__ import annotations

import json

from switchboard import chat_widget_file

from ._chat_stack import PORTAL, SCRIPT, ChatStack


def test_config_of_an_anonymous_widget(stack: ChatStack) -> None:
    answer = stack.call("GET", "web", "config")
    assert answer.status == 200 and answer.content_type == "application/json"
    assert json.loads(answer.body) == {
        "widget_id": "web",
        "auth": "anonymous",
        "client_function": None,
        "allow_anonymous": True,  # no auth setting: every visitor is anonymous
        "ask_contact": True,
        "session_minutes": 30,
    }
    assert answer.headers["Cache-Control"] == "public, max-age=60"


def test_config_of_jwt_widgets_names_the_token_function(stack: ChatStack) -> None:
    default = json.loads(stack.call("GET", "signed", "config").body)
    assert default == {
        "widget_id": "signed",
        "auth": "jwt",
        "client_function": "auth.getAuthenticationToken",  # Dynamics' convention, when the setting names none
        "allow_anonymous": False,
        "ask_contact": False,
        "session_minutes": 60,
    }
    custom = json.loads(stack.call("GET", "signed2", "config").body)
    assert (custom["auth"], custom["client_function"], custom["allow_anonymous"]) == ("jwt", "myApp.chatToken", True)


def test_config_reveals_nothing_of_the_auth_setting_beyond_the_function(stack: ChatStack) -> None:
    body = stack.call("GET", "signed", "config").body
    assert "public_key_url" not in body and "portal.example.com/k" not in body


def test_the_widget_script_is_served_as_javascript_and_cached(stack: ChatStack) -> None:
    answer = stack.call("GET", "web", "widget.js", headers={"origin": PORTAL})
    assert (answer.status, answer.body) == (200, SCRIPT)
    assert answer.content_type == "application/javascript; charset=utf-8"
    assert answer.headers["Cache-Control"] == "public, max-age=300"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_script_and_config_of_an_unknown_widget_are_404(stack: ChatStack) -> None:
    for widget in ("nope", "off", "<script>"):
        for tail in ("widget.js", "config"):
            answer = stack.call("GET", widget, tail)
            assert (answer.status, json.loads(answer.body)["error"]) == (404, "not_found")
            assert "<script>" not in answer.body


def test_a_package_without_the_script_answers_500_not_an_empty_script(stack: ChatStack) -> None:
    stack.script[0] = None
    answer = stack.call("GET", "web", "widget.js")
    assert (answer.status, json.loads(answer.body)["error"]) == (500, "configuration_error")


def test_the_packaged_script_is_read_from_the_core_package() -> None:
    assert chat_widget_file.WIDGET_SCRIPT.parts[-3:] == ("switchboard", "web_chat", "widget.js")
    text = chat_widget_file.widget_script()
    assert text is not None and text.strip(), "src/switchboard/web_chat/widget.js is missing or empty"
