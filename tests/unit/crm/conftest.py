"""Fixtures for the CRM adapter tests (helpers and recordings live in crm_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses
from crm_support import make_envelope

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
