"""The ``peerlearn`` command: serve, migrate, check, create-admin, seed-demo, recommender-eval,
loadtest."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from config.settings import ConfigError, Settings, deploy_checks, load_settings
from control.db import Database, DatabaseNotMigrated

#: Set by ``peerlearn serve --workers N`` for each worker it starts (``web.workers``).
WORKER_INDEX_VARIABLE = "PEERLEARN_CLUSTER__WORKER_INDEX"


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, object]] = {}
    if getattr(args, "host", None):
        overrides.setdefault("server", {})["host"] = args.host
    if getattr(args, "port", None):
        overrides.setdefault("server", {})["port"] = args.port
    if getattr(args, "workers", None):
        overrides.setdefault("cluster", {})["workers"] = args.workers
    return load_settings(args.config, overrides=overrides or None)


def _database(settings: Settings) -> Database:
    return Database(settings.database_url, echo=settings.database.echo)


def _database_problem(settings: Settings, exc: BaseException) -> str:
    where = settings.database_url.split("://", 1)[0]
    if isinstance(exc, DatabaseNotMigrated):
        return str(exc)
    return f"cannot use the {where} database: {type(exc).__name__}: {exc}".splitlines()[0]


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web
    from sqlalchemy.exc import SQLAlchemyError

    from web.app import create_app
    from web.middlewares import RedactingAccessLogger

    settings = _settings(args)
    workers = settings.cluster.worker_count
    if settings.cluster.clustered and not settings.redis.url:
        what = f"{workers} workers" if workers > 1 else "[cluster] enabled"
        print(
            f"peerlearn: {what} need [redis] url (PEERLEARN_REDIS__URL): "
            "nodes share rooms through Redis",
            file=sys.stderr,
        )
        return 2
    from web.logcontext import configure_logging

    configure_logging(settings.logging.format)  # request and room ids on every line
    if settings.is_production:
        # The same checks as `peerlearn check --deploy`: production never starts unsafe.
        errors = [c for c in deploy_checks(settings) if c.level == "error"]
        if errors:
            print(
                f"peerlearn: refusing to serve in production: {errors[0].line()}", file=sys.stderr
            )
            for extra in errors[1:]:
                print(f"peerlearn:   also {extra.line()}", file=sys.stderr)
            return 2
        for warning in deploy_checks(settings):
            if warning.level == "warning":
                print(f"peerlearn: {warning.line()}", file=sys.stderr)
    elif settings.server.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"peerlearn: warning: development mode listening on {settings.server.host}: "
            "anyone who can reach it gets development defaults; see `peerlearn check --deploy`",
            file=sys.stderr,
        )

    async def check_database() -> None:
        # Before listening: production refuses an unmigrated schema, development migrates;
        # either way a bad URL or a stopped server is one clear line, not a traceback.
        db = _database(settings)
        try:
            await db.prepare(production=settings.is_production)
        finally:
            await db.dispose()

    try:
        asyncio.run(check_database())
    except (DatabaseNotMigrated, SQLAlchemyError, OSError) as exc:
        print(f"peerlearn: {_database_problem(settings, exc)}", file=sys.stderr)
        return 2
    if workers > 1 and WORKER_INDEX_VARIABLE not in os.environ:
        from web.workers import supervise

        return supervise(workers, settings.cluster.drain_grace_s)
    app = create_app(settings)
    listening = (
        f"PeerLearn ({settings.server.mode}) on http://{settings.server.host}:{settings.server.port}/"
        f"  database: {settings.database_url.split('://', 1)[0]}"
    )
    try:
        web.run_app(
            app,
            host=settings.server.host,
            port=settings.server.port,
            reuse_port=workers > 1 or None,  # workers of one machine share the HTTP port
            # A node of a cluster drains within its grace; a lone node keeps aiohttp's 60 s.
            shutdown_timeout=settings.cluster.drain_grace_s if settings.cluster.clustered else 60.0,
            print=lambda _aiohttp_banner: print(listening, flush=True),  # once bound
            access_log_class=RedactingAccessLogger,  # no credential ever reaches the log
        )
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        where = f"{settings.server.host}:{settings.server.port}"
        print(f"peerlearn: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> str | None:
        db = _database(settings)
        try:
            await db.migrate(args.revision)
            return await db.current_revision()
        finally:
            await db.dispose()

    from sqlalchemy.exc import SQLAlchemyError

    try:
        revision = asyncio.run(run())
    except (SQLAlchemyError, OSError) as exc:
        print(f"peerlearn: {_database_problem(settings, exc)}", file=sys.stderr)
        return 2
    print(f"database at revision {revision}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Settings problems; with ``--deploy`` the production checks (exit 1 on any error)."""
    settings = _settings(args)
    if not args.deploy:
        print("settings are valid (add --deploy for the production checks)")
        return 0
    checks = deploy_checks(settings)
    for check in checks:
        print(check.line())
    errors = sum(c.level == "error" for c in checks)
    warnings = len(checks) - errors
    print(f"{errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    from control.errors import DomainError
    from control.platform import Platform

    settings = _settings(args)
    password = args.password or os.environ.get("PEERLEARN_ADMIN_PASSWORD")
    if not password:
        password = getpass.getpass("Password for the new admin: ")

    async def run() -> str:
        platform = Platform(settings)
        try:
            await platform.db.prepare(production=settings.is_production)
            user = await platform.accounts.create_admin(args.username, args.email, password)
            return user.username
        finally:
            await platform.close()

    try:
        name = asyncio.run(run())
    except (DomainError, DatabaseNotMigrated) as exc:
        fields = getattr(exc, "fields", None)
        detail = f" ({', '.join(f'{k}: {v}' for k, v in fields.items())})" if fields else ""
        print(f"peerlearn: {exc}{detail}", file=sys.stderr)
        return 1
    print(f"admin '{name}' created")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from control.demo import seed_demo

    settings = _settings(args)
    try:
        summary = asyncio.run(seed_demo(settings, password=args.password))
    except DatabaseNotMigrated as exc:
        print(f"peerlearn: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def cmd_recommender_eval(args: argparse.Namespace, rest: list[str]) -> int:
    """Offline evaluation with the configured blend; ``--database`` reads the real data."""
    from control.platform import Platform
    from recommender.data import Snapshot
    from recommender.evaluation import main as evaluation_main
    from web.recommendations import load_snapshot, weights_from_settings

    settings = _settings(args)

    def database() -> Snapshot:
        async def read() -> Snapshot:
            platform = Platform(settings)
            try:
                await platform.db.require_migrated()
                return await load_snapshot(platform)
            finally:
                await platform.close()

        return asyncio.run(read())

    from sqlalchemy.exc import SQLAlchemyError

    try:
        return evaluation_main(
            rest, weights=weights_from_settings(settings.recommender), database=database
        )
    except (DatabaseNotMigrated, OSError, SQLAlchemyError) as exc:  # only --database reads it
        print(f"peerlearn: {_database_problem(settings, exc)}", file=sys.stderr)
        return 2


def _workers(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError('a number of workers or "auto"') from None
    if not 1 <= count <= 256:
        raise argparse.ArgumentTypeError("between 1 and 256 workers")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peerlearn", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (default: PEERLEARN_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web server, SFU and background jobs")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=_workers,
        help='worker processes, each a node ("auto" = one per core; default [cluster] workers)',
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(func=cmd_migrate)

    check = sub.add_parser("check", help="validate the settings (--deploy: production checks)")
    check.add_argument(
        "--deploy", action="store_true", help="refuse unsafe production settings (exit 1)"
    )
    check.set_defaults(func=cmd_check)

    admin = sub.add_parser("create-admin", help="create an administrator account")
    admin.add_argument("username")
    admin.add_argument("email")
    admin.add_argument("--password", help="default: PEERLEARN_ADMIN_PASSWORD or a prompt")
    admin.set_defaults(func=cmd_create_admin)

    demo = sub.add_parser("seed-demo", help="fill an empty database with demo mentors/sessions")
    demo.add_argument("--password", default="demo-password-1")
    demo.set_defaults(func=cmd_seed_demo)

    sub.add_parser(
        "recommender-eval",
        help="offline evaluation of the recommender (see `peerlearn recommender-eval --help`)",
        add_help=False,
    ).set_defaults(func=cmd_recommender_eval)

    # Against any running server, through its API and sockets (web/loadtest/).
    from web.loadtest.command import add_arguments
    from web.loadtest.command import main as cmd_loadtest

    loadtest = sub.add_parser(
        "loadtest", help="R rooms x N headless participants with media, then a table"
    )
    add_arguments(loadtest)
    loadtest.set_defaults(func=cmd_loadtest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Alembic announces its dialect on every schema check; migrations log their own line.
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    try:
        if args.command == "recommender-eval":
            return cmd_recommender_eval(args, rest)
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        return int(args.func(args))
    except ConfigError as exc:
        print(f"peerlearn: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
