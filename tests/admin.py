"""The CLI's admin operations (``convhub.domain.directory``) on an engine, each in its own
transaction, as ``convhub accounts|apps|keys|tokens …`` runs them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy import Engine

from convhub.domain import directory
from convhub.domain.directory import FIRST_APP_ID, Bootstrap, NewKey, NewToken
from convhub.domain.models import EntityStatus
from convhub.domain.ports import UnitOfWork
from convhub.store.unit_of_work import run

T = TypeVar("T")
__all__ = ["FIRST_APP_ID", "Bootstrap", "NewKey", "NewToken"]


def _now() -> int:
    return int(time.time())


def _run(engine: Engine, work: Callable[[UnitOfWork], T]) -> T:
    return run(engine, work)


def create_account(engine: Engine, name: str) -> int:
    return _run(engine, lambda uow: directory.create_account(uow, name, now=_now()))


def create_app(engine: Engine, account: str, *, name: str = "", app_id: int | None = None) -> int:
    return _run(
        engine,
        lambda uow: directory.create_app(uow, account, now=_now(), name=name, app_id=app_id),
    )


def create_key(engine: Engine, account: str) -> NewKey:
    return _run(engine, lambda uow: directory.create_key(uow, account, now=_now()))


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
    return _run(
        engine,
        lambda uow: directory.create_token(
            uow,
            account,
            user=user,
            now=_now(),
            app_id=app_id,
            permissions=permissions,
            expires_in=expires_in,
            name=name,
        ),
    )


def bootstrap_if_empty(engine: Engine) -> Bootstrap | None:
    return _run(engine, lambda uow: directory.bootstrap_if_empty(uow, now=_now()))


def list_apps(engine: Engine, account: str | None = None) -> list[dict[str, object]]:
    return _run(engine, lambda uow: directory.list_apps(uow, account))


def list_keys(engine: Engine, account: str | None = None) -> list[dict[str, object]]:
    return _run(engine, lambda uow: directory.list_keys(uow, account))


def list_tokens(engine: Engine, account: str | None = None) -> list[dict[str, object]]:
    return _run(engine, lambda uow: directory.list_tokens(uow, account))


def revoke_token(engine: Engine, token_id: int) -> None:
    _run(engine, lambda uow: directory.revoke_token(uow, token_id))


def set_account_status(engine: Engine, name: str, status: EntityStatus) -> None:
    _run(engine, lambda uow: directory.set_account_status(uow, name, status))


def set_app_status(engine: Engine, app_id: int, status: EntityStatus) -> None:
    _run(engine, lambda uow: directory.set_app_status(uow, app_id, status))


def set_key_status(engine: Engine, access_key: str, status: EntityStatus) -> None:
    _run(engine, lambda uow: directory.set_key_status(uow, access_key, status))
