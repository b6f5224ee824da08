"""The declarative configuration file (interface section 3): validation and secret resolution.

``validate`` reads the whole file and returns *every* problem with its path
(``accounts[2].secrets.channel_secret: required``), so an admin fixes a file in one pass; only a
file with no problem at all becomes a :class:`Desired` set of objects to apply. Secret values are
resolved here (literal, ``env:NAME``, ``file:PATH``) and kept apart from the settings documents, so
nothing downstream can store one in DynamoDB by accident.

A secret that resolves to nothing is refused, never stored: an HMAC keyed with the empty string
verifies whatever a forger signs with it, and an undefined CI variable is exactly how an empty
``env:NAME`` arrives. ``file:`` reads only a regular file inside the configuration file's own
folder, and only a few KiB of it, so a file cannot point ``apply`` at a device, a FIFO, ``/proc``
or another user's files.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from switchboard import channels, rules
from switchboard.settings import is_valid_id

TOP_LEVEL = ("accounts", "auth_settings", "widgets", "workstreams", "crm")
CRM_PROVIDERS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    # provider: (settings and their types, required secrets)
    "none": ({}, ()),
    "zendesk": ({"base_url": "url!", "email": "str"}, ("api_token",)),
    "salesforce": (
        {
            "login_url": "url!",
            "org_id": "str!",
            "api_version": "str",
            "contact_external_id_field": "str",
            "case_external_id_field": "str",
        },
        ("client_id", "client_secret", "refresh_tokens"),
    ),
    "dynamics": ({"org_url": "url!", "tenant_id": "str!", "authority_url": "url"}, ("client_id", "client_secret")),
    "kustomer": ({"base_url": "url!"}, ("api_key",)),
}
LIST_SECRETS = frozenset({"refresh_tokens"})
# A secret file holds a key, a token or a service account's JSON: a few KiB. Anything bigger is a mistake.
MAX_SECRET_FILE_BYTES = 64 * 1024
# Pseudo-filesystems whose "files" are processes' memory, environment or devices: never a secret file.
_PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
LINK_MINUTES_RANGE = (1, 1440)  # oauth2 `link_minutes`: how long a sign-in link stays valid
ATTACHMENT_DEFAULTS: dict[str, Any] = {
    "max_bytes": 25 * 1024 * 1024,
    "extensions": ["jpg", "jpeg", "png", "gif", "webp", "heic", "pdf", "txt", "mp4", "mov", "m4a", "mp3", "aac", "wav", "ogg"],
}


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class DesiredObject:
    kind: str  # account | workstream | widget | auth_setting | crm
    id: str
    doc: dict[str, Any]  # what the settings table stores: no secret values, only their names
    secrets: dict[str, Any] | None = None  # resolved values, for Secrets Manager only
    channel: str | None = None


@dataclass
class Desired:
    objects: list[DesiredObject] = field(default_factory=list)

    def of(self, kind: str) -> list[DesiredObject]:
        return [o for o in self.objects if o.kind == kind]


class SecretFileError(ValueError):
    """A ``file:`` secret that cannot be used; the message names why, never what the file holds."""


def read_secret_file(folder: Path, given: str, *, limit: int = MAX_SECRET_FILE_BYTES) -> str:
    """The text of ``file:given``, relative to (or an absolute path inside) ``folder``.

    Symlinks and ``..`` are resolved first and the result must still lie inside the folder, so a
    link planted next to the file cannot lead to ``/etc`` or ``~/.aws``. The file is opened without
    following a last symlink and without blocking (a FIFO would wait for a writer forever), then
    checked to be a regular file, and at most ``limit + 1`` bytes are read whatever it claims to be.
    """
    if not given:
        raise SecretFileError("file: needs a path")
    root = folder.resolve()
    target = (root / given).resolve()
    if not target.is_relative_to(root):
        raise SecretFileError("it is outside the configuration file's folder")
    if any(target.is_relative_to(pseudo) for pseudo in _PSEUDO_ROOTS):
        raise SecretFileError("it is not a regular file")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SecretFileError(exc.strerror or "cannot open it") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError("it is not a regular file")
        if info.st_size > limit:
            raise SecretFileError(f"it is larger than {limit // 1024} KiB")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew after fstat
            raise SecretFileError(f"it is larger than {limit // 1024} KiB")
    except OSError as exc:
        raise SecretFileError(exc.strerror or "cannot read it") from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError("it is not UTF-8 text") from None


class _Checker:
    def __init__(self, env: Mapping[str, str], base_dir: Path) -> None:
        self.issues: list[Issue] = []
        self.env = env
        self.base_dir = base_dir

    def err(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def mapping(self, value: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.err(path, "must be a mapping")
            return None
        return value

    def unknown(self, obj: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        for key in obj:
            if key not in allowed:
                self.err(f"{path}.{key}", "unknown setting")

    def typed(self, obj: Mapping[str, Any], key: str, tag: str, path: str) -> Any:
        required = tag.endswith("!")
        tag = tag.rstrip("!")
        where = f"{path}.{key}"
        if key not in obj or obj[key] is None:
            if required:
                self.err(where, "required")
            return None
        value = obj[key]
        if tag == "bool":
            if not isinstance(value, bool):
                self.err(where, "must be true or false")
        elif tag == "int":
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self.err(where, "must be a positive whole number")
        elif tag == "id":
            if not is_valid_id(value):
                self.err(where, "must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit")
        elif tag == "url":
            self.url(value, where)
        elif tag.startswith("enum:"):
            options = tag[5:].split("|")
            if value not in options:
                self.err(where, f"must be one of {', '.join(options)}")
        elif not isinstance(value, str) or (required and not value.strip()):
            self.err(where, "must be a non-empty string" if required else "must be a string")
        return value

    def bounded_int(self, obj: Mapping[str, Any], key: str, bounds: tuple[int, int], path: str) -> None:
        """An optional whole number within ``bounds`` (inclusive)."""
        value = obj.get(key)
        if value is None:
            return
        low, high = bounds
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.err(f"{path}.{key}", f"must be a whole number from {low} to {high}")

    def url(self, value: Any, where: str) -> None:
        if not isinstance(value, str):
            self.err(where, "must be a URL")
            return
        parsed = urlparse(value)
        if parsed.scheme == "https" and parsed.hostname:
            return
        if parsed.scheme == "http" and parsed.hostname and _is_loopback(parsed.hostname):
            return
        self.err(where, "must be an https URL (http only for 127.0.0.1 or localhost, for tests and sandboxes)")

    def secrets(
        self, obj: Mapping[str, Any], path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        raw = obj.get("secrets")
        where = f"{path}.secrets"
        if raw is None:
            raw = {}
            if required:
                self.err(where, f"required ({', '.join(required)})")
                return {}
        if not isinstance(raw, dict):
            self.err(where, "must be a mapping of secret names to values")
            return {}
        resolved: dict[str, Any] = {}
        for name in required:
            if name not in raw:
                self.err(f"{where}.{name}", "required")
        for name, value in raw.items():
            if name not in required and name not in optional:
                self.err(f"{where}.{name}", "unknown secret")
                continue
            if name in LIST_SECRETS:
                items = value if isinstance(value, list) else None
                if not items:
                    self.err(f"{where}.{name}", "must be a non-empty list")
                    continue
                resolved[name] = [self.secret_value(v, f"{where}.{name}[{i}]") for i, v in enumerate(items)]
            else:
                resolved[name] = self.secret_value(value, f"{where}.{name}")
        return resolved

    def secret_value(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            self.err(where, "must be a string (literal, env:NAME or file:PATH)")
            return ""
        if value.startswith("env:"):
            name = value[4:]
            if not name:
                self.err(where, "env: needs a variable name")
                return ""
            if name not in self.env:
                self.err(where, f"environment variable {name} is not set")
                return ""
            resolved = self.env[name]
            source = f" (environment variable {name} is empty or blank)"
        elif value.startswith("file:"):
            try:
                resolved = read_secret_file(self.base_dir, value[5:]).strip()
            except SecretFileError as exc:
                self.err(where, f"cannot read {value[5:]}: {exc}")
                return ""
            source = f" (file {value[5:]} is empty or blank)"
        else:
            resolved, source = value, ""
        if not resolved.strip():
            # An empty key would make every HMAC over it public: refuse it, whatever the source.
            self.err(where, f"empty{source}")
            return ""
        return resolved


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(doc: Any, *, env: Mapping[str, str], base_dir: Path) -> Desired | list[Issue]:
    """Every problem of the parsed file, with its path, or the objects to apply when there is none.

    ``base_dir`` is the configuration file's folder: ``file:`` secrets are read only from inside it.
    """
    c = _Checker(env, base_dir)
    if not isinstance(doc, dict):
        return [Issue("(file)", "must be a mapping with accounts, auth_settings, widgets, workstreams and crm")]
    c.unknown(doc, "(file)", set(TOP_LEVEL))
    desired = Desired()
    lists: dict[str, list[Any]] = {}
    for key in TOP_LEVEL[:4]:
        value = doc.get(key) or []
        if not isinstance(value, list):
            c.err(key, "must be a list")
            value = []
        lists[key] = value

    workstream_ids = _ids(c, lists["workstreams"], "workstreams")
    auth_ids = _ids(c, lists["auth_settings"], "auth_settings")
    _ids(c, lists["accounts"], "accounts")
    _ids(c, lists["widgets"], "widgets")

    for i, ws in enumerate(lists["workstreams"]):
        obj = _workstream(c, ws, f"workstreams[{i}]")
        if obj:
            desired.objects.append(obj)
    for i, account in enumerate(lists["accounts"]):
        obj = _account(c, account, f"accounts[{i}]", workstream_ids)
        if obj:
            desired.objects.append(obj)
    for i, setting in enumerate(lists["auth_settings"]):
        obj = _auth_setting(c, setting, f"auth_settings[{i}]")
        if obj:
            desired.objects.append(obj)
    for i, widget in enumerate(lists["widgets"]):
        obj = _widget(c, widget, f"widgets[{i}]", workstream_ids, auth_ids)
        if obj:
            desired.objects.append(obj)
    if doc.get("crm") is not None:
        obj = _crm(c, doc["crm"], "crm")
        if obj:
            desired.objects.append(obj)
    return c.issues if c.issues else desired


def _ids(c: _Checker, items: list[Any], path: str) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            if item["id"] in seen:
                c.err(f"{path}[{i}].id", f"duplicate id {item['id']!r}")
            seen.add(item["id"])
    return seen


def _workstream(c: _Checker, raw: Any, path: str) -> DesiredObject | None:
    obj = c.mapping(raw, path)
    if obj is None:
        return None
    c.unknown(obj, path, {"id", "fallback_queue", "close_after_minutes", "rules"})
    c.typed(obj, "id", "id!", path)
    c.typed(obj, "fallback_queue", "str!", path)
    c.typed(obj, "close_after_minutes", "int", path)
    rule_list = obj.get("rules") or []
    if not isinstance(rule_list, list):
        c.err(f"{path}.rules", "must be a list")
        rule_list = []
    for j, rule in enumerate(rule_list):
        rpath = f"{path}.rules[{j}]"
        r = c.mapping(rule, rpath)
        if r is None:
            continue
        c.unknown(r, rpath, {"name", "when", "queue", "priority"})
        c.typed(r, "name", "str", rpath)
        c.typed(r, "queue", "str!", rpath)
        c.typed(r, "priority", "int", rpath)
        when = r.get("when")
        if not isinstance(when, list) or not when:
            c.err(f"{rpath}.when", "must be a non-empty list of conditions")
            continue
        for k, cond in enumerate(when):
            _condition(c, cond, f"{rpath}.when[{k}]")
    doc = {k: v for k, v in obj.items() if k != "secrets"}
    return DesiredObject("workstream", str(obj.get("id")), doc)


def _condition(c: _Checker, raw: Any, path: str) -> None:
    cond = c.mapping(raw, path)
    if cond is None:
        return
    c.unknown(cond, path, {"field", "op", "value"})
    name, op = cond.get("field"), cond.get("op")
    if not isinstance(name, str) or not rules.is_known_field(name):
        c.err(f"{path}.field", f"must be one of {', '.join(sorted(rules.FIELDS))} or context.<variable>")
    if op not in rules.OPERATORS:
        c.err(f"{path}.op", f"must be one of {', '.join(sorted(rules.OPERATORS))}")
        return
    value = cond.get("value")
    if op != "exists" and "value" not in cond:
        c.err(f"{path}.value", "required")
    elif op == "in" and not isinstance(value, list):
        c.err(f"{path}.value", "must be a list for op in")
    elif op in {"gt", "ge", "lt", "le"} and rules._number(value) is None:
        c.err(f"{path}.value", f"must be a number for op {op}")
    elif op not in {"in"} and isinstance(value, dict | list):
        c.err(f"{path}.value", "must be a single value")


def _account(c: _Checker, raw: Any, path: str, workstream_ids: set[str]) -> DesiredObject | None:
    obj = c.mapping(raw, path)
    if obj is None:
        return None
    channel = obj.get("channel")
    if channel not in channels.ADAPTERS:
        c.err(f"{path}.channel", f"must be one of {', '.join(sorted(channels.ADAPTERS))}")
        return None
    adapter = channels.adapter(channel)
    common = {"id", "channel", "enabled", "name", "workstream", "secrets", "attachments"}
    c.unknown(obj, path, common | set(adapter.options))
    c.typed(obj, "id", "id!", path)
    c.typed(obj, "enabled", "bool", path)
    c.typed(obj, "name", "str", path)
    ws = c.typed(obj, "workstream", "str!", path)
    if isinstance(ws, str) and ws not in workstream_ids:
        c.err(f"{path}.workstream", f"no workstream with id {ws!r}")
    for key, tag in adapter.options.items():
        c.typed(obj, key, tag, path)
    attachments = _attachments(c, obj.get("attachments"), f"{path}.attachments")
    required = adapter.secrets_for(obj)
    secrets = c.secrets(obj, path, required, tuple(adapter.optional_secrets))
    doc = {k: v for k, v in obj.items() if k != "secrets"}
    doc["attachments"] = attachments
    doc.setdefault("enabled", True)
    doc["secret_keys"] = sorted(secrets)
    return DesiredObject("account", str(obj.get("id")), doc, secrets, channel=channel)


def _attachments(c: _Checker, raw: Any, path: str) -> dict[str, Any]:
    out = dict(ATTACHMENT_DEFAULTS)
    if raw is None:
        return out
    obj = c.mapping(raw, path)
    if obj is None:
        return out
    c.unknown(obj, path, {"max_bytes", "extensions"})
    if "max_bytes" in obj:
        c.typed(obj, "max_bytes", "int", path)
        out["max_bytes"] = obj["max_bytes"]
    if "extensions" in obj:
        ext = obj["extensions"]
        if not isinstance(ext, list) or not all(isinstance(e, str) and e for e in ext):
            c.err(f"{path}.extensions", "must be a list of file extensions")
        else:
            out["extensions"] = sorted({e.lower().lstrip(".") for e in ext})
    return out


def _auth_setting(c: _Checker, raw: Any, path: str) -> DesiredObject | None:
    obj = c.mapping(raw, path)
    if obj is None:
        return None
    kind = c.typed(obj, "type", "enum:jwt|oauth2!", path)
    c.typed(obj, "id", "id!", path)
    if kind == "jwt":
        c.unknown(obj, path, {"id", "type", "public_key_url", "issuer"})
        c.typed(obj, "public_key_url", "url!", path)
        c.typed(obj, "issuer", "str", path)
        secrets: dict[str, Any] = {}
    elif kind == "oauth2":
        allowed = {"id", "type", "token_url", "userinfo_url", "redirect_url", "client_id", "scope", "user_id_claim"}
        allowed |= {"token_endpoint_auth", "expiry_seconds", "additional_parameters", "secrets"}
        allowed |= {"authorize_url", "link_minutes"}  # optional: for sign-in links (`switchboard auth-link`)
        c.unknown(obj, path, allowed)
        for key in ("token_url", "userinfo_url", "redirect_url"):
            c.typed(obj, key, "url!", path)
        c.typed(obj, "authorize_url", "url", path)
        c.typed(obj, "client_id", "str!", path)
        c.typed(obj, "scope", "str", path)
        c.typed(obj, "user_id_claim", "str", path)
        c.typed(obj, "token_endpoint_auth", "enum:client_secret_post|client_secret_basic", path)
        c.typed(obj, "expiry_seconds", "int", path)
        c.bounded_int(obj, "link_minutes", LINK_MINUTES_RANGE, path)
        extra = obj.get("additional_parameters")
        if extra is not None and (not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values())):
            c.err(f"{path}.additional_parameters", "must be a mapping of names to strings")
        secrets = c.secrets(obj, path, ("client_secret",))
    else:
        return None
    doc = {k: v for k, v in obj.items() if k != "secrets"}
    doc["secret_keys"] = sorted(secrets)
    return DesiredObject("auth_setting", str(obj.get("id")), doc, secrets or None)


def _widget(c: _Checker, raw: Any, path: str, workstream_ids: set[str], auth_ids: set[str]) -> DesiredObject | None:
    obj = c.mapping(raw, path)
    if obj is None:
        return None
    c.unknown(obj, path, {"id", "auth_setting", "allow_anonymous", "workstream", "enabled"})
    c.typed(obj, "id", "id!", path)
    c.typed(obj, "allow_anonymous", "bool", path)
    c.typed(obj, "enabled", "bool", path)
    ws = c.typed(obj, "workstream", "str!", path)
    if isinstance(ws, str) and ws not in workstream_ids:
        c.err(f"{path}.workstream", f"no workstream with id {ws!r}")
    auth = c.typed(obj, "auth_setting", "str", path)
    if isinstance(auth, str) and auth not in auth_ids:
        c.err(f"{path}.auth_setting", f"no auth setting with id {auth!r}")
    return DesiredObject("widget", str(obj.get("id")), dict(obj))


def _crm(c: _Checker, raw: Any, path: str) -> DesiredObject | None:
    obj = c.mapping(raw, path)
    if obj is None:
        return None
    provider = obj.get("provider")
    if provider not in CRM_PROVIDERS:
        c.err(f"{path}.provider", f"must be one of {', '.join(CRM_PROVIDERS)}")
        return None
    options, required = CRM_PROVIDERS[provider]
    c.unknown(obj, path, {"provider", "default_user", "secrets"} | set(options))
    for key, tag in options.items():
        c.typed(obj, key, tag, path)
    if provider == "salesforce" and isinstance(obj.get("org_id"), str) and len(obj["org_id"]) not in (15, 18):
        c.err(f"{path}.org_id", f"must be 15 or 18 characters (got {len(obj['org_id'])})")
    default_user = obj.get("default_user") or {}
    du = c.mapping(default_user, f"{path}.default_user")
    if du is not None:
        c.unknown(du, f"{path}.default_user", {"enabled", "always"})
        c.typed(du, "enabled", "bool", f"{path}.default_user")
        c.typed(du, "always", "bool", f"{path}.default_user")
    secrets = c.secrets(obj, path, required)
    doc = {k: v for k, v in obj.items() if k != "secrets"}
    if provider == "salesforce" and isinstance(doc.get("org_id"), str) and len(doc["org_id"]) == 18:
        doc["org_id"] = doc["org_id"][:15]  # 18-character ids are the 15-character id plus a checksum
    doc["default_user"] = {"enabled": bool((du or {}).get("enabled", False)), "always": bool((du or {}).get("always", False))}
    doc["secret_keys"] = sorted(secrets)
    return DesiredObject("crm", "default", doc, secrets or None)
