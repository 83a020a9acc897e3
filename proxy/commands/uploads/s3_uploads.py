"""S3 and MinIO: the open multipart uploads of each bucket, listed or aborted.

The calls themselves are proxy.storage.cloud.signed_s3.s3_multipart's.
"""

from proxy.commands.uploads.report import Tally, complain, plural
from proxy.storage.cloud.signed_s3.s3_multipart import LIST_BUCKETS_PERMISSION, OpenUpload, S3MultipartUploads
from proxy.storage.config import StorageConfig
from proxy.storage.errors import PermissionMissing, ProviderAccessDenied, ProviderFailure, ProviderTimeout


async def run_s3(storage: StorageConfig, buckets: tuple[str, ...], older_than: float | None, dry_run: bool,
                 tally: Tally) -> int:
    """List every open upload, or abort those older than `older_than`; the exit status.

    A permission the credentials lack ends the run with one line naming it (every later call would be
    refused too); an abort that fails otherwise is counted, and the run goes on to the next.
    """
    try:
        async with S3MultipartUploads(storage) as s3:
            searched = list(buckets) or await s3.buckets()
            failed = 0
            for bucket in searched:
                async for upload in s3.open_uploads(bucket):
                    failed += await _handle(s3, upload, older_than, dry_run, tally)
    except PermissionMissing as error:
        hint = "; name the buckets with --bucket" if error.permission == LIST_BUCKETS_PERMISSION else ""
        complain(f"{error}{hint}")
        return 1
    except (ProviderAccessDenied, ProviderFailure, ProviderTimeout) as error:
        complain(str(error))
        return 1
    print(tally.summary("open multipart uploads", plural(len(searched), "bucket")), file=tally.out)
    return 1 if failed else 0


async def _handle(s3: S3MultipartUploads, upload: OpenUpload, older_than: float | None, dry_run: bool,
                  tally: Tally) -> int:
    """List, keep, or abort one upload; 1 if its abort failed (other than for a missing permission)."""
    where = (upload.bucket, upload.key, upload.upload_id, upload.initiated)
    if older_than is None:
        tally.row("open", *where)
    elif tally.age(upload.initiated) < older_than:
        tally.count("kept", upload.initiated)
    elif dry_run:
        tally.row("would abort", *where)
    else:
        try:
            tally.row("aborted" if await s3.abort(upload) else "gone", *where)
        except (ProviderFailure, ProviderTimeout) as error:
            tally.row("failed", *where)
            complain(str(error))
            return 1
    return 0
