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
- What is kept is what the allowed extension says, and nothing else: the object's Content-Type is
  the extension's (:func:`content_type_of`), never the server's header, and the bytes must start
  with that type's signature where it has one (:func:`signature_matches`). A ``.jpg`` whose bytes
  are an HTML page is refused like a disallowed extension, so the bucket never holds a document a
  browser would render as a page. Types without a reliable signature (txt, csv) are stored as their
  extension's type.
- A failed download is retried a few times with backoff inside the run, then recorded on the
  attachment's ``error``. The message is stored and routed either way; only the bucket refusing
  a write fails the message (SQS then retries it whole, and the same keys are written again).
- A platform that hands media out by id (WhatsApp) marks its request ``locates``: its answer is
  JSON naming a short-lived URL on another origin, which the adapter turns into the request for the
  bytes (:meth:`ChannelAdapter.attachment_location`, with the token the URL needs). A redirect
  would not do: the fetcher drops credentials when a hop leaves the origin, as it must.
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

from switchboard import channels, safe_json
from switchboard.channels.base import ChannelAdapter, FetchRequest
from switchboard.envelope import UNSUPPORTED_TEXT, Attachment, Envelope
from switchboard.errors import SecretMissing
from switchboard.http_fetch import LazySecrets
from switchboard.observability import logger
from switchboard.ports import BlobStore, Fetched, Fetcher, FetchFailed, FetchTooLarge, SecretReader, SettingsReader
from switchboard.secret_names import secret_name
from switchboard.settings import Account

ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
ATTEMPT_TIMEOUT = 20.0  # one download, connect to last byte
LOCATION_MAX_BYTES = 64 * 1024  # a media node's JSON (url, mime_type, sha256, file_size, id)
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

# What a kept file is stored as, by its allowed extension. Anything else is an opaque download.
_STORED_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "csv": "text/csv",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "3gp": "video/3gpp",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "zip": "application/zip",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
}
OPAQUE_TYPE = "application/octet-stream"


def _ftyp(body: bytes) -> bool:  # ISO base media (mp4, m4a, mov, 3gp, heic): a box of type "ftyp" first
    return body[4:8] == b"ftyp"


def _quicktime(body: bytes) -> bool:  # older QuickTime files open with another top-level atom
    return _ftyp(body) or body[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _riff(kind: bytes) -> Callable[[bytes], bool]:
    return lambda body: body[:4] == b"RIFF" and body[8:12] == kind


def _mpeg_audio(body: bytes) -> bool:  # an ID3 tag, or an MPEG audio frame's 11-bit sync
    return body[:3] == b"ID3" or (len(body) >= 2 and body[0] == 0xFF and body[1] & 0xE0 == 0xE0)


def _adts(body: bytes) -> bool:  # AAC: ADTS sync (12 bits, layer 0), ADIF, or an ID3 tag in front
    return body[:3] == b"ID3" or body[:4] == b"ADIF" or (len(body) >= 2 and body[0] == 0xFF and body[1] & 0xF6 == 0xF0)


def _zip(body: bytes) -> bool:  # docx, xlsx and pptx are zip archives
    return body[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def _ole(body: bytes) -> bool:  # doc, xls and ppt: the OLE2 compound file header
    return body[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _jpeg(body: bytes) -> bool:
    return body[:3] == b"\xff\xd8\xff"


# The leading bytes each type must have. Extensions absent here (txt, csv) have no reliable signature.
_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "jpg": _jpeg,
    "jpeg": _jpeg,
    "png": lambda body: body[:8] == b"\x89PNG\r\n\x1a\n",
    "gif": lambda body: body[:6] in (b"GIF87a", b"GIF89a"),
    "webp": _riff(b"WEBP"),
    "heic": _ftyp,
    "heif": _ftyp,
    "pdf": lambda body: body[:4] == b"%PDF",
    "mp4": _ftyp,
    "m4a": _ftyp,
    "3gp": _ftyp,
    "mov": _quicktime,
    "webm": lambda body: body[:4] == b"\x1a\x45\xdf\xa3",
    "mp3": _mpeg_audio,
    "aac": _adts,
    "wav": _riff(b"WAVE"),
    "ogg": lambda body: body[:4] == b"OggS",
    "zip": _zip,
    "docx": _zip,
    "xlsx": _zip,
    "pptx": _zip,
    "doc": _ole,
    "xls": _ole,
    "ppt": _ole,
}


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


def content_type_of(extension: str) -> str:
    """The Content-Type a file kept under ``extension`` is stored with, whatever its server claimed."""
    return _STORED_TYPES.get(extension, OPAQUE_TYPE)


def signature_matches(extension: str, body: bytes) -> bool | None:
    """Whether ``body`` starts like an ``extension`` file; ``None`` where the type has no reliable signature."""
    test = _SIGNATURES.get(extension)
    return None if test is None else test(body)


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
            except (KeyError, SecretMissing) as exc:  # the account's secret, or the key in it, is missing
                kept[index] = self._failed(envelope, index, attachment, f"not fetched: {exc.args[0] if exc.args else exc}")
                continue
            if request is not None and request.locates:
                request, failure = self._locate(adapter, request, attachment, account, secrets)
                if request is None:
                    kept[index] = self._failed(envelope, index, attachment, failure)
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
        kind = extension or (chosen[0] if chosen else None)
        if kind is None:  # a fetcher that never called check: no allowed type vouches for these bytes
            reason = "its type could not be determined"
            return self._refused(envelope, index, attachment, reason), reason
        if signature_matches(kind, fetched.body) is False:
            reason = f"the bytes are not a {kind} file"
            return self._refused(envelope, index, attachment, reason), reason
        name = safe_name(attachment, kind)
        key = attachment_key(conversation_id, envelope.id, index, name)
        self.blobs.put(key, fetched.body, content_type=content_type_of(kind))
        logger.info(
            "attachment kept",
            extra={"envelope_id": envelope.id, "index": index, "stored_key": key, "size": len(fetched.body)},
        )
        return replace(attachment, stored_key=key, size=len(fetched.body), name=attachment.name or name), None

    def _locate(
        self,
        adapter: ChannelAdapter,
        request: FetchRequest,
        attachment: Attachment,
        account: Account,
        secrets: Mapping[str, str],
    ) -> tuple[FetchRequest | None, str]:
        """For media handed out by id (WhatsApp): ask where the bytes are, then (the request for them, "").

        The answer is small JSON naming a short-lived URL, fetched with the same attempts and time
        budget as the bytes; (None, why) when it cannot be had or names no place.
        """
        try:  # the node's size has nothing to do with the media's: the account's max_bytes is not its limit
            fetched, failure = self._fetch(request, LOCATION_MAX_BYTES, None)
        except FetchTooLarge:
            return None, f"media not located: {request.target} answered more than {LOCATION_MAX_BYTES} bytes"
        if fetched is None:
            return None, f"media not located: {failure or 'no answer'}"
        try:
            located = adapter.attachment_location(safe_json.loads(fetched.body), attachment, account, secrets)
        except (KeyError, SecretMissing) as exc:
            return None, f"not fetched: {exc.args[0] if exc.args else exc}"
        except ValueError:  # safe_json's JsonError: not JSON, or nested past what it reads
            return None, f"media not located: {request.target} did not answer JSON"
        if located is None:
            return None, f"media not located: {request.target} named no URL"
        return located, ""

    def _fetch(
        self, request: FetchRequest, max_bytes: int, check: Callable[[str | None, int | None], None] | None
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
