"""``switchboard apply``: validate the whole file, then write settings and secrets, idempotently.

Nothing is written when the file has any error (exit 2). Each object is compared with what is
stored, settings document and secret value alike, and reported as created, updated or unchanged,
so a second apply of the same file changes nothing and says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from infra.admin import crm_check
from infra.admin.resources import Resources
from switchboard import config
from switchboard.secret_names import secret_name

EXIT_OK, EXIT_INVALID = 0, 2  # and crm_check.EXIT_CRM_REFUSED (3): applied except CRM credentials the CRM refused


def load_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


def apply_file(path: Path, resources: Resources, *, dry_run: bool, as_json: bool = False) -> tuple[int, list[str]]:
    try:
        doc = load_file(path)
    except OSError as exc:
        return EXIT_INVALID, [f"{path}: cannot read: {exc.strerror or exc}"]
    except (yaml.YAMLError, ValueError) as exc:
        return EXIT_INVALID, [f"{path}: not valid YAML/JSON: {exc}"]
    result = config.validate(doc, env=os.environ, base_dir=path.parent)
    if isinstance(result, list):
        lines = [str(issue) for issue in result]
        lines.append(f"{len(result)} error(s): nothing was applied")
        return EXIT_INVALID, lines

    resources.activate()
    from switchboard.aws.settings_store import DynamoSettings

    store = DynamoSettings(resources.settings_table, ttl_seconds=0)
    secrets = _Secrets(resources)
    stored: dict[str, dict[str, dict[str, Any]]] = {}
    report: list[dict[str, str]] = []
    code = EXIT_OK
    for obj in result.objects:
        current = stored.setdefault(obj.kind, store.all(obj.kind)).get(obj.id)
        name = secret_name(resources.secrets_prefix, obj.kind, obj.id, obj.channel) if obj.secrets is not None else None
        current_secret = secrets.get(name) if name else None
        if obj.kind == "crm":  # the CRM must accept its credentials first
            verdict = crm_check.vet(obj, current, current_secret)
            report.extend(verdict.report_rows(obj.id))
            code = max(code, verdict.exit_code)
            if verdict.obj is None:
                continue
            obj = verdict.obj  # noqa: PLW2901 - refused: the stored section, default user off
        changed_doc = current != obj.doc
        changed_secret = name is not None and current_secret != obj.secrets
        status = "created" if current is None else ("updated" if changed_doc or changed_secret else "unchanged")
        if not dry_run and status != "unchanged":
            if name is not None and changed_secret:
                secrets.put(name, obj.secrets or {})  # the secret first: whoever finds the settings finds their secret
            if changed_doc:
                store.put(obj.kind, obj.id, obj.doc)
        report.append({"kind": obj.kind, "id": obj.id, "status": status})
    if not dry_run:  # sign-in links (auth-link, /auth/{id}/callback) need the stack's state key: made once, kept
        from infra.admin import state_key

        state_key.ensure(secrets.sm, resources.secrets_prefix)
    if as_json:
        return code, [json.dumps(report, indent=2)]
    prefix = "would be " if dry_run else ""
    return code, [crm_check.report_line(prefix, r) for r in report]


class _Secrets:
    def __init__(self, resources: Resources) -> None:
        self.sm = resources.client("secretsmanager")

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            value = self.sm.get_secret_value(SecretId=name)["SecretString"]
        except self.sm.exceptions.ResourceNotFoundException:
            return None
        parsed = json.loads(value)
        return parsed if isinstance(parsed, dict) else None

    def put(self, name: str, value: dict[str, Any]) -> None:
        body = json.dumps(value, sort_keys=True)
        try:
            self.sm.put_secret_value(SecretId=name, SecretString=body)
        except self.sm.exceptions.ResourceNotFoundException:
            self.sm.create_secret(Name=name, SecretString=body, Description="Switchboard: written by `switchboard apply`")


def export(resources: Resources) -> dict[str, Any]:
    """The stored configuration, shaped like the file, with every secret shown as ``<set>``."""
    resources.activate()
    from switchboard.aws.settings_store import DynamoSettings

    store = DynamoSettings(resources.settings_table, ttl_seconds=0)
    out: dict[str, Any] = {}
    for kind, key in (
        ("account", "accounts"),
        ("auth_setting", "auth_settings"),
        ("widget", "widgets"),
        ("workstream", "workstreams"),
    ):
        items = []
        for doc in store.all(kind).values():
            items.append(_with_masked_secrets(doc))
        if items:
            out[key] = items
    crm = store.all("crm").get("default")
    if crm:
        out["crm"] = _with_masked_secrets(crm)
    return out


def _with_masked_secrets(doc: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in doc.items() if k != "secret_keys"}
    keys = doc.get("secret_keys") or []
    if keys:
        shown["secrets"] = {k: "<set>" for k in keys}
    return shown
