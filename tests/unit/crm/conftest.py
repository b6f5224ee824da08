"""Fixtures for the CRM tests (helpers and recordings live in crm_support.py; the fake CRM in tests/fakes/crm.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses
from crm_support import make_envelope

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: `fakes.crm`, as the e2e suite imports it

from fakes.crm import FakeCrm

from switchboard.crm.base import ConversationRef
from switchboard.envelope import Attachment, Customer, Envelope


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def session() -> requests.Session:
    return requests.Session()


@pytest.fixture
def conversation() -> ConversationRef:
    return ConversationRef(
        conversation_id="conv-0001",
        channel="line",
        account_id="line-tokyo",
        customer=Customer(id="U4af4980629c0f8a1e2b3", name="Taro Yamada", locale="ja"),
        contact_id=None,
        queue="billing",
        priority=10,
    )


@pytest.fixture
def first_message() -> Envelope:
    return make_envelope()


@pytest.fixture
def later_message() -> Envelope:
    return make_envelope(id="line:line-tokyo:msg-101", text="It arrived broken", sent_at=1751339105000)


@pytest.fixture
def image_message() -> Envelope:
    return make_envelope(
        id="line:line-tokyo:msg-102",
        kind="image",
        text=None,
        attachments=(Attachment(type="image", url="https://cdn.example.com/img/abc.jpg"),),
    )


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    """A private moto account holding the template's tables and queues; the functions' environment points at them.

    One per test module (creating them costs most of a second); tests keep apart by using their own ids.
    """
    import boto3
    from moto import mock_aws

    from infra.local.template import create_resources, plan
    from switchboard.aws import clients

    root = Path(__file__).resolve().parents[3]
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "SWITCHBOARD_LAZY_CLIENTS": "1",
        }.items():
            monkeypatch.setenv(name, value)
        clients.client.cache_clear()
        with mock_aws():
            p = plan(root / "template.yaml", stack="unit", endpoint="https://sqs.us-east-1.amazonaws.com", visibility_timeout=30)
            urls = create_resources(p)
            env: dict[str, str] = dict(p.functions["CrmWriterFunction"].env)
            for key, value in list(env.items()):
                for logical, url in urls.items():
                    if value.endswith("/" + p.queues[logical]["name"]):
                        env[key] = url
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            boto3.client("sqs")
            yield env
        clients.client.cache_clear()


@pytest.fixture
def fake_crm() -> Iterator[FakeCrm]:
    with FakeCrm() as crm:
        yield crm
        assert crm.errors == [], crm.errors
