"""What the forgery properties share: the profiles, a tally of cases, in-memory ports, and the mutations.

Every request goes through the real path a webhook takes (API Gateway event -> ``apigw.request`` ->
``edge.receive``) with in-memory ports, so "never enqueued" is checked on the one object the edge
would hand envelopes to. Mutations are drawn by hypothesis; each one is labelled with ``event`` so
``--hypothesis-show-statistics`` shows which kinds ran.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fakes.ports import FakeSecrets as Secrets
from fakes.ports import FakeSettings, RecordingPublisher
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from switchboard import apigw, edge
from switchboard.channels.base import ChannelAdapter
from switchboard.edge import EdgeDeps
from switchboard.envelope import Envelope
from switchboard.errors import HttpError
from switchboard.secret_names import secret_name
from switchboard.settings import Account
from switchboard.web import WebhookResponse

# -- profiles ---------------------------------------------------------------------------------------
# The unit run tries a handful of cases per property so it stays fast; `make fuzz` selects the fuzz
# profile (HYPOTHESIS_PROFILE=fuzz), whose per-property count puts the whole run over 10,000 cases.
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
FUZZ_GOAL = 10_000
settings.register_profile(
    "property-quick", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    print_blob=True,
)
PROFILE = settings.get_profile("fuzz" if FUZZ else "property-quick")

# -- the tally `make fuzz` prints ---------------------------------------------------------------------
TALLY: Counter[str] = Counter()
SECONDS: defaultdict[str, float] = defaultdict(float)


@contextmanager
def case(target: str) -> Iterator[None]:
    """Count one tried case for ``target`` (every run of a property body, shrinking included)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        TALLY[target] += 1
        SECONDS[target] += time.perf_counter() - start


# -- in-memory ports ----------------------------------------------------------------------------------
PREFIX = "switchboard/property"
NOW = 1_800_000_000.5


def OneAccountSettings(account: Account) -> FakeSettings:
    """Settings holding exactly one account; the edge never reads the CRM settings."""
    return FakeSettings(accounts={account.id: account}, crm_settings=None)


# -- channels -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Channel:
    """One platform's webhook as the properties see it: how it signs, and which bodies are genuine."""

    name: str  # test id, e.g. "gbm-partner-key"
    target: str  # tally name: line, facebook, gbm
    adapter: ChannelAdapter
    header: str  # the signature header as the platform spells it
    secrets: Mapping[str, str]
    signing_secret: str  # which of ``secrets`` signs
    hash_name: str
    encoding: str  # "base64" or "hex"
    prefix: str = ""  # "sha256=" for Meta
    options: Mapping[str, Any] = field(default_factory=dict)
    case_insensitive_value: bool = False  # Meta's hex may come in either case
    bases: tuple[bytes, ...] = ()  # genuine bodies, each yielding at least one envelope

    def __repr__(self) -> str:  # falsifying examples name the channel; the bodies would fill the screen
        return f"<channel {self.name}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer, likewise
        printer.text(repr(self))

    @property
    def account_id(self) -> str:
        return f"{self.target}-acct"

    def account(self, **options: Any) -> Account:
        return Account(id=self.account_id, channel=self.adapter.channel, workstream="w", options={**self.options, **options})

    def signature(self, body: bytes, *, key: str | None = None, hash_name: str | None = None) -> str:
        secret = self.secrets[self.signing_secret] if key is None else key
        digest = hmac.new(secret.encode("utf-8"), body, hash_name or self.hash_name).digest()
        return self.prefix + encode(digest, self.encoding)

    def same_signature(self, a: str, b: str) -> bool:
        """What the adapter itself treats as one value: surrounding whitespace, and letter case for hex."""
        if self.case_insensitive_value:
            return a.strip().lower() == b.strip().lower()
        return a.strip() == b.strip()

    def with_bases(self, candidates: Sequence[bytes]) -> Channel:
        """Keep the bodies that the unmodified edge accepts and turns into envelopes (so a refusal means something)."""
        kept = []
        for body in candidates:
            outcome = deliver(self, api_event(self, body, {self.header: self.signature(body)}))
            if outcome.response.status == 200 and outcome.published:
                kept.append(body)
        return replace(self, bases=tuple(kept))


def encode(digest: bytes, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(digest).decode("ascii")
    if encoding == "hex":
        return digest.hex()
    raise ValueError(encoding)


def api_event(
    channel: Channel,
    body: bytes,
    headers: Mapping[str, str],
    *,
    b64: bool = False,
    raw_body: str | None = None,
    method: str = "POST",
    query: Mapping[str, str] | None = None,
    multi: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as the gateway hands the webhook to the function.

    Bytes that are not UTF-8 can only reach the function base64-encoded, so such a body is sent that way.
    """
    if raw_body is None:
        try:
            raw_body = body.decode("utf-8") if not b64 else None
        except UnicodeDecodeError:
            b64 = True
        if raw_body is None:
            raw_body = base64.b64encode(body).decode("ascii")
    path = f"/webhooks/{channel.adapter.channel}/{channel.account_id}"
    return {
        "resource": f"/webhooks/{channel.adapter.channel}/{{account_id}}",
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": dict(multi) if multi is not None else {k: [v] for k, v in headers.items()},
        "pathParameters": {"account_id": channel.account_id},
        "queryStringParameters": dict(query) if query else None,
        "requestContext": {"requestId": "req-property"},
        "body": raw_body,
        "isBase64Encoded": b64,
    }


@dataclass(frozen=True)
class Outcome:
    response: WebhookResponse
    published: list[Envelope]
    publish_calls: int


def deliver(channel: Channel, event_: dict[str, Any], **options: Any) -> Outcome:
    """The handler's path with in-memory ports.

    ``apigw.request`` refuses an undecodable base64 body by raising ``BadRequest``; it is answered
    here as the refusal it is (nothing reached the edge, so nothing can have been enqueued).
    """
    publisher = RecordingPublisher()
    account = channel.account(**options)
    deps = EdgeDeps(
        settings=OneAccountSettings(account),
        secrets=Secrets({secret_name(PREFIX, "account", account.id, account.channel): dict(channel.secrets)}),
        publisher=publisher,
        secrets_prefix=PREFIX,
        clock=lambda: NOW,
    )
    try:
        request = apigw.request(event_)
    except HttpError as refused:
        return Outcome(refused.response(), publisher.published, publisher.calls)
    return Outcome(edge.receive(channel.adapter, request, deps), publisher.published, publisher.calls)


def assert_refused(outcome: Outcome) -> None:
    answer = outcome.response
    assert 400 <= answer.status < 500, f"accepted or failed instead of refused: {answer}"
    assert outcome.published == [], "a refused request enqueued envelopes"
    assert outcome.publish_calls == 0, "a refused request reached the publisher"
    payload = json.loads(answer.body)
    assert set(payload) == {"error", "message"}, payload


def assert_accepted(outcome: Outcome) -> None:
    assert outcome.response.status == 200, outcome.response
    assert outcome.published, "an accepted request enqueued nothing"
    assert outcome.publish_calls == 1


# -- mutations of bytes (bodies) ----------------------------------------------------------------------
Draw = st.DrawFn
_WS = (b" ", b"\t", b"\n", b"\r\n", b"\r")


def _position(draw: Draw, data: bytes | str, *, end: bool = False) -> int:
    return int(draw(st.integers(0, len(data) if end else max(len(data) - 1, 0))))


def _bit_flip(draw: Draw, body: bytes) -> bytes:
    i, bit = _position(draw, body), draw(st.integers(0, 7))
    return body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1 :]


def _byte_replace(draw: Draw, body: bytes) -> bytes:
    i = _position(draw, body)
    return body[:i] + bytes([draw(st.integers(0, 255))]) + body[i + 1 :]


def _truncate(draw: Draw, body: bytes) -> bytes:
    return body[: _position(draw, body)]


def _append(draw: Draw, body: bytes) -> bytes:
    suffix = draw(
        st.one_of(st.sampled_from([b"\n", b" ", b"\x00", b"}", b"\r\n", b"{}", b",", b"]"]), st.binary(min_size=1, max_size=24))
    )
    return bytes(body + suffix)


def _prepend(draw: Draw, body: bytes) -> bytes:
    prefix = draw(
        st.one_of(st.sampled_from([b"\xef\xbb\xbf", b" ", b"\n", b"\x00", b"\xff\xfe"]), st.binary(min_size=1, max_size=8))
    )
    return bytes(prefix + body)


def _insert(draw: Draw, body: bytes) -> bytes:
    i = _position(draw, body, end=True)
    return body[:i] + draw(st.binary(min_size=1, max_size=16)) + body[i:]


def _delete(draw: Draw, body: bytes) -> bytes:
    i = _position(draw, body)
    j = draw(st.integers(i + 1, min(len(body), i + 64)))
    return body[:i] + body[j:]


def _duplicate_slice(draw: Draw, body: bytes) -> bytes:
    i = _position(draw, body)
    j = draw(st.integers(i + 1, min(len(body), i + 64)))
    return body[:j] + body[i:j] + body[j:]


def _whitespace(draw: Draw, body: bytes) -> bytes:
    """Whitespace JSON ignores but a signature does not: after a structural character, or at either end."""
    spots = [m.end() for m in re.finditer(rb"[,:{\[]", body)] + [0, len(body)]
    i = draw(st.sampled_from(spots))
    pad = b"".join(draw(st.lists(st.sampled_from(_WS), min_size=1, max_size=3)))
    return body[:i] + pad + body[i:]


def _line_ends(draw: Draw, body: bytes) -> bytes:
    choice = draw(st.sampled_from(["crlf", "strip", "cr"]))
    if choice == "crlf":
        return body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if choice == "cr":
        return body.replace(b"\n", b"\r")
    return body.replace(b"\n", b"").replace(b"\r", b"")


def _reserialise(draw: Draw, body: bytes) -> bytes:
    """The same JSON value written another way (what a proxy or a 'helpful' middleware might do)."""
    value = json.loads(body)
    text = json.dumps(
        value,
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")])),
        indent=draw(st.sampled_from([None, 1, 2, "\t"])),
        ensure_ascii=draw(st.booleans()),
        sort_keys=draw(st.booleans()),
    )
    return text.encode("utf-8")


def _reencode(draw: Draw, body: bytes) -> bytes:
    codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1-mojibake"]))
    text = body.decode("utf-8")
    if codec == "latin-1-mojibake":  # UTF-8 read as Latin-1, then written as UTF-8 again
        return body.decode("latin-1").encode("utf-8")
    return text.encode(codec)


_FORMS: tuple[Literal["NFC", "NFD", "NFKC", "NFKD"], ...] = ("NFC", "NFD", "NFKC", "NFKD")


def _unicode_normalise(draw: Draw, body: bytes) -> bytes:
    form = draw(st.sampled_from(_FORMS))
    return unicodedata.normalize(form, body.decode("utf-8")).encode("utf-8")


_ESCAPED = re.compile(rb"\\u([0-9a-fA-F]{4})")


def _escaping(draw: Draw, body: bytes) -> bytes:
    """JSON escapes that decode to the same string: \\u00e9 vs é, \\/ vs /, \\u00E9 vs \\u00e9."""
    choice = draw(st.sampled_from(["escape-non-ascii", "unescape", "escape-slash", "unescape-slash", "hex-case", "escape-ascii"]))
    if choice == "escape-non-ascii":
        return body.decode("utf-8").encode("ascii", errors="backslashreplace").replace(b"\\x", b"\\u00")
    if choice == "unescape":
        return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)).encode("utf-8", errors="surrogatepass"), body)
    if choice == "escape-slash":
        return body.replace(b"/", b"\\/")
    if choice == "unescape-slash":
        return body.replace(b"\\/", b"/")
    if choice == "hex-case":
        return _ESCAPED.sub(lambda m: b"\\u" + m.group(1).swapcase(), body)
    # one plain ASCII letter inside a string written as \\u00XX
    letters = [m.start() for m in re.finditer(rb"[A-Za-z]", body)]
    if not letters:
        return body
    i = draw(st.sampled_from(letters))
    return body[:i] + b"\\u%04x" % body[i] + body[i + 1 :]


def _swap_case(draw: Draw, body: bytes) -> bytes:
    letters = [m.start() for m in re.finditer(rb"[A-Za-z]", body)]
    if not letters:
        return body
    i = draw(st.sampled_from(letters))
    return body[:i] + body[i : i + 1].swapcase() + body[i + 1 :]


def _duplicate_key(draw: Draw, body: bytes) -> bytes:
    """A second copy of a top-level key (parsers disagree on which wins): the classic parser-differential trick."""
    start = body.find(b"{")
    if start < 0:
        return body
    key = draw(st.sampled_from([b"events", b"entry", b"object", b"message", b"conversationId", b"destination"]))
    value = draw(st.sampled_from([b"[]", b"{}", b"null", b'"page"', b'"x"']))
    return body[: start + 1] + b'"' + key + b'":' + value + b"," + body[start + 1 :]


def _number_format(draw: Draw, body: bytes) -> bytes:
    numbers = list(re.finditer(rb"(?<![\w.\"])(\d{2,})(?![\w.\"])", body))
    if not numbers:
        return body
    m: re.Match[bytes] = draw(st.sampled_from(numbers))
    digits: bytes = m.group(1)
    spelled = draw(st.sampled_from([digits + b".0", b"0" + digits, digits + b"e0", b"%.6e" % int(digits)]))
    return body[: m.start()] + spelled + body[m.end() :]


def _textual(mutation: Callable[[Draw, bytes], bytes]) -> Callable[[Draw, bytes], bytes]:
    """Mutations that read the body as UTF-8 JSON leave a body that is no longer one alone."""

    def run(draw: Draw, body: bytes) -> bytes:
        try:
            return mutation(draw, body)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError included
            return body

    return run


BODY_MUTATIONS: dict[str, Callable[[Draw, bytes], bytes]] = {
    "bit-flip": _bit_flip,
    "byte-replace": _byte_replace,
    "truncate": _truncate,
    "append": _append,
    "prepend": _prepend,
    "insert": _insert,
    "delete": _delete,
    "duplicate-slice": _duplicate_slice,
    "whitespace": _whitespace,
    "line-ends": _line_ends,
    "reserialise": _textual(_reserialise),
    "re-encode": _textual(_reencode),
    "unicode-normalise": _textual(_unicode_normalise),
    "escaping": _textual(_escaping),
    "swap-case": _swap_case,
    "duplicate-key": _duplicate_key,
    "number-format": _number_format,
}


@st.composite
def mutated_body(draw: Draw, body: bytes) -> bytes:
    """``body`` changed by one or two mutations; the caller assumes the bytes differ."""
    out = body
    for name in draw(st.lists(st.sampled_from(sorted(BODY_MUTATIONS)), min_size=1, max_size=2)):
        event(f"body: {name}")
        out = BODY_MUTATIONS[name](draw, out) if out else out
    return out


# -- mutations of strings (signatures, tokens, header names) ------------------------------------------
BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
HEX_ALPHABET = "0123456789abcdefABCDEF"
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@st.composite
def mutated_text(draw: Draw, value: str, alphabet: str) -> str:
    """One character-level change to ``value``: flip, truncate, extend, insert, delete, case, padding, alphabet."""
    kind = draw(
        st.sampled_from(
            [
                "flip",
                "truncate",
                "append",
                "insert",
                "delete",
                "swap-case-one",
                "swap-case-all",
                "pad",
                "std-alphabet",
                "inner-space",
            ]
        )
    )
    event(f"text: {kind}")
    chars = st.sampled_from(alphabet)
    if not value:
        return str(draw(st.text(alphabet, min_size=1, max_size=4)))
    i = _position(draw, value)
    if kind == "flip":
        return value[:i] + draw(chars.filter(lambda c: c != value[i])) + value[i + 1 :]
    if kind == "truncate":
        return value[:i]
    if kind == "append":
        return value + draw(st.text(alphabet, min_size=1, max_size=4))
    if kind == "insert":
        return value[:i] + draw(chars) + value[i:]
    if kind == "delete":
        j = draw(st.integers(i + 1, len(value)))
        return value[:i] + value[j:]
    if kind == "swap-case-one":
        return value[:i] + value[i].swapcase() + value[i + 1 :]
    if kind == "swap-case-all":
        return value.swapcase()
    if kind == "pad":
        return value + "=" * draw(st.integers(1, 3))
    if kind == "std-alphabet":
        return value.translate(str.maketrans("-_+/", "+/-_"))
    return value[:i] + draw(st.sampled_from([" ", "\t", "\n", "\u00a0"])) + value[i:]
