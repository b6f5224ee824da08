"""Secrets Manager through the SecretReader port: a missing secret and an unavailable store are told apart.

The edge refuses a request whose account's secret is missing (a set-up error no redelivery fixes)
but answers 503 when Secrets Manager could not answer (worth another delivery). Before, both came
out of the store as the same KeyError.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from switchboard.aws import secret_store
from switchboard.aws.secret_store import PowertoolsSecrets
from switchboard.errors import Permanent, Retryable, SecretMissing, StoreUnavailable

NAME = "switchboard/unit/account/line/line-tokyo"
VALUE = "do-not-echo-4f3e2d1c"


def test_a_stored_json_object_is_returned(aws: None) -> None:
    boto3.client("secretsmanager").create_secret(Name=NAME, SecretString=json.dumps({"channel_secret": VALUE}))
    assert PowertoolsSecrets(max_age=0).get(NAME) == {"channel_secret": VALUE}


def test_a_secret_never_created_is_secret_missing(aws: None) -> None:
    with pytest.raises(SecretMissing) as caught:
        PowertoolsSecrets(max_age=0).get(NAME)
    assert isinstance(caught.value, Permanent)  # a set-up error: no redelivery can fix it
    assert NAME in str(caught.value)
    assert "ResourceNotFoundException" in str(caught.value)


def test_a_deleted_secret_is_secret_missing(aws: None) -> None:
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name=NAME, SecretString=json.dumps({"channel_secret": VALUE}))
    sm.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)
    with pytest.raises(SecretMissing):
        PowertoolsSecrets(max_age=0).get(NAME)


@pytest.mark.parametrize("stored", [f"not json {VALUE}", json.dumps([VALUE]), json.dumps(VALUE)])
def test_a_secret_that_is_not_a_json_object_is_secret_missing_without_its_value(aws: None, stored: str) -> None:
    boto3.client("secretsmanager").create_secret(Name=NAME, SecretString=stored)
    with pytest.raises(SecretMissing) as caught:
        PowertoolsSecrets(max_age=0).get(NAME)
    assert VALUE not in str(caught.value)
    assert caught.value.__cause__ is None  # nor in a chained parser error a traceback would print


def stubbed(code: str) -> Any:
    sm = boto3.client("secretsmanager", config=Config(retries={"max_attempts": 1}))
    stubber = Stubber(sm)
    stubber.add_client_error("get_secret_value", service_error_code=code, http_status_code=400)
    stubber.activate()
    return sm


@pytest.mark.parametrize(
    "code",
    ["ThrottlingException", "InternalServiceError", "AccessDeniedException", "DecryptionFailure", "KMSAccessDeniedException"],
)
def test_secrets_manager_failing_to_answer_is_store_unavailable_not_missing(
    aws: None, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    monkeypatch.setattr(secret_store, "client", lambda service: stubbed(code))
    with pytest.raises(StoreUnavailable) as caught:
        PowertoolsSecrets(max_age=0).get(NAME)
    assert isinstance(caught.value, Retryable) and not isinstance(caught.value, SecretMissing)
    assert code in str(caught.value)


def test_an_unreachable_secrets_manager_is_store_unavailable(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = boto3.client(
        "secretsmanager",
        endpoint_url="http://127.0.0.1:1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=0.5, read_timeout=0.5),
    )
    monkeypatch.setattr(secret_store, "client", lambda service: unreachable)
    with pytest.raises(StoreUnavailable, match="no answer"):
        PowertoolsSecrets(max_age=0).get(NAME)
