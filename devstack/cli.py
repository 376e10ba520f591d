"""Command line: ``python -m devstack <command>``.

Commands:
  up            infrastructure, databases, every service (API + worker), the gateway
  migrate       provision each service's role and schema, then run its migrations
  rotate-keys   add a new access-token signing key (the running gateway picks it up)
  env SERVICE   print the environment to run one service by hand against the stack

Environment:
  GATEWAY_PORT                  gateway port (default 8080; --port wins)
  UNPUZZLE_ADMIN_DATABASE_URL   administrative PostgreSQL URL
                                (default postgresql://postgres@127.0.0.1:5432/postgres)
  UNPUZZLE_NATS_URL             NATS with JetStream (default nats://127.0.0.1:4222)
  UNPUZZLE_REDIS_URL            Redis (default redis://127.0.0.1:6379/0)
  ADMIN_EMAIL, ADMIN_PASSWORD   create (or promote) this admin on start
  STRIPE_WEBHOOK_SECRET         webhook signing secret handed to payments
  GATEWAY_*                     any other gateway setting (gateway/settings.py)
  <SERVICE>_*                   any service setting (e.g. AUTH_ACCESS_TOKEN_TTL)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devstack.stack import (
    DEFAULT_ADMIN_URL,
    DEFAULT_DATABASE,
    DEFAULT_GATEWAY_PORT,
    DEFAULT_NATS_URL,
    DEFAULT_PREFIX,
    DEFAULT_REDIS_URL,
    Options,
    Stack,
    StackError,
    dump_env,
)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", default=DEFAULT_DATABASE, help="database name")
    common.add_argument(
        "--dev-dir", type=Path, default=Path(".dev"), help="secrets, logs, local data"
    )
    common.add_argument("--prefix", default=DEFAULT_PREFIX, help="event subject prefix")

    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="run the whole suite until Ctrl-C")
    up.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GATEWAY_PORT") or DEFAULT_GATEWAY_PORT),
        help="gateway port (env GATEWAY_PORT, default 8080)",
    )
    up.add_argument(
        "--free-ports",
        action="store_true",
        help="run the services on free ports (for a second stack beside a dev's)",
    )
    up.add_argument(
        "--fresh", action="store_true", help="drop the database first (all its data is lost)"
    )
    up.add_argument("--keys-every", type=float, default=5.0, help="seconds between JWKS refreshes")
    up.add_argument(
        "--replicas",
        type=_replicas,
        default=_replicas(os.environ.get("DEVSTACK_REPLICAS", "")),
        metavar="NAME=N[,NAME=N]",
        help="API processes per service behind the gateway, e.g. courses=2 "
        "(env DEVSTACK_REPLICAS; default 1 each)",
    )
    migrate = sub.add_parser("migrate", parents=[common], help="provision and migrate all")
    migrate.add_argument("--fresh", action="store_true", help="drop the database first")
    rotate = sub.add_parser("rotate-keys", parents=[common], help="rotate the signing key")
    rotate.add_argument("--lead", type=int, help="seconds before the new key signs")
    env = sub.add_parser("env", parents=[common], help="print a service's environment")
    env.add_argument("service")
    return parser


def _replicas(value: str) -> dict[str, int]:
    """``"courses=2,ai=2"`` -> ``{"courses": 2, "ai": 2}``."""
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, count = item.partition("=")
        if not count.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected NAME=N, got {item!r}")
        counts[name.strip()] = int(count)
    return counts


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        port=getattr(args, "port", DEFAULT_GATEWAY_PORT),
        database=args.database,
        prefix=args.prefix,
        dev_dir=args.dev_dir.resolve(),
        admin_url=os.environ.get("UNPUZZLE_ADMIN_DATABASE_URL") or DEFAULT_ADMIN_URL,
        nats_url=os.environ.get("UNPUZZLE_NATS_URL") or DEFAULT_NATS_URL,
        redis_url=os.environ.get("UNPUZZLE_REDIS_URL") or DEFAULT_REDIS_URL,
        free_ports=getattr(args, "free_ports", False),
        fresh=getattr(args, "fresh", False),
        keys_every=getattr(args, "keys_every", 5.0),
        replicas=getattr(args, "replicas", {}),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        stack = Stack(options_from(args))
        if args.command == "up":
            return stack.up()
        if args.command == "migrate":
            return stack.run_migrate()
        if args.command == "rotate-keys":
            extra = ["--lead", str(args.lead)] if args.lead is not None else []
            return stack.run_auth_command("rotate-keys", *extra)
        if args.command == "env":
            print(dump_env(stack, args.service))
            return 0
    except StackError as exc:
        print(f"devstack: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 2
