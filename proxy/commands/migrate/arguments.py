"""The `migrate` subcommand's arguments: light to import, since the CLI registers it before any command runs."""

import argparse

MAX_JOBS = 64
MAX_RETRIES = 10


def add_migrate_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `migrate` on the CLI's subparsers."""
    migrate = commands.add_parser(
        "migrate", help="copy the main storage into a provider of the links file (resumable, verified)")
    migrate.add_argument("--to", required=True, metavar="ENTRY",
                         help="the remote_links.yml entry whose provider receives the copy")
    migrate.add_argument("--bucket", metavar="SRC[=DST]", action="append", default=[],
                         help="copy bucket SRC (into DST, else a bucket of the same name); repeatable. Default: "
                              "every bucket folder of local storage; required when the main storage is a cloud")
    migrate.add_argument("--prefix", default="", help="only keys that start with this text")
    migrate.add_argument("--jobs", type=_bounded("--jobs", 1, MAX_JOBS), default=4,
                         help=f"objects copied at a time (1-{MAX_JOBS}, default 4)")
    migrate.add_argument("--retries", type=_bounded("--retries", 0, MAX_RETRIES), default=4,
                         help="tries after the first on a provider error, with backoff (default 4)")
    mode = migrate.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list what would be copied and skipped; write nothing")
    mode.add_argument("--verify-only", action="store_true",
                      help="read every destination object back and compare its sha256; copy nothing")
    migrate.add_argument("--progress-every", type=float, default=5.0, metavar="SECONDS",
                         help="without a terminal: seconds between progress log lines (default 5)")


def _bounded(flag: str, low: int, high: int) -> "argparse._ActionType":
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} must be {low} to {high}")
        return value

    return parse
