"""moto's real S3 server on a random loopback port, and a boto3 client to seed it."""

import boto3
from botocore.config import Config as BotoConfig
from moto.server import ThreadedMotoServer

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key-do-not-log-7f3a9c"
REGION = "eu-west-1"


class MotoS3:
    """ThreadedMotoServer on 127.0.0.1:<random>."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{self.port}"
        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, config=BotoConfig(s3={"addressing_style": "path"}))

    def create_bucket(self, name: str) -> str:
        """A new bucket in REGION."""
        self.client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def put(self, bucket: str, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        """Upload and return the ETag."""
        return str(self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)["ETag"])

    def put_file(self, bucket: str, key: str, path: str) -> None:
        """Upload a large file (boto3 uses multipart)."""
        self.client.upload_file(path, bucket, key)

    def stop(self) -> None:
        """Stop the server."""
        self._server.stop()


def s3_env(endpoint: str, **extra: str) -> dict[str, str]:
    """STORAGE_* for a path-style S3 endpoint with static keys."""
    env = {
        "STORAGE_PROVIDER": "minio",
        "STORAGE_ENDPOINT": endpoint,
        "STORAGE_ACCESS_KEY": ACCESS_KEY,
        "STORAGE_SECRET_KEY": SECRET_KEY,
        "STORAGE_REGION": REGION,
    }
    env.update(extra)
    return env
