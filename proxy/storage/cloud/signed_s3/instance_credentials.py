"""An IAM role's temporary keys from the EC2 instance metadata service (IMDSv2), for the S3 calls we sign ourselves.

obstore fetches them itself for the provider's calls (STORAGE_IAM_ROLE, STORAGE_METADATA_ENDPOINT); the
calls obstore lacks (proxy.storage.cloud.signed_s3.s3_multipart) ask the same service the same way: a session
token (PUT /latest/api/token), the role attached to the instance, then that role's keys.
"""

import json

import aiohttp

from proxy.secrets.registry import SECRETS
from proxy.storage.cloud.signed_s3.sigv4 import SigningKeys
from proxy.storage.errors import ProviderAccessDenied

DEFAULT_METADATA_ENDPOINT = "http://169.254.169.254"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"
TOKEN_TTL_SECONDS = "300"  # the session lasts as long as the command needs, no longer


async def instance_keys(session: aiohttp.ClientSession, endpoint: str | None, region: str) -> SigningKeys:
    """The role's keys and session token; ProviderAccessDenied (naming no secret) if the service has none."""
    base = (endpoint or DEFAULT_METADATA_ENDPOINT).rstrip("/")
    try:
        async with session.put(f"{base}/latest/api/token",
                               headers={"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL_SECONDS}) as response:
            response.raise_for_status()
            headers = {"X-aws-ec2-metadata-token": await response.text()}
        async with session.get(f"{base}{CREDENTIALS_PATH}", headers=headers) as response:
            response.raise_for_status()
            role = (await response.text()).strip().splitlines()[0]
        async with session.get(f"{base}{CREDENTIALS_PATH}{role}", headers=headers) as response:
            response.raise_for_status()
            document = json.loads(await response.text())
        keys = SigningKeys(document["AccessKeyId"], document["SecretAccessKey"], region,
                           session_token=document.get("Token"))
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, IndexError) as error:
        raise ProviderAccessDenied(f"no IAM role credentials from the instance metadata service at {base} "
                                   f"({type(error).__name__})") from None
    SECRETS.add(*(secret for secret in (keys.secret_key, keys.session_token) if secret))
    return keys
