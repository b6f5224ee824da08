"""Secrets through Powertools Parameters, which caches each value (names: :mod:`switchboard.secret_names`).

Two failures are kept apart because their callers answer them differently: a secret that is not
there (or not a JSON object) is a set-up error that no retry fixes (:class:`SecretMissing`), while
Secrets Manager failing to answer is worth another delivery (:class:`StoreUnavailable`). Powertools
wraps every SDK error in one ``GetParameterError``, so the SDK's error code is read from the chain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from switchboard.aws.clients import client
from switchboard.errors import SecretMissing, StoreUnavailable

# Secrets Manager's answers for a secret that is not there to read: never created, or deleted (an
# InvalidRequestException is what a secret scheduled for deletion answers to GetSecretValue).
MISSING_CODES: Final = frozenset({"ResourceNotFoundException", "InvalidRequestException"})


class PowertoolsSecrets:
    def __init__(self, *, max_age: int | None = None) -> None:
        self.max_age = int(os.environ.get("SWITCHBOARD_SECRETS_MAX_AGE", "300")) if max_age is None else max_age

        self._provider: Any = None

    def get(self, name: str) -> Mapping[str, Any]:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

        if self._provider is None:
            self._provider = SecretsProvider(boto3_client=client("secretsmanager"))
        try:
            value = self._provider.get(name, transform="json", max_age=self.max_age)
        except TransformParameterError:
            raise SecretMissing(f"secret {name} is not JSON") from None  # never the value, nor the parser's excerpt of it
        except GetParameterError as exc:
            # The messages name the secret and the SDK's error code, never a value.
            code = error_code(exc)
            if code in MISSING_CODES:
                raise SecretMissing(f"secret {name} is not stored ({code})") from None
            raise StoreUnavailable(f"secret {name} could not be read: {code or 'no answer'}") from None
        if not isinstance(value, dict):
            raise SecretMissing(f"secret {name} is not a JSON object")
        return value


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of the SDK error behind ``exc`` (Powertools raises its own inside ``except``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code")
            if isinstance(code, str) and code:
                return code
        current = current.__cause__ or current.__context__
    return None
