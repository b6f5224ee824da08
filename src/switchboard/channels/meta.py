"""What Meta's three messaging products share: Messenger, Instagram Messaging and the WhatsApp Cloud API.

All three come through Meta's webhooks in the same way (protocols.md sections 2 and 9): a GET
handshake that proves only that the caller knows the verify token we chose (``hub.mode``,
``hub.verify_token``, ``hub.challenge``), and POSTs signed over the raw body with the app secret in
``X-Hub-Signature-256`` (the legacy SHA-1 ``X-Hub-Signature`` only for accounts with
``allow_sha1``). Replies go through the Graph API, whose errors say more in their ``code`` and
``error_subcode`` than in the HTTP status. So that code lives here once, in :class:`MetaAdapter`.

**One app, several accounts** (interface section 2). Meta sends the events of every page, number
or Instagram account of one app to the app's one callback URL, so a verified body may hold entries
for accounts other than the one whose URL received it. :meth:`MetaAdapter.parse_shared` records each
entry under the account it names, which the edge resolves (:mod:`switchboard.edge`) among the
channel's configured accounts that verify with the same app secret; an entry for no such account is
left out and logged, and the answer stays 200 so Meta keeps the webhook on.

A subclass (one channel) provides:

- ``channel``, ``label``, ``medium`` and ``settings_schema`` as every channel does; the schema
  should include :data:`ALLOW_SHA1_SETTING` and :func:`graph_base_url_setting` and its own
  :attr:`MetaAdapter.account_key` setting;
- :attr:`MetaAdapter.object_name`: the body's ``object`` (``page`` for Messenger);
- :attr:`MetaAdapter.account_key`: the account setting naming the entries that are the account's
  (Messenger's ``page_id``), and :attr:`MetaAdapter.account_noun`, what it names (``page``);
  :meth:`MetaAdapter.parts` when an entry's account is not its ``id`` (one part per ``changes[]``
  item, named by its metadata, for instance);
- :meth:`MetaAdapter.read_part`: the customer events of one part (an entry, by default), and why
  items were left out;
- :meth:`~switchboard.channels.base.ChannelAdapter.simulated_body` for ``switchboard send``
  (:meth:`MetaAdapter.signed_headers` signs it as Meta does);
- and, for replies, ``send`` (the Send API's :meth:`MetaAdapter.send_api` for Messenger-style
  channels; :meth:`MetaAdapter.graph_post` and :meth:`MetaAdapter.send_failure` for others).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from switchboard import outbound_http, safe_json
from switchboard.channels.base import (
    ChannelAdapter,
    Event,
    ParseResult,
    Reply,
    SendRefused,
    SendRetryable,
    Sent,
    require_secret,
    send_secret,
    stored_secret,
    transport_failure,
)
from switchboard.envelope import Envelope
from switchboard.errors import BadRequest, Forbidden, Unauthorized
from switchboard.settings import Account
from switchboard.web import WebhookRequest, WebhookResponse

SIGNATURE_HEADER = "x-hub-signature-256"
LEGACY_SIGNATURE_HEADER = "x-hub-signature"
EVENT_RECEIVED = "EVENT_RECEIVED"
DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com"
# The Graph API version sends and versioned look-ups use (their URLs carry one).
GRAPH_VERSION = "v19.0"
SEND_LIMITS = outbound_http.Limits(deadline=10.0, max_bytes=64 * 1024)
_SHOWN_REASON = 300
# The Messenger Platform's windows (Messenger and Instagram), counted from the customer's last message
# (protocols.md 8.2): a RESPONSE within 24 h, a HUMAN_AGENT-tagged message up to 7 days.
RESPONSE_WINDOW_MS = 24 * 3600 * 1000
HUMAN_AGENT_WINDOW_MS = 7 * 24 * 3600 * 1000
# The Send API's attachment types, by an agent's file's generic kind.
SEND_API_FILE_KINDS: frozenset[str] = frozenset({"image", "video", "audio", "file"})
# Below this a timestamp is in seconds (the dashboard's "Test" samples send seconds as strings).
_MS_THRESHOLD = 100_000_000_000

ALLOW_SHA1_SETTING: dict[str, Any] = {
    "type": "boolean",
    "default": False,
    "description": "Also accept the legacy SHA-1 X-Hub-Signature when X-Hub-Signature-256 is absent.",
}


def messaging_items(
    part: Mapping[str, Any], where: str, skipped: list[str], *, changes: str, owner: str
) -> Iterator[tuple[dict[str, Any], str, bool]]:
    """The Messenger Platform items of one entry (Messenger's and Instagram's ``messaging`` and ``standby``
    streams): (item, where it is, whether it came on standby). What cannot be the customer's is noted in
    ``skipped`` instead: malformed streams and items, and echoes of the ``owner``'s own messages. ``changes``
    says what an entry's ``changes`` hold on this product (they are another webhook field, never messages).
    """
    if "changes" in part:
        skipped.append(f"{where} holds 'changes'{changes}, not 'messaging' items")
    for stream in ("messaging", "standby"):
        items = part.get(stream)
        if items is None:
            continue
        if not isinstance(items, list):
            skipped.append(f"{where}.{stream} is not an array")
            continue
        for index, item in enumerate(items):
            item_where = f"{where}.{stream}[{index}]"
            if not isinstance(item, dict):
                skipped.append(f"{item_where} is not an object")
                continue
            message = item.get("message")
            if isinstance(message, dict) and message.get("is_echo"):
                skipped.append(f"{item_where} is an echo of the {owner}'s own message {message.get('mid')!r}")
                continue
            yield item, item_where, stream == "standby"


def graph_base_url_setting(used_for: str) -> dict[str, Any]:
    """The ``graph_base_url`` setting's schema; ``used_for`` says what the channel calls the Graph API for."""
    return {"$ref": "#/$defs/url", "description": f"Where {used_for} (the Graph API).", "default": DEFAULT_GRAPH_BASE_URL}


def sign_sha256(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value for ``body``: what Meta sends, and what ``switchboard send`` forges."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sign_sha1(app_secret: str, body: bytes) -> str:
    """The legacy X-Hub-Signature value, for accounts (and tests) that still rely on it."""
    return "sha1=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


def appsecret_proof(app_secret: str, token: str) -> str:
    """HMAC-SHA256 of the access token keyed with the app secret: with the app's "Require App Secret"
    on, Graph refuses calls without it, so a leaked token alone is not enough."""
    return hmac.new(app_secret.encode("utf-8"), token.encode("utf-8"), hashlib.sha256).hexdigest()


def graph_base(account: Account) -> str:
    """The account's Graph API base URL, without a trailing slash."""
    return str(account.option("graph_base_url") or DEFAULT_GRAPH_BASE_URL).rstrip("/")


def millis(value: Any) -> int | None:
    """A Meta timestamp as milliseconds (it sends ms, its samples seconds, sometimes as strings); None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and value > 0:
        number = int(value)
        return number * 1000 if number < _MS_THRESHOLD else number
    return None


def messaging_window(last_customer_message_at: int | None, now_ms: int, platform: str = "Messenger") -> dict[str, str]:
    """The Send API fields for a reply now: ``RESPONSE`` within 24 h, ``HUMAN_AGENT`` up to 7 days, else refused."""
    if last_customer_message_at is None:
        raise SendRefused(
            "the customer's last message time is unknown, so no messaging window is open", code="outside_messaging_window"
        )
    age = now_ms - last_customer_message_at
    if age <= RESPONSE_WINDOW_MS:
        return {"messaging_type": "RESPONSE"}
    if age <= HUMAN_AGENT_WINDOW_MS:
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    raise SendRefused(
        f"the customer last wrote more than 7 days ago: {platform}'s window is closed", code="outside_messaging_window"
    )


def wrong_verify_token() -> Forbidden:
    return Forbidden("hub.verify_token does not match this account's verify token")


@dataclass(frozen=True)
class GraphError:
    """What a Graph API error answer says: ``error.code``, ``error.error_subcode`` and a reason safe to show."""

    status: int
    code: Any
    subcode: Any
    reason: str  # "<platform> answered HTTP <status>: <message>", credentials redacted


def graph_error(platform: str, response: outbound_http.Response, redact: outbound_http.Redactor) -> GraphError:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or response.reason or "no message")[:_SHOWN_REASON]
    reason = redact(f"{platform} answered HTTP {response.status}: {message}")
    return GraphError(status=response.status, code=error.get("code"), subcode=error.get("error_subcode"), reason=reason)


# An account that an entry of a shared webhook names, or None when no configured account sharing the
# receiving account's app secret has that key (the edge resolves it: switchboard.edge).
AccountLookup = Callable[[str], "Account | None"]


class MetaAdapter(ChannelAdapter):
    """A channel that comes through Meta's webhooks (see the module's docstring for what a subclass provides)."""

    signature_header = "X-Hub-Signature-256"
    signing_key = "app_secret"
    # The body's "object" for this product ("page" for Messenger).
    object_name: ClassVar[str]
    # The account setting that names the entries that are this account's ("page_id" for Messenger),
    # and what log lines call the thing it names ("page").
    account_key: ClassVar[str]
    account_noun: ClassVar[str]
    # How errors and logs name the platform ("Messenger").
    platform_name: ClassVar[str]
    # Graph error codes of a send: the page's rate limits (retry later), the user or page will not take
    # it, and the subcodes of a closed messaging window (Messenger Platform error reference).
    rate_limit_codes: ClassVar[frozenset[int]] = frozenset({4, 17, 32, 613})
    blocked_codes: ClassVar[frozenset[int]] = frozenset({551})
    not_permitted_codes: ClassVar[frozenset[int]] = frozenset({10, 200, 190})
    window_subcodes: ClassVar[frozenset[int]] = frozenset({2018278, 2018108})

    # -- proving Meta sent it ------------------------------------------------------------------------

    def handshake(self, request: WebhookRequest, account: Account, secrets: Mapping[str, str]) -> WebhookResponse | None:
        if request.method.upper() != "GET":
            return None
        if request.query.get("hub.mode") != "subscribe":
            raise Forbidden("hub.mode must be 'subscribe'")
        received = request.query.get("hub.verify_token") or ""
        # An empty stored token would match an empty hub.verify_token: refuse as for a wrong one.
        verify_token = require_secret(secrets, "verify_token", wrong_verify_token())
        # The token is a secret the admin chose: compare in constant time and never repeat it back.
        if not hmac.compare_digest(received.encode("utf-8"), verify_token.encode("utf-8")):
            raise wrong_verify_token()
        challenge = request.query.get("hub.challenge")
        if not challenge:
            raise Forbidden("hub.challenge is missing")
        return WebhookResponse.text(200, challenge)

    def verify(self, request: WebhookRequest, account: Account, secrets: Mapping[str, str]) -> None:
        """The base's policy, with Meta's legacy SHA-1 header as a fallback for accounts that allow it."""
        if request.header(SIGNATURE_HEADER):
            # A present but wrong SHA-256 signature is refused even if a SHA-1 one would pass.
            super().verify(request, account, secrets)
            return
        legacy = request.header(LEGACY_SIGNATURE_HEADER)
        if not legacy:
            raise Unauthorized("missing X-Hub-Signature-256 header", code="missing_signature")
        if account.option("allow_sha1") is not True:
            raise Unauthorized("X-Hub-Signature-256 is required: this account does not accept SHA-1 signatures")
        self.check_signature(legacy, "X-Hub-Signature", self.signing_key, request.body, secrets)

    def signature(self, key: str, body: bytes, header: str) -> str:
        return sign_sha1(key, body) if header == "X-Hub-Signature" else sign_sha256(key, body)

    def presented(self, received: str) -> str:
        return received.strip().lower()  # Meta sends lower-case hex: normalise case only

    def signed_headers(self, account: Mapping[str, Any], secrets: Mapping[str, Any], body: bytes) -> dict[str, str]:
        """Both signatures, as Meta still sends them."""
        app_secret = stored_secret(secrets, "app_secret")
        return {"X-Hub-Signature-256": sign_sha256(app_secret, body), "X-Hub-Signature": sign_sha1(app_secret, body)}

    def accepted(self, result: ParseResult) -> WebhookResponse:
        return WebhookResponse.text(200, EVENT_RECEIVED)

    # -- reading: entries, each under the account it names -------------------------------------------

    def entries(self, body: Any) -> list[Any]:
        """The body's ``entry`` array, once ``object`` says it is this product's; else :class:`BadRequest`."""
        if not isinstance(body, dict) or body.get("object") != self.object_name:
            raise BadRequest(f"body is not a {self.label} webhook: expected 'object' to be {self.object_name!r}")
        entries = body.get("entry")
        if not isinstance(entries, list):
            raise BadRequest(f"body is not a {self.label} webhook: expected an 'entry' array")
        return entries

    def parts(self, entries: list[Any]) -> Iterator[tuple[str, Any, str | None]]:
        """(where, part, account key) for each unit of the body that belongs to one account.

        By default the unit is the entry, named by its ``id``; a part that is not an object is yielded
        with key None and :meth:`read_part` never sees it.
        """
        for index, entry in enumerate(entries):
            key = entry.get("id") if isinstance(entry, dict) else None
            yield f"entry[{index}]", entry, (str(key) if key is not None and not isinstance(key, dict | list) else None)

    def read_part(self, part: dict[str, Any], where: str, *, received_at: int) -> tuple[list[Event], list[str]]:
        """The customer events in one part, and why any of its items were left out."""
        raise NotImplementedError(f"{self.channel} provides no reader for its entries")

    def read(self, body: Any, account: Account, *, received_at: int) -> tuple[list[Event], list[str]]:
        """The events of the parts that are this account's alone: what a body means to one account."""
        own = _own_key(self, account)
        events: list[Event] = []
        skipped: list[str] = []
        for where, part, key in self.parts(self.entries(body)):
            if not isinstance(part, dict):
                skipped.append(f"{where} is not an object")
                continue
            if own is None or key != own:
                skipped.append(f"{where} is for {self.account_noun} {key!r}, not this account's {self.account_noun} {own!r}")
                continue
            found, left_out = self.read_part(part, where, received_at=received_at)
            events.extend(found)
            skipped.extend(left_out)
        return events, skipped

    def parse_shared(
        self, request: WebhookRequest, account: Account, *, accounts: AccountLookup, received_at: int, correlation_id: str
    ) -> ParseResult:
        """As :meth:`parse`, with each part's events recorded under the account it names.

        ``accounts`` resolves a part's key to its account (the edge answers only for enabled accounts of
        this channel that verify with the receiving account's app secret); a part it resolves to none
        is left out with the reason, for the log. The receiving account's own parts need no look-up.
        """
        try:
            body = safe_json.loads(request.body)
        except safe_json.JsonError as exc:
            raise BadRequest(f"body is not usable JSON: {exc}") from None
        own = _own_key(self, account)
        envelopes: list[Envelope] = []
        skipped: list[str] = []
        for where, part, key in self.parts(self.entries(body)):
            if not isinstance(part, dict):
                skipped.append(f"{where} is not an object")
                continue
            owner = account if own is not None and key == own else (accounts(key) if key else None)
            if owner is None:
                skipped.append(f"{where} is for {self.account_noun} {key!r}, which no account sharing this app secret has")
                continue
            found, left_out = self.read_part(part, where, received_at=received_at)
            skipped.extend(left_out)
            envelopes.extend(
                self.envelope(event, owner, received_at=received_at, correlation_id=correlation_id) for event in found
            )
        return ParseResult(envelopes, skipped)

    # -- sending through the Graph API ----------------------------------------------------------------

    def graph_post(
        self, http: Any, url: str, body: Mapping[str, Any], *, params: Mapping[str, str], redact: outbound_http.Redactor
    ) -> outbound_http.Response:
        """POST ``body`` as JSON to Graph; a call that got no answer raises (retryable when another may)."""
        try:
            response: outbound_http.Response = http.request(
                "POST",
                url,
                limits=SEND_LIMITS,
                headers={"Content-Type": "application/json"},
                params=dict(params),
                data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            )
        except outbound_http.OutboundError as exc:
            raise transport_failure(self.platform_name, exc, redact) from None
        return response

    def send_api(self, account: Account, secrets: Mapping[str, Any], http: Any, body: Mapping[str, Any]) -> Sent:
        """One message through the Send API (``POST {graph}/<version>/me/messages``) with the page access token.

        ``appsecret_proof`` goes along when the account holds its app secret. Graph's message id, or
        the failure as :meth:`send_failure` classifies it.
        """
        token = send_secret(secrets, "page_access_token")
        params = {"access_token": token}
        app_secret = secrets.get("app_secret")
        if isinstance(app_secret, str) and app_secret:
            params["appsecret_proof"] = appsecret_proof(app_secret, token)
        redact = outbound_http.Redactor([token, *([app_secret] if isinstance(app_secret, str) and app_secret else [])])
        response = self.graph_post(http, f"{graph_base(account)}/{GRAPH_VERSION}/me/messages", body, params=params, redact=redact)
        if response.ok:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            mid = answer.get("message_id") if isinstance(answer, dict) else None
            return Sent(platform_id=mid if isinstance(mid, str) else None)
        raise self.send_failure(graph_error(self.platform_name, response, redact), response)

    def send_messenger(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        """A reply through the Messenger Platform's Send API (Messenger, Instagram): the text, then each file.

        ``RESPONSE`` within 24 h of the customer's last message, tagged ``HUMAN_AGENT`` up to 7 days;
        later (or when nobody knows when the customer last wrote) nothing is sent: Graph would refuse,
        and asking costs the page's rate limit. Each file is its own message, after the text and in
        order, as ``attachment: {type, payload: {url, is_reusable: false}}`` (the URL is short-lived
        and ours: Meta fetches it once). The Send API has no idempotency key; the caller records the
        attempt before calling, so only a retry after an unknown outcome can double a message.

        Once something went, a file the platform does not take is named in :attr:`Sent.unsent_files`
        with its reason rather than failing the reply: a retry would send again what went. Until then
        a failure is the reply's (a files-only reply none of whose files went is refused).
        """
        send_secret(secrets, "page_access_token")
        if not reply.text.strip() and not reply.files:
            raise SendRefused("the reply has no text to send", code="empty_reply")
        frame: dict[str, Any] = {"recipient": {"id": reply.customer_id}}
        frame.update(messaging_window(reply.last_customer_message_at, int(time.time() * 1000), self.platform_name))
        platform_id: str | None = None
        went = False
        if reply.text.strip():
            platform_id = self.send_api(account, secrets, http, {**frame, "message": {"text": reply.text}}).platform_id
            went = True
        unsent: list[tuple[str, str]] = []
        for out in reply.files:
            kind = out.kind if out.kind in SEND_API_FILE_KINDS else "file"
            attachment = {"type": kind, "payload": {"url": out.url, "is_reusable": False}}
            try:
                sent = self.send_api(account, secrets, http, {**frame, "message": {"attachment": attachment}})
            except (SendRefused, SendRetryable) as exc:
                if not went and (isinstance(exc, SendRetryable) or _about_the_reply(exc)):
                    raise  # nothing went yet: the reply's own failure, retried or final as a whole
                unsent.append((out.name, str(exc)))
                continue
            went = True
            platform_id = platform_id or sent.platform_id
        if not went:
            raise SendRefused(f"{self.platform_name} took none of the reply's files: {unsent[0][1]}", code="refused")
        return Sent(platform_id=platform_id, unsent_files=tuple(unsent))

    def send_failure(self, error: GraphError, response: outbound_http.Response) -> Exception:
        """The failure a Graph error answer is, by its code (its HTTP status says little: most are 400)."""
        if error.subcode in self.window_subcodes:
            return SendRefused(error.reason, code="outside_messaging_window")
        if error.code in self.rate_limit_codes:
            return SendRetryable(error.reason, retry_after=outbound_http.parse_retry_after(response.headers.get("Retry-After")))
        failure = outbound_http.classify_status(response.status, response.headers)
        if failure is not None and failure.retryable:
            return SendRetryable(error.reason, retry_after=failure.retry_after)
        if error.code in self.blocked_codes:
            return SendRefused(error.reason, code="blocked")
        if error.code in self.not_permitted_codes:
            return SendRefused(error.reason, code="not_permitted")
        return SendRefused(error.reason, code="refused")


def _own_key(adapter: MetaAdapter, account: Account) -> str | None:
    value = account.option(adapter.account_key)
    return str(value) if value is not None and str(value) else None


def _about_the_reply(exc: SendRefused | SendRetryable) -> bool:
    """A refusal that is the conversation's, not the file's: no file would go either (window, block, token)."""
    return isinstance(exc, SendRefused) and exc.code in {"outside_messaging_window", "blocked", "not_permitted", "not_configured"}
