"""The profile item: names from the route stage and contact ids from the crm stage never overwrite each other."""

from __future__ import annotations

from switchboard.aws.conversation_store import DynamoConversations, DynamoProfiles


def test_unknown_customer_has_no_profile(conversations: DynamoConversations) -> None:
    assert DynamoProfiles(conversations.table).profile("line:acct:U1") is None


def test_name_and_contacts_are_kept_side_by_side(conversations: DynamoConversations) -> None:
    profiles = DynamoProfiles(conversations.table)
    profiles.set_contact("line:acct:U1", "zendesk", "9001")
    profiles.set_name("line:acct:U1", "Aiko Tanaka", checked_at=1_700_000_000_000)
    profiles.set_contact("line:acct:U1", "kustomer", "k-77")

    profile = profiles.profile("line:acct:U1")
    assert profile is not None
    assert profile.name == "Aiko Tanaka"
    assert profile.name_checked_at == 1_700_000_000_000
    assert profile.contacts == {"zendesk": "9001", "kustomer": "k-77"}
    assert profiles.profile("line:acct:U2") is None


def test_a_failed_lookup_is_remembered_without_a_name(conversations: DynamoConversations) -> None:
    profiles = DynamoProfiles(conversations.table)
    profiles.set_name("fb:page:P1", None, checked_at=5)
    profile = profiles.profile("fb:page:P1")
    assert profile is not None and profile.name is None and profile.name_checked_at == 5
