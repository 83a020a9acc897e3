"""The `warm` subcommand's arguments: light to import, since the CLI registers it before any command runs.

Only argparse here: the command itself (proxy.commands.warm) imports the app's components, and with
several workers prometheus_client must not be imported before the supervisor sets its folder.
"""

import argparse

MAX_JOBS = 64  # well under the render queue (IMGPROXY_REQUESTS_QUEUE_SIZE, 256 by default)


def add_warm_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `warm` on the CLI's subparsers."""
    warm = commands.add_parser("warm", help="fetch originals and render previews into the caches (safe while "
                                            "serving)")
    warm.add_argument("file", help="one source a line: s3://bucket/key, azure://container/key, google://bucket/key, "
                                   "fs://<storage id>/<path> or bucket/key; '-' reads standard input")
    warm.add_argument("--previews", metavar="OPTIONS", action="extend", nargs="+", default=[],
                      help="imgproxy options of a preview to make for every source, e.g. rs:fit:300:0/q:70 "
                           "(a whole /previews/... path is accepted too); repeatable")
    warm.add_argument("--jobs", type=_jobs, default=4, help=f"sources warmed at a time (1-{MAX_JOBS}, default 4)")
    warm.add_argument("--dry-run", action="store_true", help="check the file and options, list what would be warmed")
    warm.add_argument("--progress-every", type=float, default=5.0, metavar="SECONDS",
                      help="without a terminal: seconds between progress log lines (default 5)")


def _jobs(text: str) -> int:
    jobs = int(text)
    if not 1 <= jobs <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"--jobs must be 1 to {MAX_JOBS}")
    return jobs
