"""Benchmark of the write path: preview-proxy's uploads and `migrate` against boto3 and rclone, side by side.

Run:  .venv/bin/python -m tests.benchmarks.write_path [--quick] [--only upload,migrate] [--update-docs]
(the module `__main__.py`; rclone comes from Debian: `bash tests/benchmarks/peers.sh --install-only`).
"""
