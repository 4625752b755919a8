"""``convhub``: serve, migrate, and manage accounts, apps and keys."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence

from convhub.config import Settings, parse_rate_limits
from convhub.domain import directory
from convhub.domain.models import EntityStatus
from convhub.domain.permissions import parse_permissions
from convhub.domain.ports import UnitOfWork
from convhub.store import migrate
from convhub.store.engine import DEFAULT_DATABASE_URL, create_database_engine
from convhub.store.unit_of_work import transaction


def _database_url(args: argparse.Namespace) -> str:
    return str(args.database_url or os.environ.get("CONVHUB_DATABASE_URL") or DEFAULT_DATABASE_URL)


def _stopped(signum: int, frame: object) -> None:
    # uvicorn raises SIGTERM again once it has stopped gracefully; that stop is a success, so end
    # the way it ends a Ctrl-C, by the KeyboardInterrupt uvicorn.run catches, and exit 0.
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from convhub.edge import HttpToolsProtocol

    url = _database_url(args)
    if args.rate_limits:
        parse_rate_limits(args.rate_limits)  # fail here, not in every worker
        os.environ["CONVHUB_RATE_LIMITS"] = args.rate_limits
    os.environ["CONVHUB_DATABASE_URL"] = url
    if args.redis_url:
        os.environ["CONVHUB_REDIS_URL"] = args.redis_url
    migrate.upgrade(url)
    engine = create_database_engine(url, pool_size=1)
    try:
        with transaction(engine) as uow:  # all of it, or none of it
            made = directory.bootstrap_if_empty(uow, now=int(time.time()))
    finally:
        engine.dispose()
    if made is not None:
        print(
            "convhub: first start on an empty database; created account "
            f"{made.account!r}, app {made.app_id} and an access key.\n"
            f"  AppId      {made.app_id}\n"
            f"  AccessKey  {made.key.access_key}\n"
            f"  SecretKey  {made.key.secret_key}\n"
            f"  Token      {made.token.token}\n"
            "The secret key and the token are shown this once. More: convhub keys create "
            "--account default; convhub tokens create --account default --user NAME",
            flush=True,
        )
    settings = Settings.from_env()
    if args.workers > 1 and not settings.redis_url:
        print(
            "convhub: warning: several workers without --redis-url count rate limits per worker",
            file=sys.stderr,
        )
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        "convhub.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=HttpToolsProtocol,
        ws="none",  # no WebSockets here: an upgrade request is answered as plain HTTP
        access_log=args.access_log,
        log_level=args.log_level,
        lifespan="on",
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    return 0


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
    engine = create_database_engine(_database_url(args), pool_size=1)
    try:
        with transaction(engine) as uow:
            return _admin_command(uow, args)
    except (directory.DirectoryError, ValueError) as error:
        print(f"convhub: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


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
            permissions = parse_permissions(args.permissions) if args.permissions else None
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


def _db(args: argparse.Namespace) -> int:
    url = _database_url(args)
    if args.verb == "upgrade":
        migrate.upgrade(url, args.revision)
    else:
        migrate.downgrade(url, args.revision)
    print(f"database {args.verb}d to {args.revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convhub", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        help=f"SQLAlchemy URL (env CONVHUB_DATABASE_URL; default {DEFAULT_DATABASE_URL})",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--redis-url", help="share rate limits through Redis (env CONVHUB_REDIS_URL)"
    )
    serve.add_argument(
        "--rate-limits", help='e.g. "CreateConversation=50,*=100" (per account, per second)'
    )
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--graceful-timeout",
        type=int,
        default=30,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take before they are cancelled",
    )
    serve.set_defaults(run=_serve)

    db = sub.add_parser("db", help="schema migrations").add_subparsers(dest="verb", required=True)
    for verb, default in (("upgrade", "head"), ("downgrade", None)):
        p = db.add_parser(verb, parents=[common])
        p.add_argument("revision", nargs=None if default is None else "?", default=default)
        p.set_defaults(run=_db)

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
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
