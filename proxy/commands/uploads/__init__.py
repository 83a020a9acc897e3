"""`preview-proxy uploads list | abort`: the multipart uploads a crash left open on the provider, found and aborted.

S3 and MinIO keep an upload's parts (and bill for them) until it is completed or aborted; local disk
keeps a crashed write's part file. Azure and GCS need nothing from this command: their runs say why.
"""
