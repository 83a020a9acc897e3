"""`preview-proxy serve | config | sample | cache ... | warm | migrate | presign | uploads ...` (the operator's
commands live in proxy.commands; warm, migrate and uploads are imported only when they run).

Every command reads the settings the same way: the environment over the env file, checked whole, then
the variables under our prefixes that nothing read are reported (errors with --strict-config).
"""

import argparse
import logging
import sys
from pathlib import Path

from proxy.build_info import build_info
from proxy.commands.cache import add_cache_commands, run_cache_command
from proxy.commands.migrate.arguments import add_migrate_command
from proxy.commands.presign import add_presign_command, run_presign_command
from proxy.commands.uploads.arguments import add_uploads_command
from proxy.commands.warm_arguments import add_warm_command
from proxy.config import Config
from proxy.logs.setup import configure_logging
from proxy.runtime.exits import exit_without_teardown
from proxy.runtime.log_redaction import register_config_secrets
from proxy.secrets.registry import SECRETS
from proxy.settings.environment.catalogue import KNOWN_NAMES
from proxy.settings.environment.in_force import as_json, as_text, settings_in_force
from proxy.settings.environment.reading import Environment, read_environment
from proxy.settings.environment.unknown_names import unknown_names
from proxy.settings.errors import ConfigError
from proxy.settings.listen_address import read_listen_address
from proxy.settings.operations.logs import read_log_config


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `preview-proxy` console script."""
    parser = argparse.ArgumentParser(prog="preview-proxy", description="Caching proxy for images in object storage.")
    parser.add_argument("--version", action="version", version=build_info().line())
    parser.add_argument("--env-file", type=Path, help="a .env file to read (default: ./.env if present)")
    parser.add_argument("--strict-config", action="store_true",
                        help="refuse to start when a variable under a preview-proxy prefix is not a setting")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the HTTP server")
    serve_parser.add_argument("--host", help="address to listen on (default: SERVER_HOST, else IMGPROXY_BIND's "
                                             "host, else 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="0 picks a free port (default: SERVER_PORT, else "
                                                       "IMGPROXY_BIND's port, else 8080)")
    serve_parser.add_argument("--workers", help="worker processes on the port, or auto (default: SERVER_WORKERS, "
                                                "else auto: one per two usable cores, beside the render host)")
    config_parser = commands.add_parser("config", help="print every setting in force and its source, secrets masked")
    config_parser.add_argument("--json", action="store_true", help="as one JSON object")
    commands.add_parser("sample", help="place a sample image in the sample bucket of local storage")
    add_cache_commands(commands)
    add_presign_command(commands)
    add_warm_command(commands)
    add_migrate_command(commands)
    add_uploads_command(commands)
    args = parser.parse_args(argv)

    try:
        env = read_environment(args.env_file)
        configure_logging(read_log_config(env))  # first: reading the rest may log
        host, port = read_listen_address(env, getattr(args, "host", None), getattr(args, "port", None))
        config = Config.from_env(env, host=host, port=port, workers=getattr(args, "workers", None))
    except ConfigError as error:
        # Messages name settings, never values; the secrets read before the error are masked anyway.
        print(f"preview-proxy: {SECRETS.redact(str(error))}", file=sys.stderr)
        return 2
    register_config_secrets(config)
    if not _names_checked(env, strict=args.strict_config):
        return 2

    if args.command == "config":
        settings = settings_in_force(config.describe(), env, KNOWN_NAMES | env.looked_up)
        # Masked already; the redaction catches a value that slipped.
        print(SECRETS.redact(as_json(settings) if args.json else as_text(settings)), end="")
        return 0
    if args.command == "cache":
        return run_cache_command(args, config)
    if args.command == "presign":
        return run_presign_command(args, config)
    if args.command == "warm":
        from proxy.commands.warm import run_warm_command  # the app's components: only when warming

        return run_warm_command(args, config)
    if args.command == "migrate":
        from proxy.commands.migrate.command import run_migrate_command  # providers and tqdm: only when migrating

        return run_migrate_command(args, config)
    if args.command == "uploads":
        from proxy.commands.uploads.run import run_uploads_command  # aiohttp's client: only when it runs

        return run_uploads_command(args, config)
    if args.command == "sample":
        from proxy.runtime.sample import place_sample, sample_url_path

        path = place_sample(config)
        print(f"sample image: {path} (served at {sample_url_path(config) or 'n/a: STORAGE_PROVIDER is not http'})")
        return 0
    exit_without_teardown(_serve(config))
    return 0  # not reached


def _names_checked(env: Environment, strict: bool) -> bool:
    """Report the variables under our prefixes that nothing read: warnings, or with `strict` errors (False)."""
    unknown = unknown_names(env, env.looked_up, env.source)
    for line in unknown:
        if strict:
            print(f"preview-proxy: {line}", file=sys.stderr)
        else:
            logging.getLogger("proxy.config").warning("%s", line)
    return not (strict and unknown)


def _serve(config: Config) -> int:
    """One process serves alone; otherwise a supervisor starts and watches the workers and the render host."""
    if config.server.supervised:
        from proxy.runtime.supervisor import Supervisor

        return Supervisor(config).run()
    from proxy.runtime.server import serve

    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
