"""Chat token validation against PyJWT's bare decode, measured in the same run.

The floor is the least any correct RS256 check costs: ``jwt.decode(token, key, algorithms=["RS256"])``
with the public key already parsed (the very key object our cache holds). Ours is
:func:`switchboard.chat_auth.validate_jwt` with a warm key cache (as in a warm Lambda): header
pre-check, key lookup by kid, the signature, every claim rule of the interface and ``lwicontexts``
parsed into context variables. The token is the
Dynamics 365 documentation's example payload with a ``kid``, served from a JSON-array key endpoint.
Goal: ratio <= 1.1.

Run: .venv/bin/python bench/jwt_validate.py [--rounds N] [--batch N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._support import interleaved

GOAL = 1.1
KEY_URL = "https://portal.example.com/_services/auth/publickey"


def cases(batch: int) -> tuple[Callable[[int], Any], Callable[[int], Any]]:
    import base64

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from switchboard.chat_auth import KeyStore, validate_jwt
    from switchboard.settings import AuthSetting

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = "qWO4EaKT1xRO7JC/oqALz6DCVr41B/qL0Hqp4in7hu4="  # the documentation's kid: opaque, with '/' and '='
    now = int(time.time())
    document = json.dumps(
        [{"kid": kid, "publicKey": base64.b64encode(pem.replace(b"\n", b"\r\n")).decode(), "expiry": now + 86400}]
    ).encode()
    contact = "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"
    payload = {
        "sub": contact,
        "lwicontexts": json.dumps({"msdyn_cartvalue": "10000", "msdyn_isvip": "false", "portalcontactid": contact}),
        "iat": now - 10,
        "iss": "contosohelp.com",
        "exp": now + 3600,
        "nbf": now - 10,
    }
    token = jwt.encode(payload, private, algorithm="RS256", headers={"kid": kid})
    setting = AuthSetting(id="portal", type="jwt", options={"public_key_url": KEY_URL, "issuer": "contosohelp.com"})
    keys = KeyStore(getter=lambda url, timeout, max_bytes: document)
    checked = validate_jwt(token, setting, keys)  # fills the key cache, and proves ours accepts what the floor does
    assert checked.sub == contact and checked.context["msdyn_cartvalue"] == "10000"
    public = keys.key_for(KEY_URL, kid)  # the floor gets the very key object ours has cached
    assert jwt.decode(token, public, algorithms=["RS256"])["sub"] == contact

    def floor(_: int) -> None:
        for _ in range(batch):
            jwt.decode(token, public, algorithms=["RS256"])

    def ours(_: int) -> None:
        for _ in range(batch):
            validate_jwt(token, setting, keys)

    return floor, ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds per candidate (interleaved)")
    parser.add_argument("--batch", type=int, default=50, help="validations per round")
    args = parser.parse_args()
    floor, ours = cases(args.batch)
    samples = interleaved({"floor": floor, "ours": ours}, args.rounds, warmup=10)
    floor_s = statistics.median(samples["floor"]) / args.batch
    ours_s = statistics.median(samples["ours"]) / args.batch
    ratio = ours_s / floor_s
    print(
        f"jwt_validate ours {1 / ours_s:8.0f}/s ({ours_s * 1e6:6.1f} us)   "
        f"PyJWT decode {1 / floor_s:8.0f}/s ({floor_s * 1e6:6.1f} us)   ratio {ratio:.2f}x   (goal <= {GOAL}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
