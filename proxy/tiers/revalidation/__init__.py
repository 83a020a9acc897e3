"""Revalidation of cached originals that can change (linked buckets, CACHE_REVALIDATE): docs/revalidation.md."""
