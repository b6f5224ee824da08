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

    def presigned_url(self, key: str, *, expires_in: int) -> str:
        """Signed locally (no call): the platform fetches the agent's file from the bucket within ``expires_in`` s."""
        url: str = client("s3").generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url
