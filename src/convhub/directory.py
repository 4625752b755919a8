"""Accounts, apps and access keys: what the CLI manages and the first start creates."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, Update, func, select

from convhub.domain.models import EntityStatus
from convhub.domain.permissions import ALL_PERMISSIONS
from convhub.store.tables import access_keys, accounts, apps, tokens

FIRST_APP_ID = 100001
INT32_MAX = (1 << 31) - 1


class DirectoryError(Exception):
    """A CLI-level mistake: unknown account, duplicate name, bad app ID."""


@dataclass(frozen=True, slots=True)
class NewKey:
    access_key: str
    secret_key: str


@dataclass(frozen=True, slots=True)
class NewToken:
    id: int
    token: str  # shown once: only its SHA-256 is stored


@dataclass(frozen=True, slots=True)
class Bootstrap:
    account: str
    app_id: int
    key: NewKey
    token: NewToken


def _now() -> int:
    return int(time.time())


def _account_id(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(select(accounts.c.id).where(accounts.c.name == name)).scalar()
    if found is None:
        raise DirectoryError(f"no account named {name!r}")
    return int(found)


def create_account(engine: Engine, name: str) -> int:
    if not 1 <= len(name) <= 128:
        raise DirectoryError("an account name is 1 to 128 characters")
    with engine.begin() as conn:
        if conn.execute(select(accounts.c.id).where(accounts.c.name == name)).first():
            raise DirectoryError(f"an account named {name!r} exists already")
        account_id = secrets.randbelow(1 << 53) + 1
        conn.execute(
            accounts.insert().values(
                id=account_id, name=name, status=EntityStatus.ACTIVE, create_time=_now()
            )
        )
    return account_id


def create_app(engine: Engine, account: str, *, name: str = "", app_id: int | None = None) -> int:
    account_id = _account_id(engine, account)
    with engine.begin() as conn:
        if app_id is None:
            highest = conn.execute(select(func.max(apps.c.app_id))).scalar()
            app_id = max(FIRST_APP_ID, (highest or 0) + 1)
        if not 1 <= app_id <= INT32_MAX:
            raise DirectoryError("an AppId is between 1 and 2147483647")
        if conn.execute(select(apps.c.app_id).where(apps.c.app_id == app_id)).first():
            raise DirectoryError(f"app {app_id} exists already")
        conn.execute(
            apps.insert().values(
                app_id=app_id,
                account_id=account_id,
                name=name or f"app-{app_id}",
                status=EntityStatus.ACTIVE,
                create_time=_now(),
            )
        )
    return app_id


def create_key(engine: Engine, account: str) -> NewKey:
    account_id = _account_id(engine, account)
    key = NewKey(access_key="AKLT" + secrets.token_hex(16), secret_key=secrets.token_urlsafe(30))
    with engine.begin() as conn:
        conn.execute(
            access_keys.insert().values(
                access_key=key.access_key,
                account_id=account_id,
                secret_key=key.secret_key,
                status=EntityStatus.ACTIVE,
                create_time=_now(),
            )
        )
    return key


def list_accounts(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(accounts).order_by(accounts.c.create_time, accounts.c.name))
        return [
            {"name": r.name, "id": r.id, "status": EntityStatus(r.status).name.lower()}
            for r in rows
        ]


def list_apps(engine: Engine, account: str | None = None) -> list[dict[str, object]]:
    query = select(apps, accounts.c.name.label("account")).join(
        accounts, accounts.c.id == apps.c.account_id
    )
    if account is not None:
        query = query.where(apps.c.account_id == _account_id(engine, account))
    with engine.connect() as conn:
        return [
            {
                "app_id": r.app_id,
                "name": r.name,
                "account": r.account,
                "status": EntityStatus(r.status).name.lower(),
            }
            for r in conn.execute(query.order_by(apps.c.app_id))
        ]


def list_keys(engine: Engine, account: str | None = None) -> list[dict[str, object]]:
    """Access keys without their secrets: a secret is shown once, when it is made."""
    query = select(
        access_keys.c.access_key,
        access_keys.c.status,
        access_keys.c.create_time,
        accounts.c.name.label("account"),
    ).join(accounts, accounts.c.id == access_keys.c.account_id)
    if account is not None:
        query = query.where(access_keys.c.account_id == _account_id(engine, account))
    with engine.connect() as conn:
        return [
            {
                "access_key": r.access_key,
                "account": r.account,
                "status": EntityStatus(r.status).name.lower(),
                "create_time": r.create_time,
            }
            for r in conn.execute(query.order_by(access_keys.c.create_time))
        ]


def set_account_status(engine: Engine, name: str, status: EntityStatus) -> None:
    _set(engine, accounts.update().where(accounts.c.name == name).values(status=status), name)


def set_app_status(engine: Engine, app_id: int, status: EntityStatus) -> None:
    _set(engine, apps.update().where(apps.c.app_id == app_id).values(status=status), app_id)


def set_key_status(engine: Engine, access_key: str, status: EntityStatus) -> None:
    statement = access_keys.update().where(access_keys.c.access_key == access_key)
    _set(engine, statement.values(status=status), access_key)


def _set(engine: Engine, statement: Update, what: object) -> None:
    with engine.begin() as conn:
        if conn.execute(statement).rowcount != 1:
            raise DirectoryError(f"{what!r} not found")


def bootstrap_if_empty(engine: Engine) -> Bootstrap | None:
    """On a database with no account, make one with an app and a key so a newcomer can call."""
    with engine.connect() as conn:
        if conn.execute(select(accounts.c.id).limit(1)).first() is not None:
            return None
    create_account(engine, "default")
    app_id = create_app(engine, "default", name="default")
    return Bootstrap(
        account="default",
        app_id=app_id,
        key=create_key(engine, "default"),
        token=create_token(engine, "default", user="default"),
    )


def create_token(
    engine: Engine,
    account: str,
    *,
    user: str,
    app_id: int | None = None,
    permissions: Iterable[str] | None = None,
    expires_in: int | None = None,
    name: str = "",
) -> NewToken:
    """A personal access token for ``user`` of ``account``, acting in one of its apps (the
    first one unless named), with the given permissions (all by default)."""
    account_id = _account_id(engine, account)
    if not 1 <= len(user) <= 128:
        raise DirectoryError("a user is 1 to 128 characters")
    granted = ALL_PERMISSIONS if permissions is None else frozenset(permissions)
    unknown = granted - ALL_PERMISSIONS
    if unknown:
        raise DirectoryError(f"unknown permissions: {', '.join(sorted(unknown))}")
    if expires_in is not None and expires_in <= 0:
        raise DirectoryError("expires_in must be positive")
    with engine.begin() as conn:
        owned = select(apps.c.app_id).where(apps.c.account_id == account_id)
        if app_id is None:
            app_id = conn.execute(owned.order_by(apps.c.app_id).limit(1)).scalar()
            if app_id is None:
                raise DirectoryError(f"account {account!r} has no app: create one first")
        elif conn.execute(owned.where(apps.c.app_id == app_id)).first() is None:
            raise DirectoryError(f"app {app_id} is not an app of account {account!r}")
        text = "pat_" + secrets.token_urlsafe(32)
        token_id = secrets.randbelow(1 << 53) + 1
        now = _now()
        conn.execute(
            tokens.insert().values(
                id=token_id,
                token_hash=hashlib.sha256(text.encode()).hexdigest(),
                account_id=account_id,
                app_id=app_id,
                user_id=user,
                name=name[:128],
                permissions=",".join(sorted(granted)),
                create_time=now,
                expire_time=None if expires_in is None else now + expires_in,
                revoked=0,
            )
        )
    return NewToken(id=token_id, token=text)


def list_tokens(engine: Engine, account: str | None = None) -> list[dict[str, object]]:
    """Tokens without their text: it is shown once, when the token is made."""
    query = select(tokens, accounts.c.name.label("account")).join(
        accounts, accounts.c.id == tokens.c.account_id
    )
    if account is not None:
        query = query.where(tokens.c.account_id == _account_id(engine, account))
    with engine.connect() as conn:
        return [
            {
                "id": r.id,
                "account": r.account,
                "app_id": r.app_id,
                "user": r.user_id,
                "name": r.name,
                "permissions": r.permissions,
                "expire_time": r.expire_time,
                "revoked": bool(r.revoked),
            }
            for r in conn.execute(query.order_by(tokens.c.create_time, tokens.c.id))
        ]


def revoke_token(engine: Engine, token_id: int) -> None:
    _set(engine, tokens.update().where(tokens.c.id == token_id).values(revoked=1), token_id)
