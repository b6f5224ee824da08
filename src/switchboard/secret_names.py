"""Where each object's secrets live in Secrets Manager.

One JSON secret per object under one prefix per stack, so IAM can grant each function exactly the
names it needs (webhook_line reads ``<prefix>/account/line/*`` and nothing else).
"""

from __future__ import annotations


def secret_name(prefix: str, kind: str, object_id: str, channel: str | None = None) -> str:
    if kind == "account":
        if not channel:
            raise ValueError("account secrets are named by channel")
        return f"{prefix}/account/{channel}/{object_id}"
    if kind == "auth_setting":
        return f"{prefix}/auth/{object_id}"
    if kind == "crm":
        return f"{prefix}/crm"
    if kind == "crm_events":  # apart from the CRM's credentials: the events function reads this one only
        return f"{prefix}/crm-events"
    if kind == "stack":
        return f"{prefix}/stack/{object_id}"
    raise ValueError(f"objects of kind {kind!r} have no secrets")
