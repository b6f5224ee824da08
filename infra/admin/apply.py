"""``switchboard apply``: validate the whole file, then write settings and secrets, idempotently.

Nothing is written when the file has any error (exit 2). Each object is compared with what is
stored, settings document and secret value alike, and reported as created, updated or unchanged,
so a second apply of the same file changes nothing and says so.

The file itself is read defensively, because it often comes from a pull request or a CI variable:
at most :data:`MAX_CONFIG_BYTES` of it; YAML aliases to mappings or lists are refused (a few
hundred bytes of nested aliases expand to billions of nodes once anything walks them) and aliases
to scalars may together add no more than the file's own size cap; and a syntax error is reported by
line and column only. PyYAML's own message quotes the neighbouring lines of the file, which is
where the secrets are.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from infra.admin import crm_check
from infra.admin.resources import Resources
from switchboard import config, safe_json
from switchboard.config import DesiredObject
from switchboard.crm import registry
from switchboard.crm.base import CrmConfigError, CrmError
from switchboard.crm.registry import build_adapter
from switchboard.secret_names import secret_name
from switchboard.settings import crm_from_dict

EXIT_OK, EXIT_INVALID = 0, 2  # and crm_check.EXIT_CRM_REFUSED (3): applied except CRM credentials the CRM refused
MAX_CONFIG_BYTES = 1024 * 1024  # thousands of accounts and rules; a bigger file is a mistake or an attack
_ALIAS_HINT = "a configuration file needs none: write the values out"


class ConfigFileError(ValueError):
    """The file cannot be read as a configuration; the message gives a position, never the file's text."""


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader (the pure-Python one: its composer can be checked), bounded against alias bombs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_chars = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            node = self.anchors.get(event.anchor)
            if isinstance(node, yaml.CollectionNode):
                raise yaml.composer.ComposerError(
                    None, None, f"an alias to a mapping or list is not accepted ({_ALIAS_HINT})", event.start_mark
                )
            if isinstance(node, yaml.ScalarNode):
                self.alias_chars += len(str(node.value))
                if self.alias_chars > MAX_CONFIG_BYTES:
                    problem = f"aliases repeat more than {MAX_CONFIG_BYTES // 1024} KiB of text ({_ALIAS_HINT})"
                    raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
        return super().compose_node(parent, index)


def read_text(path: Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """The file's text, reading no more than ``limit + 1`` bytes (``/dev/zero`` and a FIFO included)."""
    with path.open("rb") as stream:
        raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise ConfigFileError(f"larger than {limit // 1024} KiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"not UTF-8 text (byte {exc.start + 1})") from None


def load_file(path: Path) -> Any:
    """The parsed document; :class:`ConfigFileError` for a file too big, malformed or alias-bombed."""
    text = read_text(path)
    if path.suffix == ".json":
        try:
            return safe_json.loads(text)
        except safe_json.JsonError as exc:
            raise ConfigFileError(_json_problem(text, exc)) from None
    try:
        loader = _ConfigLoader(text)  # the reader checks every character first
        try:
            doc = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigFileError(_yaml_problem(exc, text)) from None
    except RecursionError:
        raise ConfigFileError(f"not valid YAML: nested deeper than {safe_json.MAX_DEPTH} levels") from None
    except ValueError:  # a constructor's own refusal, e.g. an integer of thousands of digits
        raise ConfigFileError("not valid YAML: a value cannot be read") from None
    if safe_json.depth_exceeds(doc):
        raise ConfigFileError(f"not valid YAML: nested deeper than {safe_json.MAX_DEPTH} levels")
    return doc


# Quoted parts of PyYAML's problem text are kept only when they cannot be the file's words:
# a token's name (``'<block end>'``) or one (possibly escaped) character (``'\t'``).
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_HARMLESS_QUOTE = re.compile(r"<[a-z ]+>|\\?.|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8}")


def _redact(problem: str) -> str:
    def keep(match: re.Match[str]) -> str:
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        return match.group(0) if _HARMLESS_QUOTE.fullmatch(inner) else "'...'"

    return _QUOTED.sub(keep, " ".join(problem.split()))


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where and what, from the mark and PyYAML's short problem: never ``str(exc)``, which quotes the file."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"not valid YAML{where}: {_redact(exc.problem or exc.context or 'syntax error')}"
    if isinstance(exc, yaml.reader.ReaderError):
        lineno = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return f"not valid YAML at line {lineno}, column {column}: a control character YAML does not allow"
    return "not valid YAML"


def _json_problem(text: str, exc: safe_json.JsonError) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as decode_error:  # its msg names the expectation, never the text
        return f"not valid JSON at line {decode_error.lineno}, column {decode_error.colno}: {decode_error.msg}"
    except (RecursionError, ValueError):
        pass
    return str(exc)


def apply_file(path: Path, resources: Resources, *, dry_run: bool, as_json: bool = False) -> tuple[int, list[str]]:
    try:
        doc = load_file(path)
    except OSError as exc:
        return EXIT_INVALID, [f"{path}: cannot read: {exc.strerror or type(exc).__name__}"]
    except ConfigFileError as exc:
        return EXIT_INVALID, [f"{path}: {exc}"]
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
        verdict = crm_check.Verdict(obj=obj)
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
        if obj.kind == "crm" and verdict.refused is None:  # its lines go before the section's own, as the check's do
            report.extend(_crm_events(obj, resources, secrets, dry_run=dry_run, changed=status != "unchanged"))
        report.append({"kind": obj.kind, "id": obj.id, "status": status})
    if not dry_run:  # sign-in links (auth-link, /auth/{id}/callback) need the stack's state key: made once, kept
        from infra.admin import state_key

        state_key.ensure(secrets.sm, resources.secrets_prefix)
    if as_json:
        return code, [json.dumps(report, indent=2)]
    prefix = "would be " if dry_run else ""
    return code, [crm_check.report_text(prefix, r) for r in report]


def events_url(resources: Resources, provider: str) -> str | None:
    """Where the CRM posts its events: this stack's ``/crm/<provider>/events`` (the API's URL when deployed,
    the local gateway's on the local stack); None when the stack does not say where its API is."""
    return f"{resources.api_url}/crm/{provider}/events" if resources.api_url else None


def _crm_events(
    obj: DesiredObject, resources: Resources, secrets: _Secrets, *, dry_run: bool, changed: bool
) -> list[dict[str, str]]:
    """The way back's set-up (interface section 6): the events URL, and the events secret where the events
    function reads it (``<prefix>/crm-events``): the file's ``secrets.events_secret`` when given (then nothing is
    made in the CRM), otherwise the one the CRM's zero-click set-up returns (Zendesk's webhook and trigger).

    The set-up is asked for again only when the CRM section changed, no events secret is stored yet, or the
    stack's URL moved, so a second apply of the same file makes no call."""
    provider = str(obj.doc.get("provider") or "none")
    if provider == "none":
        return []
    row = {"kind": "crm", "id": obj.id}
    url = events_url(resources, provider)
    rows = [
        {
            **row,
            "status": "events",
            "message": f"the CRM's events go to {url}" if url else "events URL unknown: the stack has no ApiUrl output",
        }
    ]
    cls = registry.adapter_class(provider)
    name = secret_name(resources.secrets_prefix, "crm_events", "default")
    stored = secrets.get(name) or {}
    if stored.get("provider") != provider:
        stored = {}  # another CRM's key: it proves nothing about this one's events
    given = (obj.secrets or {}).get(cls.events_secret_name)
    wanted: dict[str, Any] | None = None
    source = ""
    if isinstance(given, str) and given.strip():
        wanted = {cls.events_secret_name: given, "provider": provider}
        source = f"secrets.{cls.events_secret_name}"
    elif (
        url is not None and not dry_run and (changed or not stored.get(cls.events_secret_name) or stored.get("events_url") != url)
    ):
        try:
            adapter = build_adapter(crm_from_dict(dict(obj.doc)), obj.secrets or {})
            made = adapter.ensure_events_hook(url)
        except (CrmError, CrmConfigError) as exc:
            return [*rows, {**row, "status": "warning", "message": f"the CRM's events could not be set up: {exc}"}]
        if made is not None:
            wanted = {cls.events_secret_name: made, "provider": provider, "events_url": url}
            source = f"the {cls.label} webhook apply set up"
    if wanted is not None and wanted != secrets.get(name):
        if not dry_run:
            secrets.put(name, wanted)
        rows.append(
            {**row, "status": "events", "message": f"{'would store' if dry_run else 'stored'} the events secret ({source})"}
        )
    elif wanted is None and not stored.get(cls.events_secret_name) and obj.doc.get("replies", True) is not False:
        rows.append(
            {
                **row,
                "status": "warning",
                "message": f"crm.replies is on but secrets.{cls.events_secret_name} is not set: {cls.label}'s events will be "
                "refused and agents' replies will not reach customers (docs/replies.md says where it comes from)",
            }
        )
    return rows


class _Secrets:
    def __init__(self, resources: Resources) -> None:
        self.sm = resources.client("secretsmanager")

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            value = self.sm.get_secret_value(SecretId=name)["SecretString"]
        except self.sm.exceptions.ResourceNotFoundException:
            return None
        try:
            parsed = safe_json.loads(value)
        except safe_json.JsonError:
            return None  # unreadable: the file's value replaces it
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
