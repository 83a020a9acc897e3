"""Who may read or write: preview URL signatures (`signature.py`), presigned URLs for uploads and private
reads (`presign.py`), and the private buckets' rules (`private_buckets.py`)."""
