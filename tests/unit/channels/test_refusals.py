"""What every adapter refuses before anything is parsed or recorded: accounts whose secret is empty, and bodies too deep.

An HMAC keyed with the empty string is a signature anyone can compute, and an empty stored token
equals an empty presented one; so an account whose secret is missing, empty or blank must answer
exactly as it answers a wrong signature or token, never accept. A body nested deeper than the
interpreter's recursion limit raised ``RecursionError`` past ``except ValueError`` (a 502 before the
signature was checked); every body now goes through :mod:`switchboard.safe_json`.

The requests go through :func:`switchboard.edge.receive` with in-memory ports, so "nothing enqueued"
is checked on the one object the edge hands envelopes to.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from switchboard import channels, edge
from switchboard.channels.base import ChannelAdapter, require_secret
from switchboard.channels.facebook import FacebookAdapter, build_message, sign_sha1, sign_sha256
from switchboard.channels.gbm import GbmAdapter
from switchboard.channels.gbm import build_message as build_gbm_message
from switchboard.channels.gbm import sign as sign_gbm
from switchboard.channels.instagram import InstagramAdapter
from switchboard.channels.instagram import build_message as build_instagram_message
from switchboard.channels.line import LineAdapter
from switchboard.channels.line import sign as sign_line
from switchboard.channels.whatsapp import WhatsAppAdapter
from switchboard.channels.whatsapp import build_message as build_whatsapp_message
from switchboard.edge import EdgeDeps
from switchboard.envelope import Envelope
from switchboard.errors import Forbidden, HttpError, Unauthorized
from switchboard.secret_names import secret_name
from switchboard.settings import Account, AuthSetting, CrmSettings, Widget, Workstream
from switchboard.web import WebhookRequest, WebhookResponse

PREFIX = "switchboard/refusals"
PAGE = "104123456789012"
BRAND, AGENT = "b-1", "a-1"
LINE_SECRETS = {"channel_secret": "line-secret-5a5a", "channel_access_token": "line-token-6b6b"}
FB_SECRETS = {"app_secret": "fb-app-secret-7c7c", "verify_token": "fb-verify-8d8d", "page_access_token": "fb-page-9e9e"}
GBM_SECRETS = {"client_token": "GBMCLIENTTOKEN42", "partner_key": "gbm-partner-key-0f0f"}
WA_NUMBER = "106540352242922"
IG_SECRETS = {"app_secret": "ig-app-secret-5b5b", "verify_token": "ig-verify-6c6c", "page_access_token": "ig-page-7d7d"}
IG_ACCOUNT = "17841400000000000"
WA_SECRETS = {"app_secret": "wa-app-secret-2e2e", "verify_token": "wa-verify-3f3f", "access_token": "EAAJ-wa-token-4a4a"}
# How a secret can fail to be there: absent, empty, or nothing but whitespace.
HOLLOW: list[str | None] = [None, "", " ", "\t\n"]
HOLLOW_IDS = ["missing", "empty", "space", "whitespace"]


@dataclass
class OneAccount:
    only: Account

    def account(self, account_id: str) -> Account | None:
        return self.only if account_id == self.only.id else None

    def workstream(self, workstream_id: str) -> Workstream | None:
        return None

    def widget(self, widget_id: str) -> Widget | None:
        return None

    def auth_setting(self, auth_setting_id: str) -> AuthSetting | None:
        return None

    def crm(self) -> CrmSettings:
        raise AssertionError("the edge never reads CRM settings")


@dataclass
class Secrets:
    values: dict[str, Mapping[str, Any]]

    def get(self, name: str) -> Mapping[str, Any]:
        return self.values[name]


@dataclass
class RecordingPublisher:
    published: list[Envelope] = field(default_factory=list)
    calls: int = 0

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.calls += 1
        self.published.extend(envelopes)


def line_body(text: str = "hello") -> bytes:
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": 1_700_000_000_000,
        "source": {"type": "user", "userId": "U" + "4" * 32},
        "webhookEventId": "01HQZ8REFUSAL00000000000",
        "deliveryContext": {"isRedelivery": False},
        "message": {"id": "4687895778", "type": "text", "text": text},
    }
    return json.dumps({"destination": "U" + "0" * 32, "events": [event]}).encode()


def fb_body() -> bytes:
    return build_message(PAGE, "6789012345678901", "hello", mid="m_refusal", now_ms=1_718_000_000_000)


def instagram_body() -> bytes:
    return build_instagram_message(IG_ACCOUNT, "1254459154682919", "hello", mid="m_refusal", now_ms=1_718_000_000_000)


def whatsapp_body() -> bytes:
    return build_whatsapp_message(WA_NUMBER, "16505551234", "hello", wamid="wamid.refusal", now_s=1_718_000_000)


def gbm_body() -> bytes:
    return build_gbm_message(
        "conv-1", "hello", brand_id=BRAND, agent_id=AGENT, message_id="msg-refusal", now_ms=1_718_000_000_000
    )


def account(channel: str, **options: Any) -> Account:
    base: dict[str, Any] = {
        "line": {},
        "facebook": {"page_id": PAGE},
        "gbm": {"brand_id": BRAND, "agent_id": AGENT},
        "whatsapp": {"phone_number_id": WA_NUMBER},
        "instagram": {"instagram_id": IG_ACCOUNT},
    }[channel]
    return Account(id=f"{channel}-acct", channel=channel, workstream="social", options={**base, **options})


def request(
    channel: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    query: Mapping[str, str] | None = None,
) -> WebhookRequest:
    return WebhookRequest(
        method=method,
        path=f"/webhooks/{channel}/{channel}-acct",
        path_params={"account_id": f"{channel}-acct"},
        query=dict(query or {}),
        headers={k.lower(): v for k, v in (headers or {}).items()},
        body=body,
        request_id="req-refusal",
    )


def receive(
    adapter: ChannelAdapter, req: WebhookRequest, secrets: Mapping[str, Any], **options: Any
) -> tuple[WebhookResponse, RecordingPublisher]:
    acct = account(adapter.channel, **options)
    publisher = RecordingPublisher()
    deps = EdgeDeps(
        settings=OneAccount(acct),
        secrets=Secrets({secret_name(PREFIX, "account", acct.id, acct.channel): dict(secrets)}),
        publisher=publisher,
        secrets_prefix=PREFIX,
        clock=lambda: 1_800_000_000.0,
    )
    return edge.receive(adapter, req, deps), publisher


def hollowed(secrets: Mapping[str, str], name: str, value: str | None) -> dict[str, str]:
    out = dict(secrets)
    if value is None:
        out.pop(name)
    else:
        out[name] = value
    return out


def refused_as(response: WebhookResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, response
    assert response.content_type == "application/json"
    payload: dict[str, Any] = json.loads(response.body)
    assert set(payload) == {"error", "message"}
    assert payload["error"] == code
    return payload


# -- the helper ---------------------------------------------------------------------------------------


def test_require_secret_returns_the_value_as_stored() -> None:
    assert require_secret({"k": " padded "}, "k", Unauthorized("no")) == " padded "


@pytest.mark.parametrize("value", [*HOLLOW, 0, ["x"], {"x": "y"}], ids=[*HOLLOW_IDS, "number", "list", "object"])
def test_require_secret_raises_the_given_refusal_for_anything_but_a_real_string(value: Any) -> None:
    secrets = {} if value is None else {"k": value}
    refusal = Forbidden("hub.verify_token does not match")
    with pytest.raises(Forbidden) as caught:
        require_secret(secrets, "k", refusal)
    assert caught.value is refusal


# -- item 1: an empty secret never verifies, even against a signature made with the empty key --------------
# The adapters are called directly: the edge also refuses such accounts before calling them, and these
# tests hold the adapters to it on their own (an adapter must never be the one place that accepts).


def answer(call: Callable[[], object]) -> object:
    """What the adapter answered: its refusal's response, or whatever it returned (None: verified)."""
    try:
        return call()
    except HttpError as refused:
        return refused.response()


@pytest.mark.parametrize("value", HOLLOW, ids=HOLLOW_IDS)
def test_line_with_an_empty_channel_secret_refuses_like_a_wrong_signature(value: str | None) -> None:
    adapter, body, acct = LineAdapter(), line_body(), account("line")
    secrets = hollowed(LINE_SECRETS, "channel_secret", value)
    forged = answer(
        lambda: adapter.verify(request("line", body, {"X-Line-Signature": sign_line(value or "", body)}), acct, secrets)
    )
    wrong = answer(
        lambda: adapter.verify(request("line", body, {"X-Line-Signature": sign_line("other", body)}), acct, LINE_SECRETS)
    )
    assert isinstance(wrong, WebhookResponse)
    refused_as(wrong, 401, "invalid_signature")
    assert forged == wrong


@pytest.mark.parametrize("value", HOLLOW, ids=HOLLOW_IDS)
@pytest.mark.parametrize("header", ["X-Hub-Signature-256", "X-Hub-Signature"])
def test_facebook_with_an_empty_app_secret_refuses_like_a_wrong_signature(header: str, value: str | None) -> None:
    adapter, body, acct = FacebookAdapter(), fb_body(), account("facebook", allow_sha1=True)
    secrets = hollowed(FB_SECRETS, "app_secret", value)
    signer = sign_sha256 if header == "X-Hub-Signature-256" else sign_sha1
    forged = answer(lambda: adapter.verify(request("facebook", body, {header: signer(value or "", body)}), acct, secrets))
    wrong = answer(lambda: adapter.verify(request("facebook", body, {header: signer("other", body)}), acct, FB_SECRETS))
    assert isinstance(wrong, WebhookResponse)
    refused_as(wrong, 401, "invalid_signature")
    assert forged == wrong


@pytest.mark.parametrize("value", HOLLOW, ids=HOLLOW_IDS)
def test_facebook_get_with_an_empty_verify_token_is_forbidden_for_an_empty_token(value: str | None) -> None:
    adapter, acct = FacebookAdapter(), account("facebook")
    secrets = hollowed(FB_SECRETS, "verify_token", value)
    wrong_query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "not-the-token"}
    wrong = answer(lambda: adapter.handshake(request("facebook", b"", method="GET", query=wrong_query), acct, FB_SECRETS))
    assert isinstance(wrong, WebhookResponse)
    refused_as(wrong, 403, "forbidden")
    # The parameter empty, equal to the stored blank, blank itself, or left out entirely.
    for presented in ("", value or "", " ", None):
        query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
        if presented is not None:
            query["hub.verify_token"] = presented
        forged = answer(partial(adapter.handshake, request("facebook", b"", method="GET", query=query), acct, secrets))
        assert forged == wrong, presented


@pytest.mark.parametrize("value", HOLLOW, ids=HOLLOW_IDS)
def test_gbm_handshake_with_an_empty_client_token_never_echoes_the_secret(value: str | None) -> None:
    adapter, acct = GbmAdapter(), account("gbm")
    secrets = hollowed(GBM_SECRETS, "client_token", value)
    wrong_body = json.dumps({"clientToken": "NOTTHECLIENTTOKN", "secret": "echo-me-31337"}).encode()
    wrong = answer(lambda: adapter.handshake(request("gbm", wrong_body), acct, GBM_SECRETS))
    assert isinstance(wrong, WebhookResponse)
    refused_as(wrong, 401, "invalid_client_token")
    for presented in ("", value or "", " "):
        body = json.dumps({"clientToken": presented, "secret": "echo-me-31337"}).encode()
        forged = answer(partial(adapter.handshake, request("gbm", body), acct, secrets))
        assert forged == wrong, presented


@pytest.mark.parametrize("value", HOLLOW, ids=HOLLOW_IDS)
@pytest.mark.parametrize("signing_key", ["client_token", "partner_key"])
def test_gbm_with_an_empty_signing_key_refuses_like_a_wrong_signature(signing_key: str, value: str | None) -> None:
    adapter, body, acct = GbmAdapter(), gbm_body(), account("gbm", signing_key=signing_key)
    secrets = hollowed(GBM_SECRETS, signing_key, value)
    forged = answer(
        lambda: adapter.verify(request("gbm", body, {"X-Goog-Signature": sign_gbm(value or "", body)}), acct, secrets)
    )
    wrong = answer(lambda: adapter.verify(request("gbm", body, {"X-Goog-Signature": sign_gbm("other", body)}), acct, GBM_SECRETS))
    assert isinstance(wrong, WebhookResponse)
    refused_as(wrong, 401, "invalid_signature")
    assert forged == wrong


EMPTY_KEY_FORGERIES: list[tuple[ChannelAdapter, str, Mapping[str, Any], WebhookRequest, int]] = [
    (
        LineAdapter(),
        "channel_secret",
        LINE_SECRETS,
        request("line", line_body(), {"X-Line-Signature": sign_line("", line_body())}),
        401,
    ),
    (
        FacebookAdapter(),
        "app_secret",
        FB_SECRETS,
        request("facebook", fb_body(), {"X-Hub-Signature-256": sign_sha256("", fb_body())}),
        401,
    ),
    (
        FacebookAdapter(),
        "verify_token",
        FB_SECRETS,
        request("facebook", b"", method="GET", query={"hub.mode": "subscribe", "hub.challenge": "7", "hub.verify_token": ""}),
        403,
    ),
    (
        GbmAdapter(),
        "client_token",
        GBM_SECRETS,
        request("gbm", json.dumps({"clientToken": "", "secret": "echo-me-31337"}).encode()),
        401,
    ),
    (GbmAdapter(), "client_token", GBM_SECRETS, request("gbm", gbm_body(), {"X-Goog-Signature": sign_gbm("", gbm_body())}), 401),
]


@pytest.mark.parametrize(
    ("adapter", "name", "secrets", "req", "status"),
    EMPTY_KEY_FORGERIES,
    ids=["line", "facebook-post", "facebook-get", "gbm-handshake", "gbm-post"],
)
def test_through_the_edge_an_empty_secret_is_refused_and_nothing_enqueued(
    adapter: ChannelAdapter, name: str, secrets: Mapping[str, str], req: WebhookRequest, status: int
) -> None:
    response, publisher = receive(adapter, req, hollowed(secrets, name, ""))
    assert response.status == status, response
    assert set(json.loads(response.body)) == {"error", "message"}
    assert "echo-me-31337" not in response.body
    assert publisher.calls == 0 and publisher.published == []


def test_the_same_requests_with_the_secrets_set_are_accepted() -> None:
    """The refusals above are about the hollow secret: with it set, the very same requests pass."""
    body = line_body()
    ok, publisher = receive(
        LineAdapter(), request("line", body, {"X-Line-Signature": sign_line(LINE_SECRETS["channel_secret"], body)}), LINE_SECRETS
    )
    assert ok.status == 200 and len(publisher.published) == 1
    body = fb_body()
    ok, publisher = receive(
        FacebookAdapter(),
        request("facebook", body, {"X-Hub-Signature-256": sign_sha256(FB_SECRETS["app_secret"], body)}),
        FB_SECRETS,
    )
    assert ok.status == 200 and len(publisher.published) == 1
    query = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": FB_SECRETS["verify_token"]}
    ok, _ = receive(FacebookAdapter(), request("facebook", b"", method="GET", query=query), FB_SECRETS)
    assert (ok.status, ok.body) == (200, "42")
    body = gbm_body()
    for key in ("client_token", "partner_key"):
        ok, publisher = receive(
            GbmAdapter(),
            request("gbm", body, {"X-Goog-Signature": sign_gbm(GBM_SECRETS[key], body)}),
            GBM_SECRETS,
            signing_key=key,
        )
        assert ok.status == 200 and len(publisher.published) == 1
    handshake = json.dumps({"clientToken": GBM_SECRETS["client_token"], "secret": "42"}).encode()
    ok, _ = receive(GbmAdapter(), request("gbm", handshake), GBM_SECRETS)
    assert (ok.status, ok.body) == (200, "42")


# -- item 2: bodies nested too deep ---------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_an_unsigned_deeply_nested_gbm_handshake_body_is_401_not_a_crash() -> None:
    body = ('{"clientToken":"x","secret":' + nested(2000) + "}").encode()
    assert len(body) <= 4096  # small enough to be read as a handshake
    response, publisher = receive(GbmAdapter(), request("gbm", body), GBM_SECRETS)
    refused_as(response, 401, "missing_signature")
    assert publisher.calls == 0


def deep_bodies(channel: str, depth: int) -> bytes:
    """A genuine body of the channel with one extra field nested ``depth`` levels."""
    base = {"line": line_body, "facebook": fb_body, "gbm": gbm_body, "whatsapp": whatsapp_body, "instagram": instagram_body}[
        channel
    ]()
    doc = json.loads(base)
    text = json.dumps(doc, separators=(",", ":"))
    return (text[:-1] + ',"deep":' + nested(depth) + "}").encode()


SIGNERS: dict[str, tuple[ChannelAdapter, Callable[[bytes], dict[str, str]], Mapping[str, str]]] = {
    "line": (LineAdapter(), lambda body: {"X-Line-Signature": sign_line(LINE_SECRETS["channel_secret"], body)}, LINE_SECRETS),
    "facebook": (
        FacebookAdapter(),
        lambda body: {"X-Hub-Signature-256": sign_sha256(FB_SECRETS["app_secret"], body)},
        FB_SECRETS,
    ),
    "gbm": (GbmAdapter(), lambda body: {"X-Goog-Signature": sign_gbm(GBM_SECRETS["client_token"], body)}, GBM_SECRETS),
    "whatsapp": (
        WhatsAppAdapter(),
        lambda body: {"X-Hub-Signature-256": sign_sha256(WA_SECRETS["app_secret"], body)},
        WA_SECRETS,
    ),
    "instagram": (
        InstagramAdapter(),
        lambda body: {"X-Hub-Signature-256": sign_sha256(IG_SECRETS["app_secret"], body)},
        IG_SECRETS,
    ),
}


@pytest.mark.parametrize("depth", [30, 2000, 100_000])
@pytest.mark.parametrize("channel", channels.names())  # a new channel without its signer here fails
def test_a_signed_body_nested_too_deep_is_400_and_records_nothing(channel: str, depth: int) -> None:
    adapter, signer, secrets = SIGNERS[channel]
    body = deep_bodies(channel, depth)
    response, publisher = receive(adapter, request(channel, body, signer(body)), secrets)
    payload = refused_as(response, 400, "bad_request")
    assert "nested" in payload["message"]
    assert publisher.calls == 0 and publisher.published == []


@pytest.mark.parametrize("channel", channels.names())  # a new channel without its signer here fails
def test_a_signed_body_nested_within_the_limit_is_accepted(channel: str) -> None:
    adapter, signer, secrets = SIGNERS[channel]
    body = deep_bodies(channel, 10)
    response, publisher = receive(adapter, request(channel, body, signer(body)), secrets)
    assert response.status == 200, response
    assert len(publisher.published) == 1
