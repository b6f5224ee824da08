"""The declarative configuration file (interface section 3): validation and secret resolution.

``validate`` reads the whole file and returns *every* problem with its path
(``accounts[2].secrets.channel_secret: required``), so an admin fixes a file in one pass; only a
file with no problem at all becomes a :class:`Desired` set of objects to apply. Secret values are
resolved here (literal, ``env:NAME``, ``file:PATH``) and kept apart from the settings documents, so
nothing downstream can store one in DynamoDB by accident.

The shape of the file (which settings exist, their types, what is required) is the JSON Schema
:mod:`switchboard.config_schema` assembles from the channels' and CRMs' own declarations, checked
with the ``jsonschema`` library; this module adds only what a schema cannot say: ids unique within
a section, references to workstreams and auth settings that exist, and secrets that resolve to
something. How a CRM's settings are stored is the CRM's to say (``stored_settings``).

A secret that resolves to nothing is refused, never stored: an HMAC keyed with the empty string
verifies whatever a forger signs with it, and an undefined CI variable is exactly how an empty
``env:NAME`` arrives. ``file:`` reads only a regular file inside the configuration file's own
folder, and only a few KiB of it, so a file cannot point ``apply`` at a device, a FIFO, ``/proc``
or another user's files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchboard import config_schema
from switchboard.config_schema import ATTACHMENT_DEFAULTS

__all__ = ["ATTACHMENT_DEFAULTS", "Desired", "DesiredObject", "Issue", "SecretFileError", "read_secret_file", "validate"]

TOP_LEVEL = config_schema.SECTIONS
# A secret file holds a key, a token or a service account's JSON: a few KiB. Anything bigger is a mistake.
MAX_SECRET_FILE_BYTES = 64 * 1024
# Pseudo-filesystems whose "files" are processes' memory, environment or devices: never a secret file.
_PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


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


Path_ = config_schema.Path  # a place in the file: keys and list indexes from the top


def validate(doc: Any, *, env: Mapping[str, str], base_dir: Path) -> Desired | list[Issue]:
    """Every problem of the parsed file, with its path, or the objects to apply when there is none.

    ``base_dir`` is the configuration file's folder: ``file:`` secrets are read only from inside it.
    The schema's findings come first for each place; a secret is resolved only where the schema
    found nothing wrong with it, so one mistake is reported once.
    """
    found = config_schema.check(doc)
    if not isinstance(doc, dict):
        return _issues(doc, found)
    sections: dict[str, list[Any]] = {}
    for key in TOP_LEVEL[:4]:
        items = doc.get(key)
        sections[key] = items if isinstance(items, list) else []
    found += _duplicates(sections)
    found += _references(sections)
    resolved = _Secrets(env, base_dir, {path for path, _ in found})
    for key in ("accounts", "auth_settings"):
        for index, item in enumerate(sections[key]):
            if isinstance(item, dict):
                resolved.resolve(item.get("secrets"), (key, index, "secrets"))
    if isinstance(doc.get("crm"), dict):
        resolved.resolve(doc["crm"].get("secrets"), ("crm", "secrets"))
    found += resolved.issues
    if found:
        return _issues(doc, found)
    return _desired(doc, sections, resolved.values)


def _issues(doc: Any, found: list[tuple[Path_, str]]) -> list[Issue]:
    """The problems in the order their places appear in the file (a missing setting first in its object)."""

    def order(item: tuple[Path_, str]) -> list[tuple[int, int]]:
        key: list[tuple[int, int]] = []
        node = doc
        for part in item[0]:
            if isinstance(part, int):
                key.append((0, part))
                node = node[part] if isinstance(node, list) and part < len(node) else None
            else:
                keys = [str(k) for k in node] if isinstance(node, dict) else []  # a number key is named as written
                at = keys.index(part) if part in keys else -1
                key.append((1, at))
                node = list(node.values())[at] if at >= 0 and isinstance(node, dict) else None
        return key

    return [Issue(_path_text(path), message) for path, message in sorted(found, key=order)]


def _path_text(path: Path_) -> str:
    if not path:
        return "(file)"
    text = "" if path[0] in TOP_LEVEL else "(file)"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _duplicates(sections: Mapping[str, list[Any]]) -> Iterable[tuple[Path_, str]]:
    for key, items in sections.items():
        seen: set[str] = set()
        for index, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                if item["id"] in seen:
                    yield (key, index, "id"), f"duplicate id {item['id']!r}"
                seen.add(item["id"])


def _references(sections: Mapping[str, list[Any]]) -> Iterable[tuple[Path_, str]]:
    def ids(key: str) -> set[str]:
        return {item["id"] for item in sections[key] if isinstance(item, dict) and isinstance(item.get("id"), str)}

    targets = {"workstream": ("workstreams", "workstream"), "auth_setting": ("auth_settings", "auth setting")}
    known = {name: ids(section) for name, (section, _) in targets.items()}
    for key, fields in (("accounts", ("workstream",)), ("widgets", ("workstream", "auth_setting"))):
        for index, item in enumerate(sections[key]):
            for name in fields:
                value = item.get(name) if isinstance(item, dict) else None
                if isinstance(value, str) and value not in known[name]:
                    yield (key, index, name), f"no {targets[name][1]} with id {value!r}"


class _Secrets:
    """Resolves the file's secrets (literal, ``env:NAME``, ``file:PATH``), refusing any that come out empty."""

    def __init__(self, env: Mapping[str, str], base_dir: Path, flagged: set[Path_]) -> None:
        self.env = env
        self.base_dir = base_dir
        self.flagged = flagged  # places the schema already refused: not resolved, not reported twice
        self.issues: list[tuple[Path_, str]] = []
        self.values: dict[Path_, dict[str, Any]] = {}

    def resolve(self, raw: Any, where: Path_) -> None:
        if not isinstance(raw, dict):
            return
        out: dict[str, Any] = {}
        for name, value in raw.items():
            path = (*where, name)
            if not isinstance(name, str) or path in self.flagged:
                continue  # the schema refused it
            if isinstance(value, list):
                out[name] = [self.value(item, (*path, i)) for i, item in enumerate(value)]
            else:
                out[name] = self.value(value, path)
        self.values[where] = out

    def value(self, value: Any, where: Path_) -> str:
        if not isinstance(value, str) or where in self.flagged:
            return ""  # the schema said why
        if value.startswith("env:"):
            name = value[4:]
            if not name:
                return self._refuse(where, "env: needs a variable name")
            if name not in self.env:
                return self._refuse(where, f"environment variable {name} is not set")
            resolved = self.env[name]
            source = f" (environment variable {name} is empty or blank)"
        elif value.startswith("file:"):
            try:
                resolved = read_secret_file(self.base_dir, value[5:]).strip()
            except SecretFileError as exc:
                return self._refuse(where, f"cannot read {value[5:]}: {exc}")
            source = f" (file {value[5:]} is empty or blank)"
        else:
            resolved, source = value, ""
        if not resolved.strip():
            # An empty key would make every HMAC over it public: refuse it, whatever the source.
            return self._refuse(where, f"empty{source}")
        return resolved

    def _refuse(self, where: Path_, message: str) -> str:
        self.issues.append((where, message))
        return ""


def _desired(doc: dict[str, Any], sections: Mapping[str, list[Any]], secrets: Mapping[Path_, dict[str, Any]]) -> Desired:
    """The objects to apply, from a file with no problem: what the settings table stores, secrets apart."""
    desired = Desired()

    def settings(obj: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k != "secrets"}

    for ws in sections["workstreams"]:
        desired.objects.append(DesiredObject("workstream", ws["id"], settings(ws)))
    for index, account in enumerate(sections["accounts"]):
        values = secrets.get(("accounts", index, "secrets"), {})
        stored = settings(account)
        stored["attachments"] = _attachments(account.get("attachments") or {})
        stored.setdefault("enabled", True)
        stored["secret_keys"] = sorted(values)
        desired.objects.append(DesiredObject("account", account["id"], stored, values, channel=account["channel"]))
    for index, setting in enumerate(sections["auth_settings"]):
        values = secrets.get(("auth_settings", index, "secrets"), {})
        stored = settings(setting)
        stored["secret_keys"] = sorted(values)
        desired.objects.append(DesiredObject("auth_setting", setting["id"], stored, values or None))
    for widget in sections["widgets"]:
        desired.objects.append(DesiredObject("widget", widget["id"], dict(widget)))
    crm = doc.get("crm")
    if isinstance(crm, dict):
        values = secrets.get(("crm", "secrets"), {})
        stored = settings(crm)
        if crm["provider"] != config_schema.NO_CRM:  # the CRM's own stored form (one spelling of an id)
            from switchboard.crm import registry

            stored = registry.adapter_class(crm["provider"]).stored_settings(stored)
        default_user = crm.get("default_user") or {}
        stored["default_user"] = {
            "enabled": bool(default_user.get("enabled", False)),
            "always": bool(default_user.get("always", False)),
        }
        stored["secret_keys"] = sorted(values)
        desired.objects.append(DesiredObject("crm", "default", stored, values or None))
    return desired


def _attachments(given: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(ATTACHMENT_DEFAULTS)
    if "max_bytes" in given:
        out["max_bytes"] = given["max_bytes"]
    if "extensions" in given:
        out["extensions"] = sorted({e.lower().lstrip(".") for e in given["extensions"]})
    return out
