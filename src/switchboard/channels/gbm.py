"""Google Business Messages webhooks (protocols.md section 3).

Google shut Business Messages down on 2024-07-31 (new conversations stopped on 2024-07-15), so no
live traffic can arrive. The adapter is still built because the product promises the channel, and
because archived deliveries (exports, recorded payloads, a previous system's dead letters) are
replayed through the same edge to fill the CRM; it has to read them exactly as Google sent them.

Google sets a webhook up with an unsigned POST of ``{clientToken, secret}`` and expects the secret
back as plain text once the client token matches. Every later delivery carries ``X-Goog-Signature``,
a base64 HMAC-SHA512 of the raw body. The two GBM documents disagree on the key (the newer says the
client token, the older and Google's own samples the partner key), so the account's ``signing_key``
chooses, defaulting to the client token.

A partner key (and a partner-level webhook's client token) signs for every agent of the partner, so
a signature proves only that Google sent the body, not to which of our accounts. The body's
``agent`` (``brands/{brand_id}/agents/{agent_id}``) must be this account's; a delivery for another
agent, or to an account that names no agent, is logged as skipped and answered 200 as Google
expects, so it cannot be replayed into another account's conversations (interface section 2: an
entry naming no such account is not recorded). Routing it to the account it does name is later work.

Kinds, by payload:

=====================================  ========  ===================================================
payload                                kind      notes
=====================================  ========  ===================================================
message, text                          text
message, text is a signed storage URL  image     users' images arrive only this way; url, no text
suggestionResponse                     postback  text = the suggestion's text, postbackData in data
userStatus.requestedLiveAgent true     event     data["requested_live_agent"] = True, for routing
userStatus otherwise (typing)          (skipped) presence noise, not something the customer said
receipts (read, delivered)             receipt   never a message: data["receipt"] names the replies
                                                 (their messageIds) and the status, and the route
                                                 stage moves their delivery forward
surveyResponse,                        event     detail in data
authenticationResponse, unknown
=====================================  ========  ===================================================

A receipt names a message as ``conversations/{conversationId}/messages/{messageId}``; the messageId
is what :meth:`GbmAdapter.send` derived from the reply and recorded as ``Sent.platform_id``, so the
receipt's ``platform_ids`` are those ids, compared as lowercase UUIDs (Google's samples write ids in
capitals). A receipt naming another conversation's message, or of a type other than READ or
DELIVERED, is skipped: it cannot be about this conversation's replies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from switchboard import outbound_http, safe_json
from switchboard.channels.base import (
    ChannelAdapter,
    Event,
    Reply,
    SendRefused,
    SendRetryable,
    Sent,
    require_secret,
    send_secret,
    stored_secret,
    transport_failure,
)
from switchboard.envelope import RECEIPT, UNSUPPORTED_TEXT, Attachment, Customer
from switchboard.errors import BadRequest, Unauthorized
from switchboard.settings import Account, account_from_dict
from switchboard.web import WebhookRequest, WebhookResponse

SIGNATURE_HEADER = "x-goog-signature"
DEFAULT_API_BASE_URL = "https://businessmessages.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/businessmessages"
SEND_LIMITS = outbound_http.Limits(deadline=10.0, max_bytes=64 * 1024)
# messageId is derived from the reply in this namespace: a retry repeats it and Google refuses the copy.
MESSAGE_ID_NAMESPACE = uuid.UUID("3b9e7c1d-2f4a-5e6b-8c7d-9a0b1c2d3e4f")
_TOKEN_MARGIN = 60  # seconds before expiry a cached token is no longer used
# (client_email, token_uri, key digest) -> (access token, when it expires): one grant per hour, not per reply.
_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}
SIGNING_KEYS = ("client_token", "partner_key")
DEFAULT_SIGNING_KEY = "client_token"
_PAYLOAD_KEYS = ("message", "suggestionResponse", "userStatus", "receipts", "surveyResponse", "authenticationResponse")
_VERIFICATION_KEYS = frozenset({"clientToken", "secret"})
# The verification body is two short strings; anything much larger is a message and is not parsed twice.
_VERIFICATION_MAX_BYTES = 4096
# receiptType -> the delivery status it moves Switchboard's reply to (channels.base.RECEIPT_STATUSES).
_RECEIPT_STATUSES = {"DELIVERED": "delivered", "READ": "read"}
# How much of a body's own value (an agent name) a skip reason repeats: log lines stay small.
_SHOWN_CHARS = 120
# The conversation `switchboard send gbm` writes in without --user (a GBM conversationId is a UUID):
# stable, so repeated sends share a conversation.
DEMO_CONVERSATION = str(uuid.uuid5(uuid.NAMESPACE_URL, "switchboard-demo-customer"))
_NON_EMPTY: dict[str, Any] = {"type": "string", "pattern": "\\S", "errorMessage": "must be a non-empty string"}
_STORAGE_URL = re.compile(r"https://storage\.googleapis\.com/\S+")
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE)


def sign(key: str, body: bytes) -> str:
    """The X-Goog-Signature value for ``body``: what Google sends, and what ``switchboard send gbm`` forges."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha512).digest()
    return base64.b64encode(digest).decode("ascii")


def signing_key_name(account: Account) -> str:
    """Which secret signs this account's deliveries.

    An unknown value is a configuration error (validation should have caught it) and raises
    ``ValueError`` rather than refusing Google, which would only retry the delivery for 7 days.
    """
    name = account.option("signing_key", DEFAULT_SIGNING_KEY) or DEFAULT_SIGNING_KEY
    if name not in SIGNING_KEYS:
        raise ValueError(f"account {account.id!r}: signing_key must be one of {', '.join(SIGNING_KEYS)}, not {name!r}")
    return str(name)


def build_message(
    conversation_id: str,
    text: str,
    *,
    brand_id: str = "BRAND_ID",
    agent_id: str = "AGENT_ID",
    display_name: str | None = None,
    locale: str = "en",
    message_id: str | None = None,
    request_id: str | None = None,
    now_ms: int | None = None,
) -> bytes:
    """A user message body shaped as Google sent them, so a forged send exercises the real parser."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    stamp = _rfc3339(now)
    message_id = message_id or str(uuid.uuid4()).upper()
    user_info: dict[str, str] = {"userDeviceLocale": locale}
    if display_name:
        user_info = {"displayName": display_name, **user_info}
    body = {
        "agent": f"brands/{brand_id}/agents/{agent_id}",
        "conversationId": conversation_id,
        "customAgentId": "",
        "requestId": request_id or str(uuid.uuid4()).upper(),
        "message": {
            "messageId": message_id,
            "name": f"conversations/{conversation_id}/messages/{message_id}",
            "text": text,
            "createTime": stamp,
        },
        "context": {
            "entryPoint": "PLACESHEET",
            "placeId": "",
            "resolvedLocale": locale.split("-", maxsplit=1)[0],
            "userInfo": user_info,
        },
        "sendTime": stamp,
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class GbmAdapter(ChannelAdapter):
    channel = "gbm"
    label = "Google Business Messages"
    medium = "chat"
    settings_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "partner_id": {"type": "string", "description": "The Business Communications partner's id, for the admin's reference."},
        "brand_id": {**_NON_EMPTY, "description": "The brand of the agent (brands/{brand_id}/agents/{agent_id})."},
        "agent_id": {**_NON_EMPTY, "description": "The agent: only deliveries whose agent is this one are recorded."},
        "api_base_url": {
            "$ref": "#/$defs/url",
            "description": "Where replies are sent (the Business Messages API); a test server may stand in.",
            "default": DEFAULT_API_BASE_URL,
        },
        "signing_key": {
            "enum": list(SIGNING_KEYS),
            "default": DEFAULT_SIGNING_KEY,
            "description": "Which secret X-Goog-Signature is checked with (the two GBM documents disagree); "
            "partner_key makes secrets.partner_key required.",
        },
    }
    # brand_id and agent_id are required: the body's agent is checked against them, and without them
    # every delivery is skipped, since one partner key signs for all of a partner's agents.
    required_settings: ClassVar[tuple[str, ...]] = ("brand_id", "agent_id")
    required_secrets: ClassVar[tuple[str, ...]] = ("client_token",)
    signature_header = "X-Goog-Signature"
    # The service account only sends replies; the partner key only matters when it signs.
    optional_secrets: ClassVar[tuple[str, ...]] = ("partner_key", "service_account_json")
    schema_rules: ClassVar[tuple[Mapping[str, Any], ...]] = (
        {
            "if": {"properties": {"signing_key": {"const": "partner_key"}}, "required": ["signing_key"]},
            "then": {"properties": {"secrets": {"required": ["partner_key"]}}},
        },
    )

    def secrets_for(self, options: Mapping[str, object]) -> tuple[str, ...]:
        """The partner key becomes required when it is the key Google's deliveries are checked with."""
        if options.get("signing_key") == "partner_key":
            return (*self.required_secrets, "partner_key")
        return self.required_secrets

    def send(self, reply: Reply, account: Account, secrets: Mapping[str, Any], http: Any) -> Sent:
        """Post ``reply`` as a HUMAN representative's message, its messageId derived from the reply.

        A retry after an unknown outcome repeats the messageId; Google answers 409 for one it has,
        which counts as sent.
        """
        account_info = _service_account(secrets)
        if not reply.text.strip():
            raise SendRefused("the reply has no text to send", code="empty_reply")
        redact = outbound_http.Redactor([account_info["private_key"]])
        token = _access_token(account_info, http, redact)
        redact.add(token)
        message_id = str(uuid.uuid5(MESSAGE_ID_NAMESPACE, reply.id))
        representative: dict[str, str] = {"representativeType": "HUMAN"}
        if reply.author:
            representative["displayName"] = reply.author
        body = {"messageId": message_id, "text": reply.text, "representative": representative}
        base = str(account.option("api_base_url") or DEFAULT_API_BASE_URL).rstrip("/")
        url = f"{base}/v1/conversations/{quote(reply.customer_id, safe='')}/messages"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            response = http.request("POST", url, limits=SEND_LIMITS, headers=headers, data=json.dumps(body).encode("utf-8"))
        except outbound_http.OutboundError as exc:
            raise transport_failure("Business Messages", exc, redact) from None
        if response.ok or response.status == 409:
            return Sent(platform_id=message_id)
        if response.status == 401:
            _TOKENS.pop(_token_key(account_info), None)  # a revoked token must not be reused by the retry
        raise _failure("Business Messages", response, redact)

    def simulated_body(self, account: Mapping[str, Any], *, text: str, user: str | None, event_id: str | None) -> bytes:
        return build_message(
            user or DEMO_CONVERSATION,
            text,
            brand_id=str(account.get("brand_id") or "BRAND_ID"),
            agent_id=str(account.get("agent_id") or "AGENT_ID"),
            message_id=event_id,
        )

    def signed_headers(self, account: Mapping[str, Any], secrets: Mapping[str, Any], body: bytes) -> dict[str, str]:
        """Signed with whichever key the account names, as its deliveries are checked."""
        key = stored_secret(secrets, signing_key_name(account_from_dict(dict(account))))
        return {"X-Goog-Signature": sign(key, body)}

    def handshake(self, request: WebhookRequest, account: Account, secrets: Mapping[str, str]) -> WebhookResponse | None:
        if request.method.upper() != "POST" or len(request.body) > _VERIFICATION_MAX_BYTES:
            return None
        if b'"clientToken"' not in request.body:
            return None  # every message would otherwise be parsed twice, here and in parse()
        try:
            body = safe_json.loads(request.body)
        except safe_json.JsonError:
            return None  # not a handshake: verify() refuses it unsigned, parse() reports it signed
        if not isinstance(body, dict) or set(body) != _VERIFICATION_KEYS:
            return None
        client_token, secret = body["clientToken"], body["secret"]
        if not isinstance(client_token, str) or not isinstance(secret, str):
            return None
        # Unsigned by design: knowing the client token is the only proof Google offers here, so an
        # account whose stored token is empty would echo anyone's secret. Refused as a wrong token.
        stored = require_secret(secrets, "client_token", _wrong_client_token())
        if not hmac.compare_digest(client_token.encode("utf-8"), stored.encode("utf-8")):
            raise _wrong_client_token()
        return WebhookResponse.text(200, secret)

    def signature(self, key: str, body: bytes, header: str) -> str:
        return sign(key, body)

    def signing_key_name(self, account: Account) -> str:
        return signing_key_name(account)

    def read(self, body: Any, account: Account, *, received_at: int) -> tuple[list[Event], list[str]]:
        if not isinstance(body, dict) or not isinstance(body.get("conversationId"), str) or not body["conversationId"]:
            raise BadRequest("body is not a Business Messages webhook: expected a 'conversationId'")
        not_ours = _not_this_agent(body.get("agent"), account)
        if not_ours:
            return [], [not_ours]
        payload_type = next((k for k in _PAYLOAD_KEYS if isinstance(body.get(k), dict)), None)
        payload: dict[str, Any] = body[payload_type] if payload_type else {}
        if payload_type == "receipts":
            return _receipts(body, payload, received_at=received_at)

        data: dict[str, Any] = {"event": payload_type or _unknown_type(body)}
        for source, target in (("agent", "agent"), ("requestId", "request_id"), ("customAgentId", "custom_agent_id")):
            if body.get(source):
                data[target] = body[source]
        context = _obj(body.get("context"))
        for source, target in (("entryPoint", "entry_point"), ("placeId", "place_id"), ("customContext", "custom_context")):
            if context.get(source):
                data[target] = context[source]
        if isinstance(context.get("widget"), dict):
            data["widget"] = context["widget"]

        kind = "event"
        text: str | None = None
        attachments: tuple[Attachment, ...] = ()
        if payload_type == "message":
            kind, text, attachments = _message(payload)
            data["message_id"] = payload.get("messageId")
            if isinstance(body.get("dialogflowResponse"), dict):
                data["dialogflow_response"] = body["dialogflowResponse"]
        elif payload_type == "suggestionResponse":
            kind = "postback"
            text = payload.get("text") if isinstance(payload.get("text"), str) else None
            data["postback_data"] = payload.get("postbackData")
            data["suggestion_type"] = payload.get("suggestionType") or payload.get("type")
            data["reply_to"] = payload.get("message")
        elif payload_type == "userStatus":
            if not _true(payload.get("requestedLiveAgent")):
                state = "typing" if _true(payload.get("isTyping")) else "not typing"
                return [], [f"userStatus ({state}) in conversation {body['conversationId']!r} makes no envelope"]
            data["requested_live_agent"] = True
        elif payload_type == "authenticationResponse":
            # The authorization code is a one-time credential: record that it came, never the code itself.
            data["authentication_response"] = {k: v for k, v in payload.items() if k != "code"} | {
                "code_received": bool(payload.get("code"))
            }
        elif payload_type is not None:
            data[_snake(payload_type)] = payload
        else:
            data["body"] = {k: v for k, v in body.items() if k not in ("context", "agent")}

        user_info = _obj(context.get("userInfo"))
        customer = Customer(
            id=body["conversationId"],
            name=user_info.get("displayName") or None,
            locale=user_info.get("userDeviceLocale") or context.get("resolvedLocale") or None,
        )
        sent_at = _parse_time(payload.get("createTime")) or _parse_time(body.get("sendTime")) or received_at
        event = Event(_event_key(body, payload_type, payload), customer, kind, text, sent_at, attachments, data)
        return [event], []


def agent_name(account: Account) -> str | None:
    """The ``agent`` Google writes in this account's deliveries, or None when the account names no agent."""
    brand, agent = account.option("brand_id"), account.option("agent_id")
    if not isinstance(brand, str) or not brand.strip() or not isinstance(agent, str) or not agent.strip():
        return None
    return f"brands/{brand}/agents/{agent}"


def _not_this_agent(agent: Any, account: Account) -> str | None:
    """Why a verified body is not this account's to record, or None when its agent is the account's."""
    expected = agent_name(account)
    if expected is None:
        return f"account {account.id!r} has no brand_id and agent_id, so no delivery can be its own"
    if agent != expected:
        shown = repr(agent)
        shown = shown if len(shown) <= _SHOWN_CHARS else shown[:_SHOWN_CHARS] + "..."
        return f"delivery for agent {shown}, not this account's agent {expected!r}"
    return None


def _receipts(body: Mapping[str, Any], payload: Mapping[str, Any], *, received_at: int) -> tuple[list[Event], list[str]]:
    """One receipt event per status the body reports, naming the messageIds it covers; never a message.

    Entries Switchboard cannot apply (another conversation's message, an unknown type, no message) are
    skipped with the reason, the others still count.
    """
    conversation_id = str(body["conversationId"])
    items = payload.get("receipts")
    if not isinstance(items, list) or not items:
        return [], [f"receipts in conversation {conversation_id!r} list no receipt"]
    ids: dict[str, list[str]] = {}
    skipped: list[str] = []
    for index, item in enumerate(items):
        where = f"receipts.receipts[{index}]"
        fields = _obj(item)
        receipt_type = fields.get("receiptType")
        status = _RECEIPT_STATUSES.get(receipt_type) if isinstance(receipt_type, str) else None
        if status is None:
            skipped.append(f"{where} is a {str(receipt_type)[:40]!r} receipt, not READ or DELIVERED")
            continue
        message_id = _receipt_message_id(fields.get("message"), conversation_id)
        if message_id is None:
            shown = repr(fields.get("message"))[:_SHOWN_CHARS]
            skipped.append(f"{where} names no message of conversation {conversation_id!r} ({shown})")
            continue
        ids.setdefault(status, [])
        if message_id not in ids[status]:
            ids[status].append(message_id)
    if not ids:
        return [], skipped
    base_key = str(body["requestId"]) if body.get("requestId") else _body_digest(body)
    sent_at = _parse_time(payload.get("createTime")) or _parse_time(body.get("sendTime")) or received_at
    events = [
        Event(
            key=f"receipt:{base_key}:{status}",
            customer=Customer(id=conversation_id),
            kind=RECEIPT,
            text=None,
            sent_at=sent_at,
            data={"receipt": {"status": status, "platform_ids": platform_ids}},
        )
        for status, platform_ids in ids.items()
    ]
    return events, skipped


def _receipt_message_id(name: Any, conversation_id: str) -> str | None:
    """The messageId in ``conversations/{conversationId}/messages/{messageId}``, as :meth:`GbmAdapter.send` records it.

    A bare id is taken as it is; a name under another conversation gives None. A UUID is written the
    way ``str(uuid.UUID(...))`` writes it, lowercase, so Google's capitals still match the sent id.
    """
    if not isinstance(name, str) or not name.strip():
        return None
    text = name.strip()
    prefix, marker, message_id = text.rpartition("/messages/")
    if marker:
        if prefix != f"conversations/{conversation_id}" or not message_id or "/" in message_id:
            return None
    elif "/" in text:
        return None
    else:
        message_id = text
    try:
        return str(uuid.UUID(message_id))
    except ValueError:
        return message_id


def _wrong_client_token() -> Unauthorized:
    return Unauthorized("clientToken does not match this account's client token", code="invalid_client_token")


def _message(message: Mapping[str, Any]) -> tuple[str, str | None, tuple[Attachment, ...]]:
    text = message.get("text") if isinstance(message.get("text"), str) else None
    # Users' images reach the agent only as a signed Cloud Storage URL standing alone in the text.
    if text and _STORAGE_URL.fullmatch(text.strip()):
        return "image", None, (Attachment(type="image", url=text.strip()),)
    if not text:
        return "unsupported", UNSUPPORTED_TEXT, ()
    return "text", text, ()


def _event_key(body: Mapping[str, Any], payload_type: str | None, payload: Mapping[str, Any]) -> str:
    """Google retries for 7 days; messageId, then requestId, then the body itself identify a redelivery."""
    if payload_type == "message" and payload.get("messageId"):
        return str(payload["messageId"])
    if body.get("requestId"):
        return str(body["requestId"])
    return _body_digest(body)


def _body_digest(body: Mapping[str, Any]) -> str:
    return "sha256-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _true(value: Any) -> bool:
    # The recorded samples hold placeholders ("BOOLEAN"); only a real true, or the string "true", counts.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _unknown_type(body: Mapping[str, Any]) -> str:
    known = {"agent", "conversationId", "customAgentId", "requestId", "sendTime", "context", "dialogflowResponse"}
    return next((k for k in body if k not in known), "unknown")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _parse_time(value: Any) -> int | None:
    """RFC3339 with up to nanosecond fractions, as Google writes it; placeholders give None."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.fullmatch(value.strip())
    if not match:
        return None
    whole, fraction, offset = match.groups()
    zone = "+00:00" if offset.upper() == "Z" else offset
    try:
        moment = datetime.fromisoformat(whole + zone)
    except ValueError:
        return None
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return int(moment.timestamp()) * 1000 + millis


def _rfc3339(millis: int) -> str:
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}000Z"


# -- sending --------------------------------------------------------------------------------------


def _service_account(secrets: Mapping[str, Any]) -> dict[str, str]:
    """The service account's fields a grant needs, or not_configured naming what is missing (never a value)."""
    raw = secrets.get("service_account_json")
    if isinstance(raw, str):
        raw = send_secret(secrets, "service_account_json")
        try:
            raw = safe_json.loads(raw)
        except safe_json.JsonError:
            raise SendRefused("the service_account_json secret is not JSON", code="not_configured") from None
    if not isinstance(raw, dict):
        raise SendRefused("the account has no usable service_account_json secret", code="not_configured")
    fields = {}
    for name in ("client_email", "private_key", "token_uri"):
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise SendRefused(f"the service_account_json secret has no {name}", code="not_configured")
        fields[name] = value
    return fields


def _token_key(account_info: Mapping[str, str]) -> tuple[str, str, str]:
    """The token cache's key: the account, where it gets tokens, and its key's digest (a rotated key gets a new token)."""
    return (
        account_info["client_email"],
        account_info["token_uri"],
        hashlib.sha256(account_info["private_key"].encode()).hexdigest(),
    )


def _access_token(account_info: Mapping[str, str], http: Any, redact: outbound_http.Redactor) -> str:
    """A bearer token from the JWT-bearer grant (RS256), cached until shortly before it expires."""
    key = (
        account_info["client_email"],
        account_info["token_uri"],
        hashlib.sha256(account_info["private_key"].encode()).hexdigest(),
    )
    now = time.time()
    cached = _TOKENS.get(key)
    if cached is not None and cached[1] - _TOKEN_MARGIN > now:
        return cached[0]
    import jwt  # lazy: only a GBM reply pays for it

    claims = {
        "iss": account_info["client_email"],
        "scope": SCOPE,
        "aud": account_info["token_uri"],
        "iat": int(now),
        "exp": int(now) + 3600,
    }
    try:
        assertion = jwt.encode(claims, account_info["private_key"], algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        raise SendRefused("the service_account_json secret's private_key cannot sign", code="not_configured") from None
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    try:
        response = http.request("POST", account_info["token_uri"], limits=SEND_LIMITS, data=form)
    except outbound_http.OutboundError as exc:
        raise transport_failure("the Google token endpoint", exc, redact) from None
    if not response.ok:
        raise _failure("the Google token endpoint", response, redact, refused="not_authorized")
    try:
        body = response.json()
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise SendRetryable("the Google token endpoint answered without an access_token")
    lifetime = body.get("expires_in") if isinstance(body, dict) else None
    _TOKENS[key] = (token, now + (lifetime if isinstance(lifetime, int | float) else 3600))
    return token


def _failure(
    platform: str, response: outbound_http.Response, redact: outbound_http.Redactor, *, refused: str = "refused"
) -> Exception:
    """Google's error (its message shortened), retryable for a 5xx, 408 or 429, else a refusal."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("status") or response.reason)
    else:
        message = str(error or response.reason or "no message")
    reason = redact(f"{platform} answered HTTP {response.status}: {message[:300]}")
    failure = outbound_http.classify_status(response.status, response.headers)
    if failure is not None and failure.retryable:
        return SendRetryable(reason, retry_after=failure.retry_after)
    if response.status in (401, 403):
        return SendRefused(reason, code="not_authorized")
    return SendRefused(reason, code=refused)
