"""One error vocabulary: the stage runner decides by class, never by an attribute's name."""

from __future__ import annotations

import pytest

from switchboard import outbound_http
from switchboard.aws.sqs_stage import is_permanent, retry_delay
from switchboard.crm.base import CrmAuthError, CrmRateLimited, CrmRejected, CrmRetryable
from switchboard.envelope import EnvelopeError
from switchboard.errors import ConfigurationError, Permanent, Retryable, SecretMissing, StoreUnavailable


class DuckFinal(Exception):
    retryable = False  # what the runner used to read; a class outside the vocabulary is not final for it


class DuckAfter(Exception):
    retry_after = 30


@pytest.mark.parametrize(
    "exc",
    [
        EnvelopeError("not an envelope"),
        CrmRejected("422: email is invalid", status=422),
        SecretMissing("secret x is not stored"),
        outbound_http.FinalStatus("HTTP 404", status=404),
        outbound_http.Refused("private address"),
    ],
)
def test_permanent_failures_are_dead_lettered_at_once(exc: Exception) -> None:
    assert isinstance(exc, Permanent) and is_permanent(exc)


@pytest.mark.parametrize(
    "exc",
    [
        CrmRetryable("503", status=503),
        CrmAuthError("401 after refresh", status=401),  # apply fixes it while the message waits
        StoreUnavailable("throttled"),
        ConfigurationError("account 'x' is not configured"),
        outbound_http.TimedOut("timed out"),
        DuckFinal("a bug nobody classified"),
        KeyError("a bug"),
    ],
)
def test_everything_else_is_retried(exc: Exception) -> None:
    assert not is_permanent(exc)


def test_retry_after_comes_from_retryable_errors_only() -> None:
    assert retry_delay(CrmRateLimited("429", retry_after=42), 1, base=1, cap=60) == 42
    assert retry_delay(Retryable("slow down", retry_after=7.2), 1, base=1, cap=60) == 8
    assert retry_delay(DuckAfter("not ours"), 3, base=1, cap=60) == 4  # backoff: 1 * 2^(3-1)
    assert retry_delay(Retryable("no hint"), 2, base=1, cap=60) == 2


def test_messages_are_kept_for_people() -> None:
    assert CrmRejected("422: email is invalid", status=422).message == "422: email is invalid"
    assert SecretMissing("secret x is not stored").message == "secret x is not stored"
