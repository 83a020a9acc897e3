"""The `uploads` subcommands' arguments: argparse only, light to import (the CLI registers them before any runs)."""

import argparse

from proxy.settings.units import parse_duration


def add_uploads_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `uploads list` and `uploads abort` on the CLI's subparsers."""
    uploads = commands.add_parser("uploads", help="list or abort multipart uploads left open by a crash")
    actions = uploads.add_subparsers(dest="uploads_command", required=True)
    listing = actions.add_parser("list", help="list the open multipart uploads: key, upload id, initiated, age")
    abort = actions.add_parser("abort", help="abort the open multipart uploads older than --older-than")
    abort.add_argument("--older-than", type=_age, required=True, metavar="AGE",
                       help="only uploads started longer ago than this: 90m, 12h, 1d (0s: every one)")
    abort.add_argument("--dry-run", action="store_true", help="list what would be aborted, abort nothing")
    for parser in (listing, abort):
        parser.add_argument("--link", metavar="NAME", help="an entry of the links file instead of the main storage")
        parser.add_argument("--bucket", action="append", default=[], metavar="NAME",
                            help="only this bucket (repeatable; default: the link's buckets, or every bucket "
                                 "the credentials can list)")


def _age(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration such as 12h or 1d") from None
