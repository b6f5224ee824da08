"""Keeping what customers send: attachment bytes fetched into the attachments bucket by the route stage.

The platforms' URLs expire (Facebook's CDN, GBM's signed storage URLs) and LINE deletes content
after a while, so the bytes are fetched once the conversation is known and before the message is
stored, never in the webhook (the platforms wait 2-20 s for an answer). Each channel adapter says
where an attachment's bytes are (:meth:`ChannelAdapter.attachment_request`); everything else is
the same for every channel:

- The account's ``attachments`` limits decide what is kept. Over ``max_bytes`` (as declared by the
  platform, by Content-Length, or as counted while streaming) or with an extension the account
  does not allow (from the file name, else the URL's path, else the Content-Type), no byte is kept:
  the attachment records why and the message becomes kind ``unsupported`` with the interface's
  text. What the customer sent is kept under ``data["unsupported"]`` for the record.
- A failed download is retried a few times with backoff inside the run, then recorded on the
  attachment's ``error``. The message is stored and routed either way; only the bucket refusing
  a write fails the message (SQS then retries it whole, and the same keys are written again).
- Keys live under the conversation and derive from the envelope id and position, never from a
  name the customer chose, so a retry overwrites instead of duplicating.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from switchboard import channels
from switchboard.channels.base import FetchRequest
from switchboard.envelope import UNSUPPORTED_TEXT, Attachment, Envelope
from switchboard.http_fetch import LazySecrets
from switchboard.observability import logger
from switchboard.ports import BlobStore, Fetched, Fetcher, FetchFailed, FetchTooLarge, SecretReader, SettingsReader
from switchboard.secret_names import secret_name
from switchboard.settings import Account

ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
ATTEMPT_TIMEOUT = 20.0  # one download, connect to last byte
TIME_MARGIN = 5.0  # left to the run for storing the message and forwarding it

# What a Content-Type says the file is, for URLs with no extension (LINE's content API, GBM's
# storage URLs). Several extensions for one type: any of them allowed is enough.
_TYPE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("jpg", "jpeg"),
    "image/jpg": ("jpg", "jpeg"),
    "image/png": ("png",),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
    "image/heic": ("heic",),
    "image/heif": ("heif", "heic"),
    "application/pdf": ("pdf",),
    "text/plain": ("txt",),
    "video/mp4": ("mp4",),
    "video/quicktime": ("mov",),
    "video/webm": ("webm",),
    "video/3gpp": ("3gp",),
    "audio/mp4": ("m4a", "mp4"),
    "audio/x-m4a": ("m4a",),
    "audio/m4a": ("m4a",),
    "audio/aac": ("aac",),
    "audio/mpeg": ("mp3",),
    "audio/wav": ("wav",),
    "audio/x-wav": ("wav",),
    "audio/wave": ("wav",),
    "audio/ogg": ("ogg",),
}
_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    extensions: frozenset[str]

    @classmethod
    def of(cls, account: Account) -> Limits:
        """The account's ``attachments`` settings (``switchboard apply`` stores them with their defaults)."""
        raw = account.option("attachments")
        if not isinstance(raw, Mapping):
            from switchboard.config import ATTACHMENT_DEFAULTS

            raw = ATTACHMENT_DEFAULTS
        max_bytes = raw.get("max_bytes")
        extensions = raw.get("extensions") or ()
        return cls(
            max_bytes=max_bytes if isinstance(max_bytes, int) and max_bytes > 0 else 0,
            extensions=frozenset(str(e).lower().lstrip(".") for e in extensions),
        )


class _Refused(Exception):
    """Over one of the account's limits: keep nothing of it."""


def extension_of_name(name: str | None) -> str | None:
    if not name or "." not in name:
        return None
    ext = name.rsplit(".", 1)[1].strip().lower()
    return ext if _EXTENSION.match(ext) else None


def extension_of_url(url: str) -> str | None:
    return extension_of_name(urlsplit(url).path.rsplit("/", 1)[-1])


def extensions_of_type(content_type: str | None) -> tuple[str, ...]:
    if not content_type:
        return ()
    return _TYPE_EXTENSIONS.get(content_type.split(";", 1)[0].strip().lower(), ())


def safe_name(attachment: Attachment, extension: str | None) -> str:
    """A file name fit for a key and a download: the customer's, reduced to a safe alphabet, or the type's."""
    name = _UNSAFE.sub("_", attachment.name or "")
    name = re.sub(r"\.{2,}", ".", name).strip("._-")[-100:].lstrip("._-")
    if name:
        return name
    base = _UNSAFE.sub("_", attachment.type).strip("._-") or "attachment"
    return f"{base}.{extension}" if extension else base


def attachment_key(conversation_id: str, envelope_id: str, index: int, name: str) -> str:
    return f"conversations/{conversation_id}/{hashlib.sha256(envelope_id.encode('utf-8')).hexdigest()[:32]}/{index}-{name}"


@dataclass
class AttachmentKeeper:
    settings: SettingsReader
    secrets: SecretReader
    secrets_prefix: str
    fetcher: Fetcher
    blobs: BlobStore
    attempts: int = ATTEMPTS
    backoff_seconds: float = BACKOFF_SECONDS
    attempt_timeout: float = ATTEMPT_TIMEOUT
    sleep: Callable[[float], None] = field(default=time.sleep)
    # Seconds left in this run (the Lambda context's remaining time); None: no limit but attempt_timeout.
    time_left: Callable[[], float] | None = None

    def keep(self, envelope: Envelope, conversation_id: str) -> Envelope:
        """The envelope with each attachment kept (stored_key, size, name) or its error recorded."""
        pending = [i for i, a in enumerate(envelope.attachments) if a.stored_key is None and a.error is None]
        if not pending or envelope.channel not in channels.ADAPTERS:
            return envelope
        account = self.settings.account(envelope.account_id)
        if account is None:
            return envelope  # route has already refused the message with its configuration error
        adapter = channels.adapter(envelope.channel)
        limits = Limits.of(account)
        secrets = LazySecrets(self.secrets, secret_name(self.secrets_prefix, "account", account.id, account.channel))
        kept = list(envelope.attachments)
        refusals: list[str] = []
        for index in pending:
            attachment = kept[index]
            try:
                request = adapter.attachment_request(attachment, account, secrets)
            except KeyError as exc:  # the account's secret, or the key in it, is missing
                kept[index] = self._failed(envelope, index, attachment, f"not fetched: {exc.args[0] if exc.args else exc}")
                continue
            if request is None:
                continue
            kept[index], refusal = self._keep_one(envelope, index, attachment, request, limits, conversation_id)
            if refusal:
                refusals.append(refusal)
        envelope = envelope.with_(attachments=tuple(kept))
        if not refusals:
            return envelope
        sent: dict[str, Any] = {"kind": envelope.kind, "reasons": refusals}
        if envelope.text:
            sent["text"] = envelope.text
        return envelope.with_(kind="unsupported", text=UNSUPPORTED_TEXT, data={**envelope.data, "unsupported": sent})

    def _keep_one(
        self,
        envelope: Envelope,
        index: int,
        attachment: Attachment,
        request: FetchRequest,
        limits: Limits,
        conversation_id: str,
    ) -> tuple[Attachment, str | None]:
        extension = extension_of_name(attachment.name) or extension_of_url(request.url)
        try:
            if attachment.size is not None and attachment.size > limits.max_bytes:
                raise _Refused(f"{attachment.size} bytes is over the account's max_bytes {limits.max_bytes}")
            if extension is not None and extension not in limits.extensions:
                raise _Refused(f"extension {extension!r} is not among the account's allowed extensions")
            chosen: list[str] = []

            def check(content_type: str | None, length: int | None) -> None:
                if extension is not None:
                    return
                allowed = [e for e in extensions_of_type(content_type) if e in limits.extensions]
                if not allowed:
                    shown = (content_type or "no Content-Type").split(";", 1)[0]
                    raise _Refused(f"{shown} is not among the account's allowed extensions")
                chosen.append(allowed[0])

            fetched, failure = self._fetch(request, limits.max_bytes, check)
        except _Refused as exc:
            return self._refused(envelope, index, attachment, str(exc)), str(exc)
        except FetchTooLarge:
            reason = f"over the account's max_bytes {limits.max_bytes}"
            return self._refused(envelope, index, attachment, reason), reason
        if fetched is None:
            return self._failed(envelope, index, attachment, failure or "not fetched"), None
        name = safe_name(attachment, extension or (chosen[0] if chosen else None))
        key = attachment_key(conversation_id, envelope.id, index, name)
        self.blobs.put(key, fetched.body, content_type=fetched.content_type)
        logger.info(
            "attachment kept",
            extra={"envelope_id": envelope.id, "index": index, "stored_key": key, "size": len(fetched.body)},
        )
        return replace(attachment, stored_key=key, size=len(fetched.body), name=attachment.name or name), None

    def _fetch(
        self, request: FetchRequest, max_bytes: int, check: Callable[[str | None, int | None], None]
    ) -> tuple[Fetched | None, str | None]:
        """(fetched, None), or (None, why) once the attempts or the run's time are used up."""
        last = "not fetched"
        for attempt in range(1, self.attempts + 1):
            timeout = self.attempt_timeout
            if self.time_left is not None:
                timeout = min(timeout, self.time_left() - TIME_MARGIN)
            if timeout < 1.0:
                return None, f"{last}; no time left in this run after {attempt - 1} attempt(s)"
            try:
                return self.fetcher.get(request, max_bytes=max_bytes, timeout=timeout, check=check), None
            except FetchTooLarge:
                raise
            except FetchFailed as exc:
                last = f"not fetched after {attempt} attempt(s): {exc}"
                if not exc.retryable:
                    return None, last
            if attempt < self.attempts:
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        return None, last

    def _failed(self, envelope: Envelope, index: int, attachment: Attachment, error: str) -> Attachment:
        logger.warning("attachment not kept", extra={"envelope_id": envelope.id, "index": index, "error": error})
        return replace(attachment, error=error)

    def _refused(self, envelope: Envelope, index: int, attachment: Attachment, reason: str) -> Attachment:
        logger.info("attachment over the account's limits", extra={"envelope_id": envelope.id, "index": index, "reason": reason})
        return replace(attachment, error=f"not kept: {reason}")
