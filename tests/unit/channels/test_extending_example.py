"""docs/extending.md's worked example is real: its module, registered by its one line, is a working channel.

The test takes the guide's code as printed, registers it the way the guide says, and checks what the
guide promises: the configuration accepts the channel (and refuses a misspelt setting), ``simulate``
posts a delivery its own ``verify`` and ``parse`` accept, and a wrong or hollow token is refused.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from source_tree import parse

from switchboard import channels, config_schema
from switchboard.config import Desired, validate
from switchboard.errors import Unauthorized
from switchboard.settings import account_from_dict
from switchboard.web import WebhookRequest

ROOT = Path(__file__).resolve().parents[3]
GUIDE = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
MODULE = "doc_example_telegram"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", GUIDE, re.M | re.S)


def _clear_caches() -> None:
    channels.adapter_class.cache_clear()
    config_schema._cached.cache_clear()
    config_schema._validator.cache_clear()


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Any]]:
    module = types.ModuleType(MODULE)
    exec(compile(blocks("python")[0], "docs/extending.md", "exec"), module.__dict__)  # noqa: S102 - our own guide
    monkeypatch.setitem(sys.modules, MODULE, module)
    monkeypatch.setitem(channels.ADAPTERS, "telegram", f"{MODULE}:TelegramAdapter")
    _clear_caches()
    yield module.TelegramAdapter
    monkeypatch.undo()
    _clear_caches()


def test_the_guide_registers_the_module_with_one_line() -> None:
    assert '"telegram": "switchboard.channels.telegram:TelegramAdapter",' in blocks("python")[1]
    parse(blocks("python")[2])  # the Lambda's app.py is Python


def test_the_guides_account_applies_and_a_misspelt_setting_is_refused(registered: type[Any], tmp_path: Path) -> None:
    (doc,) = [yaml.safe_load(b) for b in blocks("yaml") if "telegram" in b]
    env = {"TELEGRAM_SECRET_TOKEN": "tg-secret-1", "TELEGRAM_BOT_TOKEN": "123:bot"}
    result = validate(doc, env=env, base_dir=tmp_path)
    assert isinstance(result, Desired), result
    (account,) = result.of("account")
    assert account.secrets == {"secret_token": "tg-secret-1", "bot_token": "123:bot"}
    doc["accounts"][0]["bot_usrname"] = "x"
    doc["accounts"][0]["bot_username"] = "@contoso"
    assert [str(i) for i in validate(doc, env=env, base_dir=tmp_path)] == [  # type: ignore[union-attr]
        "accounts[0].bot_username: must be the bot's username, without @",
        "accounts[0].bot_usrname: unknown setting",
    ]
    assert channels.info("telegram") == channels.ChannelInfo(label="Telegram", medium="chat")


def _request(sent: Any, headers: dict[str, str] | None = None) -> WebhookRequest:
    given = {k.lower(): v for k, v in (sent.headers if headers is None else headers).items()}
    return WebhookRequest("POST", sent.path, {}, {}, given, sent.body, "r-1")


def test_simulate_verify_and_parse_agree(registered: type[Any]) -> None:
    adapter = channels.adapter("telegram")
    stored = {"id": "tg-support", "channel": "telegram", "workstream": "social", "bot_username": "contoso_support_bot"}
    secrets = {"secret_token": "tg-secret-1", "bot_token": "123:bot"}
    account = account_from_dict(stored)
    sent = adapter.simulate(stored, secrets, text="hello", user="42", event_id="1001")
    assert sent.path == "/webhooks/telegram/tg-support"
    adapter.verify(_request(sent), account, secrets)
    (envelope,) = adapter.parse(_request(sent), account, received_at=1, correlation_id="c").envelopes
    assert (envelope.id, envelope.customer.id, envelope.kind, envelope.text) == (
        "telegram:tg-support:1001",
        "42",
        "text",
        "hello",
    )
    for hollow in ({**secrets, "secret_token": ""}, {"bot_token": "123:bot"}):
        with pytest.raises(Unauthorized):
            adapter.verify(_request(sent), account, hollow)
    with pytest.raises(Unauthorized):
        adapter.verify(_request(sent, {"X-Telegram-Bot-Api-Secret-Token": "guess"}), account, secrets)
