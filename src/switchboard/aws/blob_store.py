"""The attachments bucket (:class:`~switchboard.ports.BlobStore`) over S3."""

from __future__ import annotations

from switchboard.aws.clients import client
from switchboard.errors import StoreUnavailable


class S3BlobStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, key: str, body: bytes, *, content_type: str | None) -> None:
        try:
            client("s3").put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type or "application/octet-stream",
                # Whoever opens a presigned link downloads the file rather than rendering what a customer sent.
                ContentDisposition="attachment",
            )
        except Exception as exc:  # botocore errors: the message is retried whole by SQS
            raise StoreUnavailable(f"attachments bucket unavailable: {type(exc).__name__}") from exc
