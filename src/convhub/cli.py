"""``convhub``: serve, migrate, and manage accounts, apps and keys.

Every mistake a person can make here ends in one line on stderr saying what is wrong and what to
do, and a non-zero exit: ``main`` turns the errors into those lines in one place (``_explain``);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import NoReturn

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from convhub.config import Settings, check_redis_url, parse_rate_limits, parse_redis_failure
from convhub.domain import directory
from convhub.domain.models import EntityStatus
from convhub.domain.permissions import parse_permissions
from convhub.domain.ports import UnitOfWork
from convhub.errors import ConfigError
from convhub.store import migrate
from convhub.store.backup import backup_sqlite
from convhub.store.engine import (
    DEFAULT_DATABASE_URL,
    create_database_engine,
    mask_url,
    parse_database_url,
    sqlite_file,
)
from convhub.store.unit_of_work import transaction

# Not uvicorn's "trace": it logs every header, Authorization included.
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_EXIT_USAGE, _EXIT_INTERRUPTED, _EXIT_BROKEN_PIPE = 2, 130, 141  # 141: as if killed by SIGPIPE


class _UsageError(Exception):
    """A command line argparse cannot read; main prints it as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 1 to 65535")
    return int(text)


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number of seconds, 0 or more")
    return int(text)


def _cores() -> int:
    """The cores this process may run on (a container's CPU set, where there is one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use 1 or more worker processes")
    return int(text)


# --------------------------------------------------------------------------- where, and how


def _database_url(args: argparse.Namespace) -> tuple[str, str]:
    """The database URL and where it came from (for the messages)."""
    if args.database_url:
        return str(args.database_url), "--database-url"
    if os.environ.get("CONVHUB_DATABASE_URL"):
        return os.environ["CONVHUB_DATABASE_URL"], "CONVHUB_DATABASE_URL"
    return DEFAULT_DATABASE_URL, "the default database URL"


def _program() -> str:
    """How to run convhub again from here: ``convhub`` when that is on PATH (or unknown), else
    the path it was run by (``.venv/bin/convhub`` under ``make serve``)."""
    script = Path(sys.argv[0])
    if script.name != "convhub":
        return "convhub"
    found = shutil.which("convhub")
    if found and Path(found).resolve() == script.resolve():
        return "convhub"
    try:
        return str(script.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(script.resolve())


def _command(url: str, words: str) -> str:
    """A convhub command line to suggest, on the same database (its password masked)."""
    database = "" if url == DEFAULT_DATABASE_URL else f" --database-url {mask_url(url)}"
    return f"`{_program()} {words}{database}`"


# --------------------------------------------------------------------------- serve


def _stopped(signum: int, frame: object) -> None:
    # uvicorn raises SIGTERM again once it has stopped gracefully; that stop is a success, so end
    # the way it ends a Ctrl-C, by the KeyboardInterrupt caught around the server, and exit 0.
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    # prometheus_client picks its mode when first imported, here: one process keeps its values in
    # memory, never in a directory inherited from the environment (stale values would count).
    # Several workers get a fresh directory of their own (see _bootstrap_and_serve).
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from convhub import observe  # noqa: F401  (imported now, for the reason above)

    url: str = args.url
    overrides = {"CONVHUB_DATABASE_URL": url}
    if args.rate_limits:
        try:
            parse_rate_limits(args.rate_limits)
        except ValueError as error:
            raise ConfigError(f"--rate-limits {args.rate_limits!r}: {error}") from None
        overrides["CONVHUB_RATE_LIMITS"] = args.rate_limits
    if args.redis_url:
        overrides["CONVHUB_REDIS_URL"] = args.redis_url
        check_redis_url(args.redis_url, source="--redis-url")
    if args.redis_failure:
        overrides["CONVHUB_REDIS_FAILURE"] = parse_redis_failure(args.redis_failure)
    log_format = args.log_format or os.environ.get("CONVHUB_LOG_FORMAT") or "text"
    if log_format not in ("text", "json"):
        raise ConfigError(f"CONVHUB_LOG_FORMAT={log_format!r} is not usable: it takes text or json")
    overrides["CONVHUB_LOG_FORMAT"] = log_format
    # Every setting is checked here, once, before the schema is touched or a worker starts.
    settings = Settings.from_env({**os.environ, **overrides})
    database_file = sqlite_file(url)
    if database_file is not None and args.workers > 1:
        raise ConfigError(
            f"--workers {args.workers} on SQLite: processes take turns at its one write lock, "
            "and measured with 2 workers writes waited up to 1.2 s (p99) against 70 ms with "
            "one (README, The CLI). Serve SQLite with one worker, or PostgreSQL "
            "(--database-url postgresql://...) with several"
        )
    migrate.upgrade(url)
    with ExitStack() as held:
        if database_file is not None:
            held.enter_context(_serving_alone(database_file, url))
        _bootstrap_and_serve(args, url, settings, overrides)
    return 0


def _bootstrap_and_serve(
    args: argparse.Namespace, url: str, settings: Settings, overrides: dict[str, str]
) -> None:
    engine = create_database_engine(url, pool_size=1)
    try:
        with transaction(engine) as uow:  # all of it, or none of it
            made = directory.bootstrap_if_empty(uow, now=int(time.time()))
            named_default = uow.access.account_named(directory.DEFAULT_ACCOUNT) is not None
    finally:
        engine.dispose()
    if made is None:
        account = directory.DEFAULT_ACCOUNT if named_default else "NAME"
        print(
            f"convhub: serving {mask_url(url)}. New credentials: "
            + _command(url, f"keys create --account {account}")
            + ", "
            + _command(url, f"tokens create --account {account} --user NAME"),
            flush=True,
        )
    else:
        done = "completed an unfinished first start" if made.completed else "first start"
        print(
            f"convhub: {done} on {mask_url(url)}; account {made.account!r} has app "
            f"{made.app_id} and a new access key and token.\n"
            f"  AppId      {made.app_id}\n"
            f"  AccessKey  {made.key.access_key}\n"
            f"  SecretKey  {made.key.secret_key}\n"
            f"  Token      {made.token.token}\n"
            "The secret key and the token are shown this once. More: "
            + _command(url, "keys create --account default")
            + ", "
            + _command(url, "tokens create --account default --user NAME"),
            flush=True,
        )
    if args.workers > 1 and not settings.redis_url:
        print(
            "convhub: warning: several workers without --redis-url count rate limits per worker",
            file=sys.stderr,
        )
    cores = _cores()
    if args.workers > cores:
        print(
            f"convhub: warning: --workers {args.workers} on {cores} cores: measured on 2 cores, "
            "4 workers served 7-36% fewer requests a second than 2 (README, Benchmark)",
            file=sys.stderr,
        )
    import uvicorn

    from convhub import observe, workers
    from convhub.edge import HttpToolsProtocol

    log_config = observe.logging_config(
        log_format=overrides["CONVHUB_LOG_FORMAT"], level=args.log_level, access_log=args.access_log
    )
    os.environ.update(overrides)  # the workers build their app from CONVHUB_*
    # Several workers add their metrics up through a fresh directory of their own.
    metrics: AbstractContextManager[object] = (
        observe.multiprocess_directory() if args.workers > 1 else nullcontext()
    )
    signal.signal(signal.SIGTERM, _stopped)
    config = uvicorn.Config(
        "convhub.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=HttpToolsProtocol,
        ws="none",  # no WebSockets here: an upgrade request is answered as plain HTTP
        access_log=False,  # convhub logs each request itself (convhub.access)
        # Nothing reads the peer's address or scheme: rewriting them from X-Forwarded-* on
        # every request cost 3% of a Modify.
        proxy_headers=False,
        log_config=log_config,
        log_level=args.log_level,
        lifespan="on",
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    with metrics, suppress(KeyboardInterrupt):  # as uvicorn.run
        workers.serve(config)  # several workers: each listens on a socket of its own


@contextmanager
def _serving_alone(path: Path, url: str) -> Iterator[None]:
    """Hold a lock on the SQLite file while this process serves (the kernel drops it when the
    process ends, however it ends): a second ``serve`` on the same file would fight this one
    for SQLite's write lock, the way several workers would."""
    with path.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another convhub serve is serving {mask_url(url)}: one process serves a "
                "SQLite file (stop that one, or use PostgreSQL for several processes)"
            ) from None
        yield


# --------------------------------------------------------------------------- the database


@contextmanager
def _existing(url: str) -> Iterator[Engine]:
    """An engine on a database that exists already: admin commands never create one."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise ConfigError(
            f"no database at {mask_url(url)} ({path.resolve()} does not exist): start "
            f"{_command(url, 'serve')} once to create it, or run {_command(url, 'db upgrade')}"
        )
    engine = create_database_engine(url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def _schema_problem(url: str, revision: str | None) -> str | None:
    """What keeps this convhub from using the database's schema, if anything."""
    head = migrate.head()
    if revision == head:
        return None
    upgrade, serve = _command(url, "db upgrade"), _command(url, "serve")
    if revision is None:
        return f"{mask_url(url)} has no convhub tables: run {upgrade} (or start {serve})"
    if revision in {m.revision for m in migrate.history()}:
        return (
            f"{mask_url(url)} is at schema revision {revision}, behind this convhub's {head}: "
            f"run {upgrade} (or start {serve}, which upgrades)"
        )
    return (
        f"{mask_url(url)} is at schema revision {revision}, which this convhub does not know "
        f"(its newest is {head}): use the newer convhub that wrote it"
    )


def _db(args: argparse.Namespace) -> int:
    url: str = args.url
    if args.verb == "upgrade":
        migrate.upgrade(url, args.revision)
        with _existing(url) as engine:
            _print_revision(url, engine)
        return 0
    with _existing(url) as engine:
        revision = migrate.current(engine)
        if args.verb == "downgrade":
            migrate.downgrade(url, args.revision)
            _print_revision(url, engine)
        elif args.verb == "current":
            problem = _schema_problem(url, revision)
            if problem is not None:
                raise ConfigError(problem)
            print(f"{revision} (head)")
        elif args.verb == "history":
            head = migrate.head()
            for migration in migrate.history():
                mark = "*" if migration.revision == revision else " "
                last = "  (head)" if migration.revision == head else ""
                print(f"{mark} {migration.revision}  {migration.summary}{last}")
            if revision is None:
                print(_schema_problem(url, revision), file=sys.stderr)
        else:
            _backup(url, revision, Path(args.file))
    return 0


def _print_revision(url: str, engine: Engine) -> None:
    revision = migrate.current(engine) or "base (no convhub tables)"
    print(f"{mask_url(url)} is at schema revision {revision}")


def _backup(url: str, revision: str | None, target: Path) -> None:
    source = sqlite_file(url)
    if source is None:
        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=True)
        raise ConfigError(
            "db backup copies SQLite files; for PostgreSQL use pg_dump: "
            f"pg_dump --format=custom --file={target} '{libpq}' (restore: pg_restore)"
        )
    if revision is None:
        raise ConfigError(str(_schema_problem(url, revision)))
    size = backup_sqlite(source, target)
    print(f"backed up {mask_url(url)} (schema revision {revision}) to {target}, {size} bytes")


# --------------------------------------------------------------------------- accounts, apps, keys


def _print_rows(rows: Sequence[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("(none)")
        return
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _admin(args: argparse.Namespace) -> int:
    url: str = args.url
    with _existing(url) as engine:
        problem = _schema_problem(url, migrate.current(engine))
        if problem is not None:
            raise ConfigError(problem)
        with transaction(engine) as uow:
            return _admin_command(uow, args)


def _admin_command(uow: UnitOfWork, args: argparse.Namespace) -> int:
    what, verb = args.what, args.verb
    now = int(time.time())
    status = EntityStatus.DISABLED if verb == "disable" else EntityStatus.ACTIVE
    if what == "accounts":
        if verb == "create":
            directory.create_account(uow, args.name, now=now)
            print(f"created account {args.name!r}")
        elif verb == "list":
            _print_rows(directory.list_accounts(uow), args.json)
        else:
            directory.set_account_status(uow, args.name, status)
            print(f"{verb}d account {args.name!r}")
    elif what == "apps":
        if verb == "create":
            app_id = directory.create_app(
                uow, args.account, now=now, name=args.name, app_id=args.app_id
            )
            print(f"created app {app_id} for account {args.account!r}")
        elif verb == "list":
            _print_rows(directory.list_apps(uow, args.account), args.json)
        else:
            directory.set_app_status(uow, args.app_id, status)
            print(f"{verb}d app {args.app_id}")
    elif what == "tokens":
        if verb == "create":
            try:
                permissions = parse_permissions(args.permissions) if args.permissions else None
            except ValueError as error:
                raise directory.DirectoryError(str(error)) from None
            made = directory.create_token(
                uow,
                args.account,
                user=args.user,
                now=now,
                app_id=args.app_id,
                permissions=permissions,
                expires_in=args.expires_in,
                name=args.name,
            )
            print(f"TokenId  {made.id}\nToken    {made.token}")
            print("The token is shown this once.", file=sys.stderr)
        elif verb == "list":
            _print_rows(directory.list_tokens(uow, args.account), args.json)
        else:
            directory.revoke_token(uow, args.token_id)
            print(f"revoked token {args.token_id}")
    elif what == "keys":
        if verb == "create":
            key = directory.create_key(uow, args.account, now=now)
            print(f"AccessKey  {key.access_key}\nSecretKey  {key.secret_key}")
            print("The secret key is shown this once.", file=sys.stderr)
        elif verb == "list":
            _print_rows(directory.list_keys(uow, args.account), args.json)
        else:
            directory.set_key_status(uow, args.access_key, status)
            print(f"{verb}d key {args.access_key}")
    return 0


# --------------------------------------------------------------------------- the command line


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convhub", description="serve, migrate, and manage accounts, apps and keys"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
    common = _Parser(add_help=False)
    common.add_argument(
        "--database-url",
        help=f"SQLAlchemy URL (env CONVHUB_DATABASE_URL; default {DEFAULT_DATABASE_URL})",
    )
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument("--workers", type=_workers, default=1)
    serve.add_argument(
        "--redis-url", help="share rate limits through Redis (env CONVHUB_REDIS_URL)"
    )
    serve.add_argument(
        "--rate-limits", help='e.g. "CreateConversation=50,*=100" (per account, per second)'
    )
    serve.add_argument(
        "--redis-failure",
        choices=("open", "closed"),
        help="while Redis is unreachable: count limits per process (open, the default) or "
        "refuse with 503 (closed) (env CONVHUB_REDIS_FAILURE)",
    )
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one line per request on stdout (default: on)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text (default) or one JSON object a line (env CONVHUB_LOG_FORMAT)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=_LOG_LEVELS, help="debug also shows tracebacks"
    )
    serve.add_argument(
        "--graceful-timeout",
        type=_seconds,
        default=30,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take before they are cancelled",
    )
    serve.set_defaults(run=_serve)

    db = sub.add_parser("db", help="schema migrations and backups")
    db_verbs = db.add_subparsers(dest="verb", required=True)
    upgrade = db_verbs.add_parser("upgrade", parents=[common], help="migrate (default: to head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db_verbs.add_parser("downgrade", parents=[common], help="migrate back")
    downgrade.add_argument("revision")
    db_verbs.add_parser(
        "current", parents=[common], help="the schema revision (exit 1 unless at head)"
    )
    db_verbs.add_parser("history", parents=[common], help="the migrations; * marks the current")
    backup = db_verbs.add_parser("backup", parents=[common], help="copy a SQLite database")
    backup.add_argument("file", help="the copy to write (must not exist)")
    for p in (upgrade, downgrade, backup):
        p.set_defaults(run=_db)
    for name in ("current", "history"):
        db_verbs.choices[name].set_defaults(run=_db)

    groups = {
        "accounts": "accounts (they own apps and keys)",
        "apps": "apps (AppId) of an account",
        "keys": "access keys of an account",
    }
    for what, help_text in groups.items():
        verbs = sub.add_parser(what, help=help_text).add_subparsers(dest="verb", required=True)
        for verb in ("create", "list", "disable", "enable"):
            p = verbs.add_parser(verb, parents=[common])
            p.set_defaults(run=_admin, what=what)
            if verb == "list":
                p.add_argument("--json", action="store_true")
                if what != "accounts":
                    p.add_argument("--account")
            elif what == "accounts":
                p.add_argument("name")
            elif what == "apps":
                if verb == "create":
                    p.add_argument("--account", required=True)
                    p.add_argument("--name", default="")
                    p.add_argument("--app-id", type=int)
                else:
                    p.add_argument("app_id", type=int)
            elif verb == "create":
                p.add_argument("--account", required=True)
            else:
                p.add_argument("access_key")
    tokens = sub.add_parser("tokens", help="Coze personal access tokens of a user of an account")
    verbs = tokens.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", parents=[common])
    create.add_argument("--account", required=True)
    create.add_argument("--user", required=True, help="the user the token acts as")
    create.add_argument("--app-id", type=int, help="the app it acts in (default: the first)")
    create.add_argument(
        "--permissions", help="comma-separated, e.g. createConversation (default: all)"
    )
    create.add_argument("--expires-in", type=int, help="seconds until it expires (default: never)")
    create.add_argument("--name", default="")
    listing = verbs.add_parser("list", parents=[common])
    listing.add_argument("--account")
    listing.add_argument("--json", action="store_true")
    revoke = verbs.add_parser("revoke", parents=[common])
    revoke.add_argument("token_id", type=int)
    for p in (create, listing, revoke):
        p.set_defaults(run=_admin, what="tokens")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as error:
        print(error, file=sys.stderr)
        return _EXIT_USAGE
    debug = args.debug or getattr(args, "log_level", None) == "debug"
    url, source = _database_url(args)
    try:
        try:
            parse_database_url(url, source=source)
            args.url = url
            code = int(args.run(args))
            sys.stdout.flush()  # a closed pipe shows here, while the error can still be caught
            return code
        except BrokenPipeError:
            # The reader (`| head`) has gone: stop quietly, as Unix tools do, with nothing more
            # written to the closed pipe when Python flushes stdout on its way out.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return _EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return _EXIT_INTERRUPTED
    except Exception as error:
        if debug:
            raise
        print(f"convhub: {_explain(error, url, source)}", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- errors, as one line


def _explain(error: Exception, url: str, source: str) -> str:
    """One line for a person: what went wrong and what to do. The one place errors are turned
    into words; anything not foreseen here says so and points at ``--debug``."""
    if isinstance(error, ConfigError | directory.DirectoryError):
        return str(error)
    if isinstance(error, DBAPIError | sqlite3.Error):
        cause = error.orig if isinstance(error, DBAPIError) else error
        return _database_problem(cause or error, url, source)
    if isinstance(error, ArgumentError):
        return f"{source} {mask_url(url)!r}: {error}"
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    if isinstance(error, CommandError | RevisionError):
        text = str(error).splitlines()[0]
        if "Can't locate revision" in text or isinstance(error, RevisionError):
            return (
                f"{text}: the revisions are those {_command(url, 'db history')} lists, "
                "or head, base, +N, -N"
            )
        return f"migration refused: {text}"
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return (
        f"unexpected error: {type(error).__name__}: {error} (run again with --debug "
        "for the traceback, and please report it)"
    )


def _database_problem(cause: BaseException, url: str, source: str) -> str:
    text = str(cause).strip()
    first = text.splitlines()[0] if text else type(cause).__name__
    masked = mask_url(url)
    path = sqlite_file(url)
    if path is not None:
        name = getattr(cause, "sqlite_errorname", "")
        folder = path.resolve().parent
        if name == "SQLITE_CANTOPEN" or "readonly" in name.lower() or "readonly" in text:
            if not folder.is_dir():
                return (
                    f"cannot open {masked}: directory {folder} does not exist; create it, or "
                    f"choose another place with --database-url sqlite:///PATH"
                )
            if path.exists() and not os.access(path, os.W_OK):
                return (
                    f"cannot write {masked}: the file {path.resolve()} is read-only; make it "
                    "writable (chmod u+w), or copy it somewhere writable"
                )
            if not os.access(folder, os.W_OK):
                return (
                    f"cannot open {masked}: {folder} is not writable (SQLite writes the file "
                    f"and its -wal and -shm beside it); choose a writable place with "
                    f"--database-url sqlite:///PATH"
                )
        if name == "SQLITE_NOTADB":
            return f"{path} is not a SQLite database: check {source}"
        return f"cannot use {masked}: {first}"
    reason = first.removeprefix("connection failed: ")
    reason = reason.split(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    parsed = parse_database_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    if "does not exist" in reason and f'database "{parsed.database}"' in reason:
        return (
            f"cannot connect to {masked}: database {parsed.database!r} does not exist; create it "
            f"(createdb -h {parsed.host or 'localhost'} -p {parsed.port or 5432}"
            f"{' -U ' + parsed.username if parsed.username else ''} {parsed.database}) "
            f"or fix {source}"
        )
    if "Connection refused" in reason:
        return (
            f"cannot connect to {masked}: nothing accepts connections at {where}; is PostgreSQL "
            f"running there? (or fix {source})"
        )
    if first.startswith("connection failed"):
        return f"cannot connect to {masked}: {reason} (check {source})"
    return f"cannot use {masked}: {reason}"


if __name__ == "__main__":
    sys.exit(main())
