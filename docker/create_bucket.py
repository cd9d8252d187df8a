"""Create the stack's artifact bucket once the S3 API answers (compose's ``create-bucket``).

Runs in the MLflow image (boto3 from requirements-mlflow.lock) against any S3 API: MinIO, or the
moto stand-in where no image registry answers. Polls until the API answers, then creates the
bucket unless it exists; exit 0 when it exists, 1 with one line when the API never answered.

    python /srv/create_bucket.py BUCKET    (S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ..._SECRET_...)
"""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def main(bucket: str, endpoint: str, deadline_s: float = 120.0) -> int:
    """Create ``bucket`` at ``endpoint``, waiting up to ``deadline_s`` for the API.

    Args:
        bucket: The bucket's name.
        endpoint: The S3 API's URL.
        deadline_s: Seconds to wait for the API to answer.

    Returns:
        0 when the bucket exists, 1 when the API never answered.
    """
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    start, last = time.monotonic(), ""
    while time.monotonic() - start < deadline_s:
        try:
            names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            if bucket not in names:
                s3.create_bucket(Bucket=bucket)
            print(f"create-bucket: s3://{bucket} ready at {endpoint}")
            return 0
        except (BotoCoreError, ClientError) as err:  # not up yet, or refusing: try again
            last = str(err)
            time.sleep(1)
    print(f"create-bucket: {endpoint} did not answer in {deadline_s:.0f} s ({last})",
          file=sys.stderr)  # fmt: skip
    return 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: create_bucket.py BUCKET (with S3_ENDPOINT_URL set)", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], os.environ.get("S3_ENDPOINT_URL", "http://minio:9000")))
