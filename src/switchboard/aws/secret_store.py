"""Secrets through Powertools Parameters, which caches each value (names: :mod:`switchboard.secret_names`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from switchboard.aws.clients import client


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
        except (GetParameterError, TransformParameterError) as exc:
            # The message names the secret, never its value.
            raise KeyError(f"secret {name} could not be read") from exc
        if not isinstance(value, dict):
            raise KeyError(f"secret {name} is not a JSON object")
        return value
