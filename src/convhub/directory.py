"""Accounts, apps and access keys: what the CLI manages and the first start creates."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, Update, func, select

from convhub.domain.models import EntityStatus
from convhub.store.tables import access_keys, accounts, apps

FIRST_APP_ID = 100001
INT32_MAX = (1 << 31) - 1


class DirectoryError(Exception):
    """A CLI-level mistake: unknown account, duplicate name, bad app ID."""


@dataclass(frozen=True, slots=True)
class NewKey:
    access_key: str
    secret_key: str


@dataclass(frozen=True, slots=True)
class Bootstrap:
    account: str
    app_id: int
    key: NewKey


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
    return Bootstrap(account="default", app_id=app_id, key=create_key(engine, "default"))
