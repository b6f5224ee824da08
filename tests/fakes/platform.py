"""The messaging platforms' APIs and file URLs, played by one local server for attachment and name tests.

One plain ``http.server`` on 127.0.0.1, port 0, in a thread. Accounts point their base URLs at it
(``api_base_url``, ``data_base_url``, ``graph_base_url``), so it answers, as the platforms do:

* LINE content: ``GET /v2/bot/message/{messageId}/content`` with ``Authorization: Bearer {channel
  access token}``, answering the bytes registered with :meth:`FakePlatform.line_content`;
* LINE profile: ``GET /v2/bot/profile/{userId}`` (same token) answering ``{displayName, userId}``;
* Facebook's User Profile API: ``GET /{psid}?fields=first_name,last_name&access_token=...&appsecret_proof=...``,
  which checks the page token and, when the app secret is known, the proof (HMAC-SHA256 of the
  token keyed with the app secret), answering Graph's error JSON otherwise;
* plain file URLs (``/files/...``), standing in for Facebook's CDN, GBM's storage and LINE's
  external content providers;
* the three send APIs replies go through (protocols.md section 8), each keeping what it accepted
  (:meth:`FakePlatform.line_pushes`, :meth:`FakePlatform.messenger_sent`, :meth:`FakePlatform.gbm_sent`):

  - LINE push ``POST /v2/bot/message/push``: the bearer token, ``to`` a user/group/room id, 1-5
    messages (text of at most 5,000 characters); an ``X-Line-Retry-Key`` seen before answers 409 with
    ``x-line-accepted-request-id`` and records nothing; past :meth:`FakePlatform.line_monthly_limit`
    pushes, 429 "You have reached your monthly limit."; image, video and audio messages need the fields
    LINE's reference requires (HTTPS URLs of at most 2,000 characters, a video's preview, an audio's
    duration), else 400 naming the property;
  - Messenger ``POST /{version}/me/messages?access_token=...``: the page token (and proof), a PSID
    the customer wrote from (:meth:`FakePlatform.messenger_customer`), ``RESPONSE`` within 24 h of
    the customer's last message and ``MESSAGE_TAG``/``HUMAN_AGENT`` within 7 days by the fake's
    settable clock (:attr:`FakePlatform.now_ms`), else Graph's error 10 / 2018278; a blocked PSID
    answers error 551; a file message (``attachment: {type, payload: {url}}``) whose URL Meta
    cannot fetch (:meth:`FakePlatform.messenger_refuse_file`) answers error 100 / 2018047. Instagram
    sends the same way; its profiles (:meth:`FakePlatform.instagram_profile`) answer under a version;
  - GBM ``POST /token`` (a JWT-bearer grant signed by :meth:`FakePlatform.gbm_service_account`'s
    key) and ``POST /v1/conversations/{id}/messages`` with that token; a repeated ``messageId``
    answers 409 ALREADY_EXISTS and records nothing.
  - WhatsApp ``POST /{version}/{phone_number_id}/messages`` with ``Authorization: Bearer`` the
    number's access token (:meth:`FakePlatform.whatsapp_number`): ``messaging_product: whatsapp``,
    ``to`` a wa_id that wrote to the number (:meth:`FakePlatform.whatsapp_customer`; others answer
    error 131026, which the real API reports later in a failed status), free-form types within 24 h
    of the customer's last message by :attr:`FakePlatform.now_ms`, else error 131047
    "Re-engagement message"; templates at any time. Kept in :meth:`FakePlatform.whatsapp_sent`.

* WhatsApp media by id (:meth:`FakePlatform.whatsapp_media`): ``GET /{version}/{media_id}`` with the
  bearer token answers the media node (``url``, ``mime_type``, ``sha256``, ``file_size``, ``id``),
  and that ``url`` (``/whatsapp-media/...``, standing in for lookaside.fbsbx.com) answers the bytes,
  again only with the token.

Any path can be made to fail a number of times (:meth:`FakePlatform.fail`), before it does anything
or (``after=True``) after it accepted the request: an answer lost on the way back. Every request is
recorded (method, path, query, headers, body) so tests can check what Switchboard asked, and how often.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

LINE_MONTHLY_LIMIT_MESSAGE = "You have reached your monthly limit."
_LINE_TO = re.compile(r"[UCR][0-9a-f]{32}")
_DAY_MS = 24 * 3600 * 1000
GBM_SCOPE = "https://www.googleapis.com/auth/businessmessages"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""


@dataclass(frozen=True)
class LinePush:
    """A push LINE accepted: once per retry key, however often it was sent."""

    to: str
    messages: list[dict[str, Any]]
    retry_key: str | None
    request_id: str


@dataclass(frozen=True)
class MessengerSent:
    psid: str
    text: str | None
    messaging_type: str
    tag: str | None
    message_id: str
    attachment: dict[str, Any] | None = None  # a file message's {type, payload: {url, is_reusable}}


@dataclass(frozen=True)
class GbmSent:
    conversation_id: str
    message_id: str
    text: str | None
    representative: dict[str, Any]


@dataclass(frozen=True)
class WhatsAppSent:
    phone_number_id: str
    to: str
    type: str
    message: dict[str, Any]  # the whole request body
    wamid: str


@dataclass(frozen=True)
class _Failure:
    status: int
    body: bytes
    headers: dict[str, str]
    after: bool


@dataclass
class _State:
    line_tokens: set[str] = field(default_factory=set)
    page_tokens: dict[str, str | None] = field(default_factory=dict)  # page token -> app secret (None: proof not checked)
    content: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (body, content type)
    undeclared: set[str] = field(default_factory=set)  # paths answered without Content-Length
    line_profiles: dict[str, str] = field(default_factory=dict)  # userId -> displayName
    graph_profiles: dict[str, dict[str, str]] = field(default_factory=dict)  # psid -> fields
    failures: dict[str, list[_Failure]] = field(default_factory=dict)  # path -> answers still to give
    requests: list[Recorded] = field(default_factory=list)
    line_pushes: list[LinePush] = field(default_factory=list)
    line_retry_keys: dict[str, str] = field(default_factory=dict)  # retry key -> the accepted request's id
    line_monthly_limit: int | None = None
    messenger_last: dict[str, int] = field(default_factory=dict)  # psid -> last customer message (ms)
    messenger_blocked: set[str] = field(default_factory=set)
    messenger_sent: list[MessengerSent] = field(default_factory=list)
    messenger_refused_files: dict[str, tuple[int, int, int | None, str]] = field(default_factory=dict)  # url -> error
    gbm_keys: dict[str, Any] = field(default_factory=dict)  # client_email -> public key
    gbm_tokens: set[str] = field(default_factory=set)
    gbm_sent: list[GbmSent] = field(default_factory=list)
    wa_tokens: dict[str, str] = field(default_factory=dict)  # phone_number_id -> access token
    wa_last: dict[str, int] = field(default_factory=dict)  # wa_id -> last customer message (ms)
    wa_media: dict[str, str] = field(default_factory=dict)  # media id -> the token that may read it
    wa_sent: list[WhatsAppSent] = field(default_factory=list)
    fault_rates: dict[str, list[tuple[float, int, dict[str, str]]]] = field(
        default_factory=dict
    )  # path -> (rate, status, headers)
    faults_injected: int = 0


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (a stage crashed on purpose, a timeout) is the test's business, not
    a traceback on the load run's output; anything else still prints."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakePlatform:
    def __init__(self) -> None:
        self._state = _State()
        # The platform's clock for Messenger's windows (ms); tests move it to open or close a window.
        self.now_ms: int | None = None
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # request lines carry access tokens
                return

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-platform", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakePlatform:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- what the platforms hold ---------------------------------------------------------------------
    def line_token(self, token: str) -> None:
        with self._lock:
            self._state.line_tokens.add(token)

    def page_token(self, token: str, app_secret: str | None = None) -> None:
        with self._lock:
            self._state.page_tokens[token] = app_secret

    def line_content(self, message_id: str, body: bytes, content_type: str) -> None:
        self.file(f"/v2/bot/message/{message_id}/content", body, content_type)

    def file(self, path: str, body: bytes, content_type: str, *, declare_length: bool = True) -> str:
        """Serve ``body`` at ``path``; returns its full URL. ``declare_length=False`` streams it with no
        Content-Length (closing the connection at its end), as a server that does not say its size."""
        with self._lock:
            self._state.content[path] = (body, content_type)
            if not declare_length:
                self._state.undeclared.add(path)
        return self.url + path

    def line_profile(self, user_id: str, display_name: str) -> None:
        with self._lock:
            self._state.line_profiles[user_id] = display_name

    def graph_profile(self, psid: str, first_name: str, last_name: str) -> None:
        with self._lock:
            self._state.graph_profiles[psid] = {"first_name": first_name, "last_name": last_name, "id": psid}

    def fail(
        self,
        path: str,
        status: int = 500,
        times: int = 1,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        after: bool = False,
    ) -> None:
        """Answer ``path`` with ``status`` (and ``body``, ``headers``) for the next ``times`` requests.

        By default before anything else is checked; ``after=True`` first handles the request as
        usual (a send is accepted and recorded) and then answers the failure instead: a lost answer.
        """
        raw = json.dumps(body if body is not None else {"message": "injected failure"}).encode()
        with self._lock:
            self._state.failures.setdefault(path, []).extend([_Failure(status, raw, dict(headers or {}), after)] * times)

    def fail_rate(self, path: str, rate: float, *, status: int = 500, retry_after: int | None = None) -> None:
        """Answer about ``rate`` of the requests to ``path`` with ``status`` (before handling them), at random:
        a platform having a bad day, for the load run. Several calls add up; :meth:`clear_faults` ends them."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._state.fault_rates.setdefault(path, []).append((rate, status, headers))

    def clear_faults(self) -> None:
        with self._lock:
            self._state.fault_rates.clear()
            self._state.failures.clear()

    @property
    def faults_injected(self) -> int:
        with self._lock:
            return self._state.faults_injected

    def _random_fault(self, path: str) -> _Failure | None:
        import random

        for rate, status, headers in self._state.fault_rates[path]:
            if random.random() < rate:  # fault injection, not security
                self._state.faults_injected += 1
                return _Failure(status, json.dumps({"message": "injected fault"}).encode(), dict(headers), False)
        return None

    # -- the send APIs' accounts -------------------------------------------------------------------
    def line_monthly_limit(self, pushes: int | None) -> None:
        """Answer 429 with LINE's monthly-limit message once ``pushes`` pushes were accepted (None: no limit)."""
        with self._lock:
            self._state.line_monthly_limit = pushes

    def instagram_profile(self, igsid: str, name: str | None, username: str) -> None:
        """The Instagram user's profile, as ``GET /{version}/{IGSID}?fields=name,username`` answers it."""
        with self._lock:
            fields = {"username": username, "id": igsid} | ({"name": name} if name is not None else {})
            self._state.graph_profiles[igsid] = fields

    def messenger_refuse_file(
        self, url: str, *, status: int = 400, code: int = 100, subcode: int | None = 2018047, message: str = ""
    ) -> None:
        """A Send API attachment naming ``url`` answers this Graph error (by default Meta's upload failure:
        it could not fetch the file)."""
        with self._lock:
            self._state.messenger_refused_files[url] = (status, code, subcode, message or "(#100) Upload attachment failure.")

    def messenger_customer(self, psid: str, last_message_ms: int) -> None:
        """``psid`` last wrote to the page at ``last_message_ms``: Messenger's windows count from it."""
        with self._lock:
            self._state.messenger_last[psid] = last_message_ms

    def messenger_block(self, psid: str) -> None:
        with self._lock:
            self._state.messenger_blocked.add(psid)

    def gbm_service_account(self, client_email: str = "switchboard@example.iam.gserviceaccount.com") -> dict[str, str]:
        """A service account JSON whose key this fake trusts and whose ``token_uri`` is this fake's."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with self._lock:
            self._state.gbm_keys[client_email] = key.public_key()
        return {
            "type": "service_account",
            "client_email": client_email,
            "private_key_id": secrets.token_hex(8),
            "private_key": pem.decode("ascii"),
            "token_uri": self.url + "/token",
        }

    def whatsapp_number(self, phone_number_id: str, access_token: str) -> None:
        """A business phone number and the access token that may send from it and read its media."""
        with self._lock:
            self._state.wa_tokens[phone_number_id] = access_token

    def whatsapp_customer(self, wa_id: str, last_message_ms: int) -> None:
        """``wa_id`` last wrote at ``last_message_ms``: the 24-hour customer service window counts from it."""
        with self._lock:
            self._state.wa_last[wa_id] = last_message_ms

    def whatsapp_media(self, media_id: str, body: bytes, content_type: str, *, access_token: str) -> None:
        """Media a customer sent: its node at ``/{version}/{media_id}``, its bytes at the URL the node names."""
        self.file(f"/whatsapp-media/{media_id}", body, content_type)
        with self._lock:
            self._state.wa_media[media_id] = access_token

    # -- what was asked ------------------------------------------------------------------------------
    def requests(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self._state.requests if path is None or r.path == path]

    def requests_under(self, prefix: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self._state.requests if r.path.startswith(prefix)]

    def line_pushes(self) -> list[LinePush]:
        with self._lock:
            return list(self._state.line_pushes)

    def messenger_sent(self) -> list[MessengerSent]:
        with self._lock:
            return list(self._state.messenger_sent)

    def gbm_sent(self) -> list[GbmSent]:
        with self._lock:
            return list(self._state.gbm_sent)

    def whatsapp_sent(self) -> list[WhatsAppSent]:
        with self._lock:
            return list(self._state.wa_sent)

    # -- serving -------------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        method = handler.command
        with self._lock:
            self._state.requests.append(Recorded(method, parts.path, query, headers, body))
            pending = self._state.failures.get(parts.path)
            failure = pending.pop(0) if pending else None
            if failure is None and parts.path in self._state.fault_rates:
                failure = self._random_fault(parts.path)
        if failure is not None and failure.after:
            # Handle it for real, answer the failure instead: the platform has it, the caller cannot know.
            self._serve_post(_Discard(), parts.path, query, headers, body)
        if failure is not None:
            return _answer(handler, failure.status, failure.body, "application/json", extra=failure.headers)
        if method == "POST":
            return self._serve_post(handler, parts.path, query, headers, body)
        if parts.path.startswith("/v2/bot/"):
            return self._line(handler, parts.path, headers)
        if parts.path.startswith("/files/"):
            return self._file(handler, parts.path)
        if "fields" in query:  # a profile look-up (Messenger's unversioned, Instagram's under a version)
            return self._graph(handler, _GRAPH_VERSION.sub("", parts.path, count=1), query)
        if _WA_MEDIA.fullmatch(parts.path) or parts.path.startswith("/whatsapp-media/"):
            return self._whatsapp_media(handler, parts.path, query, headers)
        return self._graph(handler, parts.path, query)

    def _line(self, handler: BaseHTTPRequestHandler, path: str, headers: dict[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            known = scheme == "Bearer" and token in self._state.line_tokens
            content = self._state.content.get(path)
            profile_of = path.removeprefix("/v2/bot/profile/") if path.startswith("/v2/bot/profile/") else None
            name = self._state.line_profiles.get(profile_of) if profile_of else None
        if not known:
            return _json(
                handler,
                401,
                {"message": "Authentication failed. Confirm that the access token in the authorization header is valid."},
            )
        if profile_of is not None:
            if name is None:
                return _json(handler, 404, {"message": "Not found"})
            return _json(handler, 200, {"displayName": name, "userId": profile_of, "language": "en"})
        if content is None:
            return _json(handler, 404, {"message": "Not found"})
        return _answer(handler, 200, *content)

    def _file(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        with self._lock:
            content = self._state.content.get(path)
            declare = path not in self._state.undeclared
        if content is None:
            return _answer(handler, 404, b"Not Found", "text/plain")
        return _answer(handler, 200, *content, declare_length=declare)

    def _graph(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        psid = path.strip("/")
        token = query.get("access_token", "")
        with self._lock:
            known = token in self._state.page_tokens
            app_secret = self._state.page_tokens.get(token)
            profile = self._state.graph_profiles.get(psid)
        if not known:
            return _json(
                handler, 400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}
            )
        if app_secret is not None:
            proof = hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(query.get("appsecret_proof", ""), proof):
                return _json(
                    handler, 400, {"error": {"message": "Invalid appsecret_proof provided in the API argument", "code": 100}}
                )
        if profile is None:
            return _json(handler, 400, {"error": {"message": "No profile available for this user.", "code": 2018218}})
        fields = [f for f in query.get("fields", "").split(",") if f]
        return _json(handler, 200, {k: v for k, v in profile.items() if k in fields or k == "id"})

    # -- the send APIs -------------------------------------------------------------------------------
    def _serve_post(self, handler: Any, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> None:
        try:
            document = json.loads(body) if path != "/token" else None
        except ValueError:
            return _json(handler, 400, {"message": "The request body has 1 error(s)"})
        if path == "/v2/bot/message/push":
            return self._line_push(handler, headers, document)
        if path == "/token":
            return self._gbm_token(handler, body)
        if path.startswith("/v1/conversations/") and path.endswith("/messages"):
            return self._gbm_message(
                handler, path.removeprefix("/v1/conversations/").removesuffix("/messages"), headers, document
            )
        if path.endswith("/me/messages"):
            return self._messenger_send(handler, query, document)
        if (number := _WA_SEND.fullmatch(path)) is not None:
            return self._whatsapp_send(handler, number.group(1), headers, document)
        return _json(handler, 404, {"message": "Not found"})

    def _line_push(self, handler: Any, headers: dict[str, str], body: Any) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        retry_key = headers.get("x-line-retry-key")
        with self._lock:
            if not (scheme == "Bearer" and token in self._state.line_tokens):
                return _json(
                    handler,
                    401,
                    {"message": "Authentication failed. Confirm that the access token in the authorization header is valid."},
                )
            if retry_key is not None and retry_key in self._state.line_retry_keys:
                accepted = self._state.line_retry_keys[retry_key]
                return _json(
                    handler, 409, {"message": "The retry key is already accepted"}, extra={"x-line-accepted-request-id": accepted}
                )
            limit = self._state.line_monthly_limit
            if limit is not None and len(self._state.line_pushes) >= limit:
                return _json(handler, 429, {"message": LINE_MONTHLY_LIMIT_MESSAGE})
            to = body.get("to") if isinstance(body, dict) else None
            messages = body.get("messages") if isinstance(body, dict) else None
            if not isinstance(to, str) or not _LINE_TO.fullmatch(to):
                return _json(handler, 400, {"message": "The property, 'to', in the request body is invalid (line: -, column: -)"})
            if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
                return _json(
                    handler,
                    400,
                    {
                        "message": "The request body has 1 error(s)",
                        "details": [{"message": "Size must be between 1 and 5", "property": "messages"}],
                    },
                )
            for index, message in enumerate(messages):
                problem = _line_message_problem(message)
                if problem is not None:
                    what, prop = problem
                    return _json(
                        handler,
                        400,
                        {
                            "message": "The request body has 1 error(s)",
                            "details": [{"message": what, "property": f"messages[{index}]{prop}"}],
                        },
                    )
            request_id = str(uuid.uuid4())
            self._state.line_pushes.append(LinePush(to, messages, retry_key, request_id))
            if retry_key is not None:
                self._state.line_retry_keys[retry_key] = request_id
        sent = [{"id": str(secrets.randbelow(10**18)), "quoteToken": secrets.token_urlsafe(16)} for _ in messages]
        return _json(handler, 200, {"sentMessages": sent}, extra={"x-line-request-id": request_id})

    def _messenger_send(self, handler: Any, query: dict[str, str], body: Any) -> None:
        token = query.get("access_token", "")
        now = self.now_ms if self.now_ms is not None else int(time.time() * 1000)
        with self._lock:
            if token not in self._state.page_tokens:
                return _json(
                    handler, 400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}
                )
            app_secret = self._state.page_tokens[token]
            if app_secret is not None:
                proof = hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
                if not hmac.compare_digest(query.get("appsecret_proof", ""), proof):
                    return _json(
                        handler, 400, {"error": {"message": "Invalid appsecret_proof provided in the API argument", "code": 100}}
                    )
            recipient = body.get("recipient") if isinstance(body, dict) else None
            psid = recipient.get("id") if isinstance(recipient, dict) else None
            message = body.get("message") if isinstance(body, dict) else None
            kind = body.get("messaging_type") if isinstance(body, dict) else None
            tag = body.get("tag") if isinstance(body, dict) else None
            last = self._state.messenger_last.get(psid) if isinstance(psid, str) else None
            if last is None:
                return _json(
                    handler,
                    400,
                    {
                        "error": {
                            "message": "(#100) No matching user found",
                            "type": "OAuthException",
                            "code": 100,
                            "error_subcode": 2018001,
                        }
                    },
                )
            if psid in self._state.messenger_blocked:
                return _json(
                    handler,
                    400,
                    {
                        "error": {
                            "message": "(#551) This person isn't available right now.",
                            "type": "OAuthException",
                            "code": 551,
                            "error_subcode": 1545041,
                        }
                    },
                )
            window = _DAY_MS if kind == "RESPONSE" else 7 * _DAY_MS if (kind, tag) == ("MESSAGE_TAG", "HUMAN_AGENT") else None
            if window is None:
                return _json(
                    handler,
                    400,
                    {"error": {"message": "(#100) Invalid messaging_type or tag", "type": "OAuthException", "code": 100}},
                )
            if now - last > window:
                return _json(
                    handler,
                    400,
                    {
                        "error": {
                            "message": "(#10) This message is sent outside of allowed window.",
                            "type": "OAuthException",
                            "code": 10,
                            "error_subcode": 2018278,
                        }
                    },
                )
            text = message.get("text") if isinstance(message, dict) else None
            attachment = message.get("attachment") if isinstance(message, dict) else None
            refusal = self._messenger_attachment_refusal(attachment) if attachment is not None else None
            if refusal is None and attachment is None and not (isinstance(text, str) and text):
                refusal = 400, 100, None, "(#100) Must send either message text or an attachment"
            if refusal is not None:
                status, code, subcode, what = refusal
                error = {"message": what, "type": "OAuthException", "code": code}
                return _json(handler, status, {"error": error | ({"error_subcode": subcode} if subcode else {})})
            mid = "m_" + secrets.token_urlsafe(24)
            self._state.messenger_sent.append(MessengerSent(str(psid), text, str(kind), tag, mid, attachment))
        return _json(handler, 200, {"recipient_id": psid, "message_id": mid})

    def _messenger_attachment_refusal(self, attachment: Any) -> tuple[int, int, int | None, str] | None:
        """Graph's refusal of a Send API attachment, or None: a known type, an http(s) URL Meta can fetch."""
        payload = attachment.get("payload") if isinstance(attachment, dict) else None
        url = payload.get("url") if isinstance(payload, dict) else None
        if attachment.get("type") not in _MESSENGER_FILE_TYPES or not isinstance(url, str) or not url.startswith("http"):
            return 400, 100, None, "(#100) Invalid attachment"
        return self._state.messenger_refused_files.get(url)

    def _gbm_token(self, handler: Any, body: bytes) -> None:
        import jwt

        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        assertion = form.get("assertion", "")
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not assertion:
            return _json(handler, 400, {"error": "unsupported_grant_type"})
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            with self._lock:
                key = self._state.gbm_keys.get(str(issuer))
            if key is None:
                raise jwt.InvalidTokenError("unknown issuer")
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=self.url + "/token")
        except jwt.InvalidTokenError:
            return _json(handler, 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        if claims.get("scope") != GBM_SCOPE:
            return _json(handler, 400, {"error": "invalid_scope"})
        token = "ya29." + secrets.token_urlsafe(32)
        with self._lock:
            self._state.gbm_tokens.add(token)
        return _json(handler, 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _gbm_message(self, handler: Any, conversation_id: str, headers: dict[str, str], body: Any) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            if not (scheme == "Bearer" and token in self._state.gbm_tokens):
                return _json(
                    handler,
                    401,
                    {
                        "error": {
                            "code": 401,
                            "message": "Request had invalid authentication credentials.",
                            "status": "UNAUTHENTICATED",
                        }
                    },
                )
            message_id = body.get("messageId") if isinstance(body, dict) else None
            representative = body.get("representative") if isinstance(body, dict) else None
            if not isinstance(message_id, str) or not message_id or not isinstance(representative, dict):
                return _json(handler, 400, {"error": {"code": 400, "message": "Invalid message.", "status": "INVALID_ARGUMENT"}})
            if any(sent.message_id == message_id for sent in self._state.gbm_sent):
                return _json(
                    handler,
                    409,
                    {"error": {"code": 409, "message": "Requested entity already exists", "status": "ALREADY_EXISTS"}},
                )
            text = body.get("text")
            self._state.gbm_sent.append(GbmSent(conversation_id, message_id, text, representative))
        answer = {
            "name": f"conversations/{conversation_id}/messages/{message_id}",
            "messageId": message_id,
            "text": text,
            "representative": representative,
        }
        return _json(handler, 200, answer)

    def _whatsapp_media(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        media_id = path.rsplit("/", 1)[-1]
        with self._lock:
            allowed = self._state.wa_media.get(media_id)
            content = self._state.content.get(f"/whatsapp-media/{media_id}")
        if allowed is None or content is None:
            if path.startswith("/whatsapp-media/"):
                return _answer(handler, 404, b"Not Found", "text/plain")
            return self._graph(handler, path, query)  # not media: a Graph node of another kind
        if scheme != "Bearer" or token != allowed:
            return _json(handler, 401, _WA_BAD_TOKEN)
        if path.startswith("/whatsapp-media/"):
            return _answer(handler, 200, *content)
        body, content_type = content
        node = {
            "messaging_product": "whatsapp",
            "url": f"{self.url}/whatsapp-media/{media_id}",
            "mime_type": content_type,
            "sha256": hashlib.sha256(body).hexdigest(),
            "file_size": len(body),
            "id": media_id,
        }
        return _json(handler, 200, node)

    def _whatsapp_send(self, handler: Any, number: str, headers: dict[str, str], body: Any) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        now = self.now_ms if self.now_ms is not None else int(time.time() * 1000)
        with self._lock:
            if scheme != "Bearer" or self._state.wa_tokens.get(number) != token or not token:
                return _json(handler, 401, _WA_BAD_TOKEN)
            fields = body if isinstance(body, dict) else {}
            to, kind = fields.get("to"), fields.get("type", "text")
            if fields.get("messaging_product") != "whatsapp" or not isinstance(to, str):
                return _json(handler, 400, _wa_error(100, "(#100) Invalid parameter", "messaging_product and to are required"))
            if not isinstance(fields.get(kind), dict):
                return _json(handler, 400, _wa_error(100, "(#100) Invalid parameter", f"the {kind} object is missing"))
            last = self._state.wa_last.get(to)
            if last is None:
                return _json(handler, 400, _wa_error(131026, "Message undeliverable", "Unable to deliver the message."))
            if kind != "template" and now - last > _DAY_MS:
                return _json(
                    handler,
                    400,
                    _wa_error(
                        131047,
                        "Re-engagement message",
                        "Message failed to send because more than 24 hours have passed since the customer "
                        "last replied to this number.",
                    ),
                )
            wamid = "wamid." + secrets.token_urlsafe(36)
            self._state.wa_sent.append(WhatsAppSent(number, to, str(kind), fields, wamid))
        answer = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": wamid}]}
        return _json(handler, 200, answer)


_WA_MEDIA = re.compile(r"/v[0-9.]+/[0-9]+")
_GRAPH_VERSION = re.compile(r"^/v[0-9.]+(?=/)")
_MESSENGER_FILE_TYPES = frozenset({"image", "video", "audio", "file"})
_WA_SEND = re.compile(r"/v[0-9.]+/([0-9]+)/messages")
_WA_BAD_TOKEN = {
    "error": {"message": "Invalid OAuth access token - Cannot parse access token", "type": "OAuthException", "code": 190}
}


def _wa_error(code: int, message: str, details: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "A" + secrets.token_hex(10),
        }
    }


class _Discard:
    """Where a request handled for real sends the answer the caller will never see (``fail(after=True)``)."""

    def __init__(self) -> None:
        import io

        self.wfile = io.BytesIO()

    def send_response(self, status: int) -> None:
        return

    def send_header(self, name: str, value: str) -> None:
        return

    def end_headers(self) -> None:
        return


def _json(handler: Any, status: int, body: dict[str, Any], *, extra: dict[str, str] | None = None) -> None:
    _answer(handler, status, json.dumps(body).encode(), "application/json", extra=extra)


def _answer(
    handler: Any,
    status: int,
    body: bytes,
    content_type: str,
    *,
    declare_length: bool = True,
    extra: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    if declare_length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)


def _line_message_problem(message: Any) -> tuple[str, str] | None:
    """What LINE's push would say about one message object (its message, the property's suffix), or None.

    Text: 1-5,000 characters. Image and video: ``originalContentUrl`` and ``previewImageUrl``; audio:
    ``originalContentUrl`` and ``duration``; every URL HTTPS and at most 2,000 characters, as LINE's
    reference requires. LINE fetches the files later; the fake does not.
    """
    if not isinstance(message, dict):
        return "must be an object", ""
    mtype = message.get("type")
    if mtype == "text":
        text = message.get("text")
        return None if isinstance(text, str) and 1 <= len(text) <= 5000 else ("Length must be between 1 and 5000", ".text")
    required = {
        "image": ("originalContentUrl", "previewImageUrl"),
        "video": ("originalContentUrl", "previewImageUrl"),
        "audio": ("originalContentUrl",),
    }
    if mtype not in required:
        return "Invalid message type", ".type"
    for key in required[mtype]:
        url = message.get(key)
        if not isinstance(url, str) or not url:
            return "must be specified", f".{key}"
        if not url.startswith("https://"):
            return "must be non-empty HTTPS URL", f".{key}"
        if len(url) > 2000:
            return "Length must be between 0 and 2000", f".{key}"
    if mtype == "audio" and not (isinstance(message.get("duration"), int) and message["duration"] > 0):
        return "must be specified", ".duration"
    return None
