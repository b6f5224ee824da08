"""Key endpoint parsing, caching, rotation and the fetch limits (through a real local HTTP server)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from switchboard.chat_auth import ChatAuthError, FetchError, KeyFetchError, KeyStore, validate_jwt
from switchboard.chat_auth.keys import parse_key_document
from switchboard.outbound_http import AddressPolicy

from ._support import KEY_URL, NOW, Clock, FakeGetter, KeyPair, claims, jwt_setting, key_array, sign

# The Dynamics 365 doc's multi-key sample (protocols.md 4.2) with its missing quote fixed.
DOC_B64 = (
    "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0NCk1JSUJJakFOQmdrcWhraUc5dzBCQVFFRkFBT0NBUThBTUlJQkNnS0NBUUVBbjFLdXhtSEh3V3hjelZSWGRBVmMNCnBEaFZw"
    "a0FnYklhTGZBUWc1bFpvemZqc29vcWRGWkl0VlFMdmRERWFVeDNqTytrTkxZM0JFRnBYVDZTN3ZNZCsNCnZoM2hpMDNsQ1dINnNCTWtaSWtuUUliMnFpekFsT0diU2EvK3Jr"
    "UElnYnpXQjRpT1QyWVhyOVB4bXR5d2o4WUINCnYram55VU5DSzMyZy9FYWsvM0k3YW1vZ2pJY0JISjNFTjVuQWJBMExVVnJwMW5DODJmeEVPOHNJTzNYdjlWNVUNCnc5QnVT"
    "VVFRSmtMejNQYVI5WTdRZUEyNW5LUGtqTXZ2Y0UxVU5oeVpIYlNLbmorSitkZmFjb1hsSGtyMEdGTXYNCldkSDZqR0pWcGNQMHBkNjFOa3JKa2c0aStheThwS2ZqdjNUOHN3"
    "NWdaVHFweFFaaitVRWxqaVM0SHRPTlhkNlENCnZRSURBUUFCDQotLS0tLUVORCBQVUJMSUMgS0VZLS0tLS0NCg=="
)
DOC_KIDS = ("qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp4in7hu4=", "qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp__valid=")
DOC_EXPIRY = 1608495423
DOC_SAMPLE = json.dumps([{"kid": k, "publicKey": DOC_B64, "expiry": DOC_EXPIRY} for k in DOC_KIDS])


# -- parsing --------------------------------------------------------------------------------------


def test_doc_sample_parses_with_crlf_pems() -> None:
    assert b"\r\n" in base64.b64decode(DOC_B64)
    keyset = parse_key_document(DOC_SAMPLE.encode())
    assert keyset.is_array
    assert set(keyset.by_kid) == set(DOC_KIDS)
    assert keyset.lookup(DOC_KIDS[0], DOC_EXPIRY - 1) is not None
    assert keyset.lookup(DOC_KIDS[0], DOC_EXPIRY) is None  # expired keys are never returned
    assert keyset.lookup(None, DOC_EXPIRY - 1) is None


def test_doc_sample_as_published_is_not_json() -> None:
    published = DOC_SAMPLE.replace(f'"publicKey": "{DOC_B64}"', f'"publicKey": {DOC_B64}"', 1)
    with pytest.raises(ValueError, match="does not parse"):
        parse_key_document(published.encode())


def test_single_pem_with_crlf_and_bom(pair_a: KeyPair) -> None:
    body = b"\xef\xbb\xbf" + pair_a.public_pem.replace(b"\n", b"\r\n") + b"\r\n"
    keyset = parse_key_document(body)
    assert not keyset.is_array
    assert keyset.lookup(None, NOW) is not None


def test_bad_array_entries_are_skipped(pair_a: KeyPair) -> None:
    good = {"kid": "good", "publicKey": pair_a.crlf_b64(), "expiry": NOW + 60}
    body = json.dumps(
        [
            good,
            "not an object",
            {"kid": "nokey", "expiry": NOW + 60},
            {"kid": "notb64", "publicKey": "@@@", "expiry": NOW + 60},
            {"kid": "badexp", "publicKey": pair_a.crlf_b64(), "expiry": "soon"},
            {"kid": "", "publicKey": pair_a.crlf_b64(), "expiry": NOW + 60},
            {"kid": "raw-pem", "publicKey": pair_a.public_pem.decode(), "expiry": NOW + 60},
        ]
    ).encode()
    assert set(parse_key_document(body).by_kid) == {"good", "raw-pem"}


def test_duplicate_kids_keep_the_longest_lived(pair_a: KeyPair, pair_b: KeyPair) -> None:
    keyset = parse_key_document(key_array(("k", pair_a, NOW + 10), ("k", pair_b, NOW + 1000)))
    found = keyset.lookup("k", NOW)
    assert found is not None
    assert found.public_numbers() == pair_b.private.public_key().public_numbers()


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"hello",
        b"{}",
        b"[1,",
        b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
        b"\xff\xfe",
    ],
)
def test_unusable_documents(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_key_document(body)


def test_non_rsa_and_short_keys_refused() -> None:
    with pytest.raises(ValueError, match="not an RSA key"):
        parse_key_document(_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ValueError, match="1024 bits"):
        parse_key_document(_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))  # noqa: S505 - the point of the test


# -- caching and rotation -------------------------------------------------------------------------


def test_rotation_new_kid_accepted_after_refetch_rate_limited(
    getter: FakeGetter, store: KeyStore, clock: Clock, pair_a: KeyPair, pair_b: KeyPair
) -> None:
    setting = jwt_setting()
    getter.bodies[KEY_URL] = key_array(("old", pair_a, NOW + 86400))
    assert validate_jwt(sign(pair_a, kid="old"), setting, store).kid == "old"
    assert getter.count() == 1

    # The portal publishes a new key and starts signing with it.
    getter.bodies[KEY_URL] = key_array(("old", pair_a, NOW + 86400), ("new", pair_b, NOW + 86400))
    token = sign(pair_b, claims(exp=NOW + 86400), kid="new")
    clock.t = NOW + 30  # within a minute of the last fetch: no refetch
    with pytest.raises(ChatAuthError) as info:
        validate_jwt(token, setting, store)
    assert info.value.code == "unknown_key"
    assert getter.count() == 1

    clock.t = NOW + 60  # a minute later: the unknown kid earns one refetch
    assert validate_jwt(token, setting, store).kid == "new"
    assert getter.count() == 2

    # A flood of invented kids costs at most one fetch a minute.
    for step in range(1, 6):
        clock.t = NOW + 60 + step
        with pytest.raises(ChatAuthError):
            validate_jwt(sign(pair_b, claims(exp=NOW + 86400), kid=f"made-up-{step}"), setting, store)
    assert getter.count() == 2
    clock.t = NOW + 125
    with pytest.raises(ChatAuthError):
        validate_jwt(sign(pair_b, claims(exp=NOW + 86400), kid="made-up-again"), setting, store)
    assert getter.count() == 3


def test_single_pem_rotation_refetches_after_signature_failure(
    getter: FakeGetter, store: KeyStore, clock: Clock, pair_a: KeyPair, pair_b: KeyPair
) -> None:
    setting = jwt_setting()
    getter.bodies[KEY_URL] = pair_a.public_pem
    validate_jwt(sign(pair_a), setting, store)
    getter.bodies[KEY_URL] = pair_b.public_pem
    clock.t = NOW + 10
    with pytest.raises(ChatAuthError) as info:  # rate-limited: the cached old key still answers
        validate_jwt(sign(pair_b), setting, store)
    assert info.value.code == "invalid_signature"
    assert getter.count() == 1
    clock.t = NOW + 61
    assert validate_jwt(sign(pair_b), setting, store).sub
    assert getter.count() == 2


def test_cache_max_age_and_stale_keys_survive_an_outage(getter: FakeGetter, clock: Clock, pair_a: KeyPair) -> None:
    store = KeyStore(getter=getter, clock=clock, max_age=300)
    getter.bodies[KEY_URL] = pair_a.public_pem
    store.key_for(KEY_URL, None)
    clock.t = NOW + 299
    store.key_for(KEY_URL, None)
    assert getter.count() == 1
    getter.bodies[KEY_URL] = FetchError("the endpoint answered HTTP 503")
    clock.t = NOW + 300
    assert store.key_for(KEY_URL, None) is not None  # refetch failed: stale key kept
    assert getter.count() == 2
    clock.t = NOW + 330
    store.key_for(KEY_URL, None)
    assert getter.count() == 2  # and the failing endpoint is not hammered


def test_failed_first_fetch_backs_off(getter: FakeGetter, clock: Clock, pair_a: KeyPair) -> None:
    store = KeyStore(getter=getter, clock=clock, failure_backoff=5)
    getter.bodies[KEY_URL] = ConnectionError("boom")
    with pytest.raises(KeyFetchError) as info:
        store.key_for(KEY_URL, None)
    assert info.value.code == "unknown_key"
    clock.t = NOW + 1
    with pytest.raises(KeyFetchError, match="moments ago"):
        store.key_for(KEY_URL, None)
    assert getter.count() == 1
    getter.bodies[KEY_URL] = pair_a.public_pem
    clock.t = NOW + 5
    assert store.key_for(KEY_URL, None) is not None


def test_cache_is_per_url(getter: FakeGetter, store: KeyStore, pair_a: KeyPair, pair_b: KeyPair) -> None:
    other = "https://other.example.com/keys"
    getter.bodies[KEY_URL] = pair_a.public_pem
    getter.bodies[other] = pair_b.public_pem
    validate_jwt(sign(pair_a), jwt_setting(), store, now=NOW)
    validate_jwt(sign(pair_b), jwt_setting(url=other), store, now=NOW)
    with pytest.raises(ChatAuthError) as info:
        validate_jwt(sign(pair_b), jwt_setting(), store, now=NOW)
    assert info.value.code == "invalid_signature"


def test_oversized_body_from_a_getter_is_refused(getter: FakeGetter, store: KeyStore) -> None:
    getter.bodies[KEY_URL] = b"x" * (64 * 1024 + 1)
    with pytest.raises(KeyFetchError):
        store.key_for(KEY_URL, None)
    assert getter.calls[0][1:] == (3.0, 64 * 1024)  # the limits handed to the getter


def test_timeout_above_three_seconds_refused() -> None:
    with pytest.raises(ValueError):
        KeyStore(timeout=10)


# -- scheme guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://portal.example.com/keys", "file:///etc/passwd", "ftp://x/keys", "gopher://x", "https:///nohost", "keys"]
)
def test_only_https_by_default(getter: FakeGetter, store: KeyStore, url: str) -> None:
    with pytest.raises(KeyFetchError) as info:
        store.key_for(url, None)
    assert info.value.code == "unknown_key"
    assert getter.calls == []


def test_http_allowed_when_asked(getter: FakeGetter, clock: Clock, pair_a: KeyPair) -> None:
    url = "http://127.0.0.1:9/keys"
    getter.bodies[url] = pair_a.public_pem
    assert KeyStore(getter=getter, clock=clock, allow_http=True).key_for(url, None) is not None
    with pytest.raises(KeyFetchError):
        KeyStore(getter=getter, clock=clock, allow_http=True).key_for("file:///etc/passwd", None)


# -- the default getter against a real local server -----------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        try:
            if self.path == "/slow":
                time.sleep(1.5)
            if self.path == "/endless":  # no Content-Length: only streaming enforcement can stop it
                self.send_response(200)
                self.end_headers()
                while True:
                    self.wfile.write(b"A" * 8192)
            if self.path == "/drip":
                self.send_response(200)
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"-")
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            if self.path == "/dribble-headers":  # a status line, then one header line every 0.2 s for 3 s
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for i in range(15):
                    self.wfile.flush()
                    time.sleep(0.2)
                    self.wfile.write(f"X-Slow-{i}: 1\r\n".encode())
                self.wfile.write(b"Content-Length: 0\r\n\r\n")
                self.close_connection = True
                return
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/key")
                self.end_headers()
                return
            status, body = self.routes.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server(pair_a: KeyPair) -> Iterator[str]:
    _Handler.routes = {
        "/key": (200, pair_a.public_pem),
        "/big": (200, b"x" * 70000),
        "/error": (500, b"oops"),
    }
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _local_store(timeout: float = 0.5) -> KeyStore:
    return KeyStore(allow_http=True, timeout=timeout)


def test_default_getter_reads_a_key(server: str, pair_a: KeyPair) -> None:
    assert validate_jwt(sign(pair_a), jwt_setting(url=f"{server}/key"), _local_store(), now=NOW).sub


def test_default_getter_refuses_http_without_allow_http(server: str) -> None:
    with pytest.raises(KeyFetchError, match="only https"):
        KeyStore().key_for(f"{server}/key", None)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/big", "larger than 65536 bytes"),
        ("/endless", "larger than 65536 bytes"),
        ("/slow", "within 0.5 s"),
        ("/drip", "within 0.5 s"),
        ("/dribble-headers", "within 0.5 s"),
        ("/error", "HTTP 500"),
        ("/redirect", "HTTP 302"),
        ("/missing", "HTTP 404"),
    ],
)
def test_default_getter_limits(server: str, path: str, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(KeyFetchError, match=why) as info:
        _local_store().key_for(f"{server}{path}", None)
    assert info.value.code == "unknown_key"
    assert time.monotonic() - started < 1.4  # bounded by the deadline, not by the server


def test_default_getter_connection_refused() -> None:
    with pytest.raises(KeyFetchError, match="connection failed"):
        _local_store().key_for("http://127.0.0.1:9/keys", None)


# -- the address policy --------------------------------------------------------------------------------


def test_the_deployed_store_refuses_loopback_by_address_and_by_name(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    with pytest.raises(KeyFetchError, match="not an address the deployed policy allows"):
        KeyStore().key_for(f"https://127.0.0.1:{port}/key", None)
    with pytest.raises(KeyFetchError, match=r"localhost resolves to .*not an address the deployed policy allows"):
        KeyStore().key_for(f"https://localhost:{port}/key", None)


def test_the_store_fetches_under_its_own_policy(server: str, pair_a: KeyPair) -> None:
    """A policy that admits exactly 127.0.0.1: the key server there is read, the same port on 127.0.0.2 is not."""
    only = AddressPolicy("only-127.0.0.1", schemes=frozenset({"http"}), allow=(ip_network("127.0.0.1/32"),))
    assert KeyStore(policy=only, timeout=1.0).key_for(f"{server}/key", None) is not None
    internal = server.replace("127.0.0.1", "127.0.0.2")
    with pytest.raises(KeyFetchError, match=r"127\.0\.0\.2 is not an address the only-127\.0\.0\.1 policy allows"):
        KeyStore(policy=only, timeout=1.0).key_for(f"{internal}/key", None)
