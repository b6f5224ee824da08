"""Webhook forgery properties for LINE, Facebook Messenger, WhatsApp and Google Business Messages.

Every property starts from a genuine request (a recorded or realistic body, signed as the platform
signs it), changes one thing an attacker or a mangling proxy could change, and requires the edge to
refuse it with a 4xx and to enqueue nothing. The genuine request itself, and the variants the
platforms' documents say are the same request (header-name case, whitespace around the value, hex
case for Meta, API Gateway's base64 body), must be accepted, so these properties can fail.

Two more refusals hold whatever else is drawn: an account whose stored secret is missing, empty or
blank accepts nothing, not even a request signed with that same empty key (an HMAC anyone can
compute); and a body nested to any depth is answered with a 4xx or a 200, never a 5xx.

The adapters are constructed directly, not looked up in the channel registry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from switchboard import apigw, safe_json
from switchboard.channels import facebook, gbm, instagram, line, whatsapp
from switchboard.channels.facebook import FacebookAdapter
from switchboard.channels.gbm import GbmAdapter
from switchboard.channels.instagram import InstagramAdapter
from switchboard.channels.line import LineAdapter
from switchboard.channels.meta import MetaAdapter, sign_sha1
from switchboard.channels.whatsapp import WhatsAppAdapter

from ._support import (
    BASE64_ALPHABET,
    HEX_ALPHABET,
    PROFILE,
    Channel,
    Draw,
    api_event,
    assert_accepted,
    assert_refused,
    case,
    deliver,
    encode,
    mutated_body,
    mutated_text,
)

TESTDATA = Path(line.__file__).resolve().parent / "testdata"
PAGE = "104123456789012"
IG_ACCOUNT = "17841400000000000"  # entry[].id of the recorded Instagram payloads
WA_NUMBER = "106540352242922"  # metadata.phone_number_id of the recorded WhatsApp payloads
# Text that unicode normalisation, escaping and re-encoding all change: composed and decomposed forms, kana, emoji, a slash.
TRICKY = "Gr\u00fc\u00dfe, caf\u00e9 / cafe\u0301 \u30ac\u30ab\u3099 \U0001f44d \u2126 \ufb01"


def recorded(channel_dir: str) -> list[bytes]:
    """Each recorded payload as stored (pretty-printed) and compact, as the platforms send it."""
    out: list[bytes] = []
    for path in sorted((TESTDATA / channel_dir).glob("*.json")):
        raw = path.read_bytes()
        out += [raw, json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode("utf-8")]
    return out


# The agent of the GBM accounts below; every recorded GBM body is delivered as if to it (Google writes
# the agent into each delivery, and the adapter records only deliveries for its own account's agent).
GBM_BRAND, GBM_AGENT = "85851e0e-8406-4812-8d15-53feecfa3b84", "bc69bbee-878a-4cda-a400-bec9311040e7"


def gbm_recorded() -> list[bytes]:
    """The recorded GBM bodies, each addressed to the accounts' agent, stored (pretty-printed) and compact."""
    out: list[bytes] = []
    for path in sorted((TESTDATA / "gbm").glob("*.json")):
        doc = json.loads(path.read_bytes())
        doc["agent"] = f"brands/{GBM_BRAND}/agents/{GBM_AGENT}"
        out += [
            json.dumps(doc, indent=2).encode("utf-8"),
            json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        ]
    return out


def line_synthetic() -> list[bytes]:
    event_ = {
        "type": "message",
        "mode": "active",
        "timestamp": 1_700_000_000_000,
        "source": {"type": "user", "userId": "U" + "4" * 32},
        "webhookEventId": "01HQZ8PROPERTY0000000000",
        "deliveryContext": {"isRedelivery": False},
        "replyToken": "b" * 32,
        "message": {"id": "468789577898262530", "type": "text", "text": TRICKY, "quoteToken": "q-prop"},
    }
    body = {"destination": "U" + "0" * 32, "events": [event_]}
    return [json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), json.dumps(body).encode("ascii")]


def facebook_synthetic() -> list[bytes]:
    escaped = facebook.build_message(PAGE, "6789012345678901", TRICKY, mid="m_property", now_ms=1_718_000_000_000)
    plain = json.dumps(json.loads(escaped), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return [escaped, plain]


def instagram_synthetic() -> list[bytes]:
    escaped = instagram.build_message(IG_ACCOUNT, "1254459154682919", TRICKY, mid="m_property", now_ms=1_718_000_000_000)
    plain = json.dumps(json.loads(escaped), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return [escaped, plain]


def whatsapp_synthetic() -> list[bytes]:
    escaped = whatsapp.build_message(WA_NUMBER, "447700900123", TRICKY, wamid="wamid.property", now_s=1_718_000_000)
    plain = json.dumps(json.loads(escaped), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return [escaped, plain]


def gbm_synthetic() -> list[bytes]:
    body = gbm.build_message(
        "72a88dca-58e8-4bb8-99bb-0302458fee1a",
        TRICKY,
        brand_id=GBM_BRAND,
        agent_id=GBM_AGENT,
        display_name="J\u00fcrgen",
        message_id="5605CF17-BB6D-4B5C-91FC-FDBA5664C4FA",
        request_id="73E7627A-C9F1-4C89-9553-E9FB49CBE01F",
        now_ms=1_718_000_000_000,
    )
    return [body, json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")]


GBM_SECRETS = {"client_token": "gbm-client-token-5e1d", "partner_key": "gbm-partner-key-9b1f", "service_account_json": "{}"}
CHANNELS = [
    Channel(
        name="line",
        target="line",
        adapter=LineAdapter(),
        header="X-Line-Signature",
        secrets={"channel_secret": "s3cr3t-line-channel-9f8e7d", "channel_access_token": "t0k3n-line-access-1a2b3c"},
        signing_secret="channel_secret",
        hash_name="sha256",
        encoding="base64",
    ).with_bases(recorded("line") + line_synthetic()),
    Channel(
        name="facebook",
        target="facebook",
        adapter=FacebookAdapter(),
        header="X-Hub-Signature-256",
        secrets={"app_secret": "fb-app-secret-77c1", "verify_token": "meatyhamhock-7f3a", "page_access_token": "EAAG-token"},
        signing_secret="app_secret",
        hash_name="sha256",
        encoding="hex",
        prefix="sha256=",
        options={"page_id": PAGE},
        case_insensitive_value=True,
    ).with_bases(recorded("facebook") + facebook_synthetic()),
    Channel(
        name="instagram",
        target="instagram",
        adapter=InstagramAdapter(),
        header="X-Hub-Signature-256",
        secrets={"app_secret": "ig-app-secret-93b0", "verify_token": "ig-verify-2d6a", "page_access_token": "EAAI-token"},
        signing_secret="app_secret",
        hash_name="sha256",
        encoding="hex",
        prefix="sha256=",
        options={"instagram_id": IG_ACCOUNT},
        case_insensitive_value=True,
    ).with_bases(recorded("instagram") + instagram_synthetic()),
    Channel(
        name="whatsapp",
        target="whatsapp",
        adapter=WhatsAppAdapter(),
        header="X-Hub-Signature-256",
        secrets={"app_secret": "wa-app-secret-41d7", "verify_token": "wa-verify-5c2e", "access_token": "EAAJ-wa-token"},
        signing_secret="app_secret",
        hash_name="sha256",
        encoding="hex",
        prefix="sha256=",
        options={"phone_number_id": WA_NUMBER},
        case_insensitive_value=True,
    ).with_bases(recorded("whatsapp") + whatsapp_synthetic()),
    Channel(
        name="gbm-client-token",
        target="gbm",
        adapter=GbmAdapter(),
        header="X-Goog-Signature",
        secrets=GBM_SECRETS,
        signing_secret="client_token",
        hash_name="sha512",
        encoding="base64",
        options={"signing_key": "client_token", "brand_id": GBM_BRAND, "agent_id": GBM_AGENT},
    ).with_bases(gbm_recorded() + gbm_synthetic()),
    Channel(
        name="gbm-partner-key",
        target="gbm",
        adapter=GbmAdapter(),
        header="X-Goog-Signature",
        secrets=GBM_SECRETS,
        signing_secret="partner_key",
        hash_name="sha512",
        encoding="base64",
        options={"signing_key": "partner_key", "brand_id": GBM_BRAND, "agent_id": GBM_AGENT},
    ).with_bases(gbm_recorded() + gbm_synthetic()),
]
BY_NAME = {c.name: c for c in CHANNELS}
channels = pytest.mark.parametrize("channel", CHANNELS, ids=[c.name for c in CHANNELS])


def alphabet(channel: Channel) -> str:
    return HEX_ALPHABET if channel.encoding == "hex" else BASE64_ALPHABET


def bases(channel: Channel) -> st.SearchStrategy[bytes]:
    return st.sampled_from(channel.bases)


# -- the genuine request, and what counts as the same request ------------------------------------------


def test_every_channel_has_genuine_bodies_that_make_envelopes() -> None:
    # Without these the refusals below would prove nothing: the unmodified requests must be accepted.
    assert len(BY_NAME["line"].bases) == 8  # three recordings, stored and compact, plus two realistic bodies
    assert len(BY_NAME["facebook"].bases) >= 24  # echo-only and receipt-only recordings make no envelopes
    assert len(BY_NAME["gbm-client-token"].bases) >= 16  # typing notices make no envelopes
    assert BY_NAME["gbm-partner-key"].bases == BY_NAME["gbm-client-token"].bases
    assert len(BY_NAME["instagram"].bases) >= 24  # the echo-only recording makes no envelope
    assert len(BY_NAME["whatsapp"].bases) >= 40  # other numbers' and template-status recordings make no envelopes


@channels
def test_each_genuine_request_is_accepted_and_enqueued_once(channel: Channel) -> None:
    for body in channel.bases:
        outcome = deliver(channel, api_event(channel, body, {channel.header: channel.signature(body)}))
        assert_accepted(outcome)
        request = apigw.request(api_event(channel, body, {}))
        parsed = channel.adapter.parse(request, channel.account(), received_at=0, correlation_id="c").envelopes
        assert [e.id for e in outcome.published] == [e.id for e in parsed]


@st.composite
def same_request(draw: Draw, channel: Channel) -> tuple[bytes, dict[str, Any]]:
    """A genuine request dressed differently in ways that do not change what was signed."""
    body = draw(bases(channel))
    name = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in channel.header)
    value = channel.signature(body)
    if channel.case_insensitive_value and draw(st.booleans()):
        value = value.upper()
    value = draw(st.sampled_from(["", " ", "\t"])) + value + draw(st.sampled_from(["", " ", "\t", "  "]))
    noise = draw(
        st.dictionaries(
            st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(lambda n: "signature" not in n),
            st.text(max_size=20),
            max_size=3,
        )
    )
    headers = {**noise, "Content-Type": "application/json", name: value}
    return body, api_event(channel, body, headers, b64=draw(st.booleans()))


@channels
@PROFILE
@given(data=st.data())
def test_the_same_request_dressed_differently_is_accepted(channel: Channel, data: st.DataObject) -> None:
    with case(channel.target):
        _, event_ = data.draw(same_request(channel))
        assert_accepted(deliver(channel, event_))


# -- bodies -------------------------------------------------------------------------------------------


@channels
@PROFILE
@given(data=st.data())
def test_a_changed_body_under_the_genuine_signature_is_refused(channel: Channel, data: st.DataObject) -> None:
    with case(channel.target):
        body = data.draw(bases(channel))
        forged = data.draw(mutated_body(body))
        assume(forged != body)
        headers = {"Content-Type": "application/json", channel.header: channel.signature(body)}
        assert_refused(deliver(channel, api_event(channel, forged, headers, b64=data.draw(st.booleans()))))


# -- signatures ---------------------------------------------------------------------------------------
_ALGORITHMS = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_512", "blake2b", "blake2s"]
_ENCODINGS = ["base64", "hex", "HEX", "base64url", "base64-unpadded", "base32", "base64-of-hex", "mime", "base64-of-empty"]


def encode_variant(digest: bytes, variant: str) -> str:
    if variant in ("base64", "hex"):
        return encode(digest, variant)
    if variant == "HEX":
        return digest.hex().upper()
    if variant == "base64url":
        return base64.urlsafe_b64encode(digest).decode()
    if variant == "base64-unpadded":
        return base64.b64encode(digest).decode().rstrip("=")
    if variant == "base32":
        return base64.b32encode(digest).decode()
    if variant == "base64-of-hex":
        return base64.b64encode(digest.hex().encode()).decode()
    if variant == "mime":
        return base64.encodebytes(digest).decode()
    return base64.b64encode(b"").decode()


@st.composite
def forged_signature(draw: Draw, channel: Channel, body: bytes) -> str:
    genuine = channel.signature(body)
    secret = channel.secrets[channel.signing_secret]
    kind = draw(st.sampled_from(["text", "algorithm", "wrong-key", "encoding", "keyless", "other-body", "garbage", "prefix"]))
    event(f"signature: {kind}")
    if kind == "text":
        return str(draw(mutated_text(genuine, alphabet(channel))))
    if kind == "algorithm":  # the right key, another algorithm or encoding (SHA-1 where it is not allowed among them)
        algorithm = draw(st.sampled_from(_ALGORITHMS))
        prefix = draw(st.sampled_from([channel.prefix, "", f"{algorithm}=", "sha256=", "sha1="]))
        digest = hmac.new(secret.encode(), body, algorithm).digest()
        return str(prefix + encode_variant(digest, draw(st.sampled_from(_ENCODINGS))))
    if kind == "wrong-key":  # another secret of the same account, a near miss of the secret, or anything
        others = [v for k, v in channel.secrets.items() if k != channel.signing_secret]
        near = [secret.upper(), secret + " ", " " + secret, secret[:-1], secret + "\n", "", secret.encode().hex()]
        key = draw(st.one_of(st.sampled_from(others + near), st.text(max_size=40)))
        assume(key != secret)
        return channel.signature(body, key=key)
    if kind == "encoding":
        digest = hmac.new(secret.encode(), body, channel.hash_name).digest()
        return str(channel.prefix + encode_variant(digest, draw(st.sampled_from(_ENCODINGS))))
    if kind == "keyless":
        algorithm = draw(st.sampled_from(_ALGORITHMS))
        return str(channel.prefix + encode_variant(hashlib.new(algorithm, body).digest(), draw(st.sampled_from(_ENCODINGS))))
    if kind == "other-body":  # a genuine signature, replayed onto this body
        other = draw(st.one_of(bases(channel), mutated_body(body)))
        return channel.signature(other)
    if kind == "garbage":
        return str(
            draw(st.one_of(st.sampled_from(["", " ", "null", "undefined", "0", "sha256=", "sha1=", "=="]), st.text(max_size=120)))
        )
    # prefix games around the genuine value
    bare = genuine[len(channel.prefix) :]
    prefix = draw(st.sampled_from(["", "sha1=", "sha256:", "sha256 =", "sha256==", "SHA-256=", "sha512=", "hmac-sha256=", "v0="]))
    return str(prefix + bare if draw(st.booleans()) else channel.prefix + prefix + bare)


@channels
@PROFILE
@given(data=st.data())
def test_a_forged_signature_is_refused(channel: Channel, data: st.DataObject) -> None:
    with case(channel.target):
        body = data.draw(bases(channel))
        forged = data.draw(forged_signature(channel, body))
        assume(not channel.same_signature(forged, channel.signature(body)))
        headers = {"Content-Type": "application/json", channel.header: forged}
        assert_refused(deliver(channel, api_event(channel, body, headers)))


# -- headers ------------------------------------------------------------------------------------------
_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_ 0123456789"


@st.composite
def forged_headers(draw: Draw, channel: Channel, body: bytes) -> dict[str, Any]:
    """Headers without one usable genuine signature: missing, renamed, duplicated with forgeries, folded, moved."""
    genuine = channel.signature(body)
    base = {"Content-Type": "application/json"}
    kind = draw(st.sampled_from(["missing", "renamed", "duplicated", "folded", "elsewhere", "multi-value-only"]))
    event(f"headers: {kind}")
    if kind == "missing":
        return api_event(channel, body, base)
    if kind == "renamed":
        name = draw(mutated_text(channel.header, _NAME_ALPHABET))
        assume(name.lower() != channel.header.lower())
        return api_event(channel, body, {**base, name: genuine})
    if kind == "duplicated":  # several spellings of the header, every value forged: whichever wins must lose
        spellings = draw(
            st.lists(
                st.sampled_from([channel.header, channel.header.lower(), channel.header.upper(), channel.header.title()]),
                min_size=2,
                max_size=4,
                unique=True,
            )
        )
        headers: dict[str, str] = dict(base)
        for spelling in spellings:
            forged = draw(forged_signature(channel, body))
            assume(not channel.same_signature(forged, genuine))
            headers[spelling] = forged
        return api_event(channel, body, headers, multi={k: [v] for k, v in headers.items()})
    if kind == "folded":  # a proxy joined repeated headers into one value
        forged = draw(forged_signature(channel, body))
        parts = draw(st.permutations([genuine, draw(st.sampled_from([forged, genuine]))]))
        value = draw(st.sampled_from([", ", ",", " "])).join(parts)
        assume(not channel.same_signature(value, genuine))  # a forged part that is empty folds into the genuine value
        return api_event(channel, body, {**base, channel.header: value})
    if kind == "elsewhere":
        where = draw(st.sampled_from(["authorization", "x-signature", "query", "signature"]))
        if where == "query":
            return api_event(channel, body, base, query={"signature": genuine, channel.header: genuine})
        value = f"Signature {genuine}" if where == "authorization" and draw(st.booleans()) else genuine
        return api_event(channel, body, {**base, where: value})
    return api_event(channel, body, base, multi={channel.header: [genuine], **{k: [v] for k, v in base.items()}})


@channels
@PROFILE
@given(data=st.data())
def test_headers_without_one_genuine_signature_are_refused(channel: Channel, data: st.DataObject) -> None:
    with case(channel.target):
        body = data.draw(bases(channel))
        assert_refused(deliver(channel, data.draw(forged_headers(channel, body))))


# -- API Gateway's body encoding ----------------------------------------------------------------------


@st.composite
def forged_encoding(draw: Draw, channel: Channel, body: bytes) -> dict[str, Any]:
    """The genuine signature with a body whose transport encoding was changed or lied about."""
    headers = {"Content-Type": "application/json", channel.header: channel.signature(body)}
    encoded = base64.b64encode(body).decode("ascii")
    kind = draw(
        st.sampled_from(
            [
                "flag-without-encoding",
                "unpadded",
                "urlsafe",
                "mime",
                "inner-space",
                "double",
                "not-flagged",
                "mutated",
                "mojibake",
                "empty",
            ]
        )
    )
    event(f"encoding: {kind}")
    if kind == "flag-without-encoding":
        return api_event(channel, body, headers, b64=True, raw_body=body.decode("utf-8"))
    if kind == "unpadded":
        assume(encoded.endswith("="))
        return api_event(channel, body, headers, b64=True, raw_body=encoded.rstrip("="))
    if kind == "urlsafe":
        variant = base64.urlsafe_b64encode(body).decode("ascii")
        assume(variant != encoded)
        return api_event(channel, body, headers, b64=True, raw_body=variant)
    if kind == "mime":
        return api_event(channel, body, headers, b64=True, raw_body=base64.encodebytes(body).decode("ascii"))
    if kind == "inner-space":
        i = draw(st.integers(1, len(encoded) - 1))
        return api_event(
            channel, body, headers, b64=True, raw_body=encoded[:i] + draw(st.sampled_from([" ", "\n", "\t"])) + encoded[i:]
        )
    if kind == "double":
        return api_event(channel, body, headers, b64=True, raw_body=base64.b64encode(encoded.encode()).decode("ascii"))
    if kind == "not-flagged":
        return api_event(channel, body, headers, b64=False, raw_body=encoded)
    if kind == "mutated":
        forged = draw(mutated_body(body))
        assume(forged != body)
        return api_event(channel, forged, headers, b64=True)
    if kind == "mojibake":  # the gateway handed UTF-8 bytes over as Latin-1 text
        text = body.decode("latin-1")
        assume(text.encode("utf-8") != body)
        return api_event(channel, body, headers, b64=False, raw_body=text)
    return api_event(channel, body, headers, b64=True, raw_body="")


@channels
@PROFILE
@given(data=st.data())
def test_a_body_in_another_transport_encoding_is_refused(channel: Channel, data: st.DataObject) -> None:
    with case(channel.target):
        body = data.draw(bases(channel))
        assert_refused(deliver(channel, data.draw(forged_encoding(channel, body))))


# -- platform specifics: Meta's SHA-1 and GET verification, Google's clientToken set-up ------------------
FB = BY_NAME["facebook"]
GBM = BY_NAME["gbm-client-token"]


@PROFILE
@given(body=bases(FB), forged_256=st.one_of(st.none(), st.text(max_size=80)), allow=st.booleans())
def test_facebook_sha1_only_where_allowed_and_never_over_a_bad_sha256(body: bytes, forged_256: str | None, allow: bool) -> None:
    with case("facebook"):
        sha1 = facebook.sign_sha1(FB.secrets["app_secret"], body)
        headers = {"Content-Type": "application/json", "X-Hub-Signature": sha1}
        if forged_256 is not None:
            assume(not FB.same_signature(forged_256, FB.signature(body)) and forged_256.strip())
            headers["X-Hub-Signature-256"] = forged_256
        outcome = deliver(FB, api_event(FB, body, headers), allow_sha1=allow)
        if allow and forged_256 is None:
            assert_accepted(outcome)  # the opted-in legacy path works, so the refusals are about the rules
        else:
            assert_refused(outcome)


@PROFILE
@given(data=st.data())
def test_facebook_verification_get_needs_the_exact_verify_token(data: st.DataObject) -> None:
    with case("facebook"):
        token = FB.secrets["verify_token"]
        challenge = data.draw(st.text("0123456789abcdef", min_size=6, max_size=12))
        forged = data.draw(st.one_of(mutated_text(token, "abcdefghijklmnopqrstuvwxyz-0123456789"), st.text(max_size=30)))
        mode = data.draw(st.sampled_from(["subscribe", "subscribe", "Subscribe", "unsubscribe", ""]))
        query = {"hub.mode": mode, "hub.verify_token": forged, "hub.challenge": challenge}
        genuine = forged == token and mode == "subscribe"
        outcome = deliver(FB, api_event(FB, b"", {}, method="GET", query=query))
        if genuine:
            assert (outcome.response.status, outcome.response.body) == (200, challenge)
        else:
            assert_refused(outcome)
            assert token not in outcome.response.body
        assert outcome.published == []


@PROFILE
@given(data=st.data())
def test_gbm_setup_needs_the_exact_client_token(data: st.DataObject) -> None:
    with case("gbm"):
        token = GBM.secrets["client_token"]
        forged = data.draw(
            st.one_of(mutated_text(token, "abcdefghijklmnopqrstuvwxyz-0123456789"), st.text(max_size=30), st.just(token))
        )
        secret = data.draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8, max_size=16))
        body = json.dumps({"clientToken": forged, "secret": secret}).encode()
        outcome = deliver(GBM, api_event(GBM, body, {"Content-Type": "application/json"}))
        if forged == token:
            assert (outcome.response.status, outcome.response.body) == (200, secret)
        else:
            assert_refused(outcome)
            assert secret not in outcome.response.body and token not in outcome.response.body
        assert outcome.published == []


# -- accounts whose secret is missing, empty or blank ---------------------------------------------------
# Whitespace a stored secret could hold instead of a value: an empty HMAC key is one anybody can use.
BLANKS = st.one_of(st.sampled_from(["", " ", "\t", "\n", "\r\n", "  ", "\u00a0", "\u3000"]), st.text(" \t\r\n", max_size=6))


def hollow(secrets: Mapping[str, str], name: str, value: str | None) -> dict[str, str]:
    """``secrets`` with ``name`` blank (``value``) or, for None, not there at all."""
    out = {k: v for k, v in secrets.items() if k != name}
    if value is not None:
        out[name] = value
    return out


@channels
@PROFILE
@given(data=st.data())
def test_an_account_with_a_hollow_signing_secret_accepts_nothing(channel: Channel, data: st.DataObject) -> None:
    with case(channel.target):
        value = data.draw(st.one_of(st.none(), BLANKS), label="stored secret")
        event(f"hollow secret: {'missing' if value is None else 'empty' if value == '' else 'blank'}")
        hollowed = replace(channel, secrets=hollow(channel.secrets, channel.signing_secret, value))
        body = data.draw(bases(channel))
        # Signed as an attacker would: with the hollow value itself, the empty key, or any short key.
        key = data.draw(st.one_of(st.just(value or ""), st.just(""), BLANKS, st.text(max_size=8)), label="signing key")
        headers = {"Content-Type": "application/json", channel.header: channel.signature(body, key=key)}
        meta = isinstance(channel.adapter, MetaAdapter)
        if meta and data.draw(st.booleans(), label="legacy sha1"):  # the account allows SHA-1 below
            headers = {"Content-Type": "application/json", "X-Hub-Signature": sign_sha1(key, body)}
        options: dict[str, Any] = {"allow_sha1": True} if meta else {}
        assert_refused(deliver(hollowed, api_event(hollowed, body, headers, b64=data.draw(st.booleans())), **options))


@PROFILE
@given(data=st.data())
def test_facebook_get_never_answers_for_a_hollow_verify_token(data: st.DataObject) -> None:
    with case("facebook"):
        value = data.draw(st.one_of(st.none(), BLANKS), label="stored verify token")
        hollowed = replace(FB, secrets=hollow(FB.secrets, "verify_token", value))
        challenge = data.draw(st.text("0123456789", min_size=4, max_size=10))
        query = {"hub.mode": "subscribe", "hub.challenge": challenge}
        presented = data.draw(st.one_of(st.none(), st.just(value or ""), BLANKS, st.text(max_size=8)), label="hub.verify_token")
        if presented is not None:
            query["hub.verify_token"] = presented
        outcome = deliver(hollowed, api_event(hollowed, b"", {}, method="GET", query=query))
        assert_refused(outcome)
        assert outcome.response.status == 403
        assert outcome.response.body != challenge


@PROFILE
@given(data=st.data())
def test_gbm_setup_never_echoes_for_a_hollow_client_token(data: st.DataObject) -> None:
    with case("gbm"):
        value = data.draw(st.one_of(st.none(), BLANKS), label="stored client token")
        hollowed = replace(GBM, secrets=hollow(GBM.secrets, "client_token", value))
        presented = data.draw(st.one_of(st.just(value or ""), st.just(""), BLANKS, st.text(max_size=8)), label="clientToken")
        secret = data.draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8, max_size=16))
        body = json.dumps({"clientToken": presented, "secret": secret}).encode()
        outcome = deliver(hollowed, api_event(hollowed, body, {"Content-Type": "application/json"}))
        assert_refused(outcome)
        assert outcome.response.status == 401
        assert secret not in outcome.response.body


# -- nesting to any depth ---------------------------------------------------------------------------------


@st.composite
def nested_value(draw: Draw) -> tuple[str, int]:
    """A JSON value nested ``depth`` levels deep, arrays and objects mixed, and its depth."""
    # The simplest draw (what hypothesis tries first) is the dangerous one: deeper than the limit.
    depth = draw(st.one_of(st.integers(safe_json.MAX_DEPTH + 1, 5000), st.integers(1, 40), st.sampled_from([999, 1000, 1001])))
    kinds = draw(st.sampled_from(["arrays", "objects", "mixed"]))
    # Mixed nesting draws the first levels and alternates below them (thousands of draws would only slow it).
    drawn = draw(st.lists(st.booleans(), min_size=min(depth, 64), max_size=min(depth, 64))) if kinds == "mixed" else []
    objects = [
        drawn[level] if level < len(drawn) else (level % 2 == 1 if kinds == "mixed" else kinds == "objects")
        for level in range(depth)
    ]
    opens = ['{"k":' if as_object else "[" for as_object in objects]
    closes = ["}" if as_object else "]" for as_object in objects]
    inner = draw(st.sampled_from(["0", '"x"', "null", "[]", "{}"]))
    return "".join(opens) + inner + "".join(reversed(closes)), depth


@channels
@PROFILE
@given(data=st.data())
def test_a_body_nested_to_any_depth_never_answers_5xx(channel: Channel, data: st.DataObject) -> None:
    with case(channel.target):
        value, depth = data.draw(nested_value(), label="nested value")
        event(f"nesting: {'deep' if depth > safe_json.MAX_DEPTH else 'shallow'}")
        where = data.draw(st.sampled_from(["field", "whole", "handshake"]), label="where")
        if where == "field":  # a genuine body with one more field holding the nested value
            text = data.draw(bases(channel)).decode("utf-8").rstrip()
            assume(text.endswith("}"))
            body = (text[:-1] + ',"deep":' + value + "}").encode("utf-8")
        elif where == "whole":
            body = value.encode("utf-8")
        else:  # the shape of GBM's unsigned set-up body, as small as Google's
            body = ('{"clientToken":"' + GBM.secrets["client_token"] + '","secret":' + value + "}").encode("utf-8")
        signed = data.draw(st.sampled_from([True, False]), label="signed")
        headers = {"Content-Type": "application/json"} | ({channel.header: channel.signature(body)} if signed else {})
        outcome = deliver(channel, api_event(channel, body, headers, b64=data.draw(st.booleans())))
        status = outcome.response.status
        assert status < 500, outcome.response
        if status != 200 or depth > safe_json.MAX_DEPTH:
            assert outcome.published == [] and outcome.publish_calls == 0
        if depth > safe_json.MAX_DEPTH:
            assert 400 <= status < 500, outcome.response  # too deep to record: refused, whoever signed it
            if signed:
                assert outcome.response.status == 400
                assert json.loads(outcome.response.body)["error"] == "bad_request"
