"""The SigV4-signed S3 calls obstore lacks: listing and aborting multipart uploads, with static keys
or an IAM role's."""
