"""An IIIF identifier resolved like a preview's source, after the checks that keep IIIF a closed door.

`photos%2Fa.jpg` is `photos/a.jpg` of the main storage, `s3%3A%2F%2Fphotos%2Fa.jpg` the link
`s3://photos/a.jpg` through the links file (proxy/routes/links.py source_originals). Before any I/O:
its bucket must be listed in IIIF_BUCKETS (else 404, so nothing is told of other buckets) and not be
private (403: an IIIF URL carries no signature or token, so nothing could open it).
"""

from aiohttp import web

from proxy.app_keys import CONFIG
from proxy.errors import IiifBucketNotServed, IiifPrivateBucket, NotFound
from proxy.routes.links import source_originals
from proxy.storage.provider import ObjectRef
from proxy.tiers.originals import Originals


def resolve_identifier(app: web.Application, identifier: str) -> tuple[Originals, ObjectRef]:
    """The Originals and object an identifier names, or NotFound, IiifBucketNotServed or IiifPrivateBucket."""
    if "/" not in identifier:
        raise NotFound("no such image: an identifier is <bucket>/<key> or a link, percent-encoded")
    config = app[CONFIG]
    originals, ref = source_originals(app, identifier)
    if not config.iiif.serves(ref.bucket):
        raise IiifBucketNotServed()
    if config.private_buckets.is_private(ref.bucket):
        raise IiifPrivateBucket()
    return originals, ref
