"""``switchboard send``: sign a realistic webhook with the stored secret and post it, as the platform would.

What a delivery looks like and how it is signed is each channel's own knowledge
(:meth:`ChannelAdapter.simulate`); this module only finds the account and its secret and posts.
"""

from __future__ import annotations

from infra.admin.resources import Resources
from switchboard import channels, outbound_http, safe_json
from switchboard.errors import SecretMissing
from switchboard.secret_names import secret_name

SEND_LIMITS = outbound_http.Limits(deadline=10, max_bytes=1 << 20)


def send(
    resources: Resources, channel: str, account_id: str, text: str, user: str | None, event_id: str | None
) -> tuple[int, str]:
    if channel not in channels.ADAPTERS:
        return 2, f"sending as {channel} is not available: the channels are {', '.join(channels.names())}"
    resources.activate()
    from switchboard.aws.settings_store import DynamoSettings

    account = DynamoSettings(resources.settings_table, ttl_seconds=0).all("account").get(account_id)
    if account is None or account.get("channel") != channel:
        return 2, f"no {channel} account {account_id!r} is configured"
    sm = resources.client("secretsmanager")
    try:
        secret = safe_json.loads(
            sm.get_secret_value(SecretId=secret_name(resources.secrets_prefix, "account", account_id, channel))["SecretString"]
        )
    except sm.exceptions.ResourceNotFoundException:
        return 2, f"account {account_id!r} has no stored secrets: apply its configuration first"
    except safe_json.JsonError:
        return 2, f"account {account_id!r}'s stored secret is not JSON: apply its configuration again"
    if not isinstance(secret, dict):
        return 2, f"account {account_id!r}'s stored secret is not a JSON object: apply its configuration again"
    try:
        delivery = channels.adapter(channel).simulate(account, secret, text=text, user=user, event_id=event_id)
    except SecretMissing as exc:
        return 2, f"account {account_id!r} has {exc.message}: apply its configuration again"
    if not resources.api_url:
        return 2, "the target has no API URL"
    # The stack's own API, named by its outputs or the local state file: an address the admin chose,
    # so the policy is the one for admin-written URLs (any address but the cloud metadata service).
    answer = outbound_http.Client(outbound_http.TRUSTED).request(
        "POST",
        resources.api_url + delivery.path,
        limits=SEND_LIMITS,
        data=delivery.body,
        headers={"Content-Type": "application/json", **delivery.headers},
    )
    return (0 if answer.ok else 1), f"{answer.status} {answer.text}"
