"""Accounts, apps, access keys and tokens: what the CLI manages and the first start creates.

Each function is one unit of work over ``uow.access``; the caller runs it in a transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from convhub.domain.models import AccessKey, Account, App, EntityStatus, Token
from convhub.domain.permissions import ALL_PERMISSIONS
from convhub.domain.ports import UnitOfWork
from convhub.domain.tokens import permissions_text, token_hash
from convhub.domain.users import canonical_user

FIRST_APP_ID = 100001
DEFAULT_ACCOUNT = "default"
_BOOTSTRAP_LOCK = "convhub:bootstrap"
INT32_MAX = (1 << 31) - 1
_APP_ID_ATTEMPTS = 16


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
    completed: bool = False  # an unfinished first start completed, rather than a new one


def account_id(uow: UnitOfWork, name: str) -> int:
    found = uow.access.account_named(name)
    if found is None:
        raise DirectoryError(f"no account named {name!r}")
    return found.id


def create_account(uow: UnitOfWork, name: str, *, now: int) -> int:
    if not 1 <= len(name) <= 128:
        raise DirectoryError("an account name is 1 to 128 characters")
    new = Account(id=secrets.randbelow(1 << 53) + 1, name=name, status=EntityStatus.ACTIVE,
                  create_time=now)  # fmt: skip
    if not uow.access.add_account(new):
        raise DirectoryError(f"an account named {name!r} exists already")
    return new.id


def create_app(
    uow: UnitOfWork, account: str, *, now: int, name: str = "", app_id: int | None = None
) -> int:
    """An app with the given AppId, or the next free one from 100001; the database's unique
    key decides between concurrent creators, the loser takes the next number."""
    owner = account_id(uow, account)
    if app_id is not None and not 1 <= app_id <= INT32_MAX:
        raise DirectoryError("an AppId is between 1 and 2147483647")
    for _ in range(_APP_ID_ATTEMPTS):
        chosen = app_id
        if chosen is None:
            chosen = max(FIRST_APP_ID, (uow.access.highest_app_id() or 0) + 1)
            if chosen > INT32_MAX:
                raise DirectoryError("no AppId is left below 2147483647")
        app = App(chosen, owner, name or f"app-{chosen}", EntityStatus.ACTIVE, now)
        if uow.access.add_app(app):
            return chosen
        if app_id is not None:
            raise DirectoryError(f"app {app_id} exists already")
    raise DirectoryError("could not find a free AppId; try again")


def create_key(uow: UnitOfWork, account: str, *, now: int) -> NewKey:
    owner = account_id(uow, account)
    key = NewKey(access_key="AKLT" + secrets.token_hex(16), secret_key=secrets.token_urlsafe(30))
    uow.access.add_key(AccessKey(key.access_key, owner, key.secret_key, EntityStatus.ACTIVE, now))
    return key


def create_token(
    uow: UnitOfWork,
    account: str,
    *,
    user: str,
    now: int,
    app_id: int | None = None,
    permissions: Iterable[str] | None = None,
    expires_in: int | None = None,
    name: str = "",
) -> NewToken:
    """A personal access token for ``user`` of ``account``, acting in one of its apps (the
    first one unless named), with the given permissions (all by default). The user is kept in
    its canonical form, as every user ID is: ``0010001`` is user 10001."""
    owner = account_id(uow, account)
    if not 1 <= len(user) <= 128:
        raise DirectoryError("a user is 1 to 128 characters")
    canonical = canonical_user(None, user, field="user")
    if canonical is None:
        raise DirectoryError("a user must not be 0")
    granted = ALL_PERMISSIONS if permissions is None else frozenset(permissions)
    unknown = granted - ALL_PERMISSIONS
    if unknown:
        raise DirectoryError(f"unknown permissions: {', '.join(sorted(unknown))}")
    if expires_in is not None and expires_in <= 0:
        raise DirectoryError("expires_in must be positive")
    if app_id is None:
        first = uow.access.first_app(owner)
        if first is None:
            raise DirectoryError(f"account {account!r} has no app: create one first")
        app_id = first.app_id
    else:
        app = uow.access.app(app_id)
        if app is None or app.account_id != owner:
            raise DirectoryError(f"app {app_id} is not an app of account {account!r}")
    text = "pat_" + secrets.token_urlsafe(32)
    token = Token(
        id=secrets.randbelow(1 << 53) + 1,
        account_id=owner,
        app_id=app_id,
        user=canonical,
        name=name[:128],
        permissions=granted,
        create_time=now,
        expire_time=None if expires_in is None else now + expires_in,
        revoked=False,
    )
    uow.access.add_token(token, token_hash(text))
    return NewToken(id=token.id, token=text)


def bootstrap_if_empty(uow: UnitOfWork, *, now: int) -> Bootstrap | None:
    """On a database with no account, make account ``default`` with an app, a key and a token
    so a newcomer can call: all of it in the caller's one transaction, so a first start that
    dies half-way leaves nothing behind and the next start begins again.

    A database whose only account is ``default`` and which lacks an app, a key or a token is the
    trace of a first start that an older convhub (one transaction per row) did not finish, or
    of an account made by hand before the first start: it is completed, with the app if it has
    none and a new key and token (the secrets of any made before were never shown). Anything
    else is left as it is (None)."""
    uow.lock(_BOOTSTRAP_LOCK)  # PostgreSQL: concurrent first starts take turns
    existing = uow.access.accounts()
    if not existing:
        create_account(uow, DEFAULT_ACCOUNT, now=now)
    elif [a.name for a in existing] != [DEFAULT_ACCOUNT] or _complete(uow, existing[0].id):
        return None
    first = uow.access.first_app(account_id(uow, DEFAULT_ACCOUNT))
    if first is None:
        app_id = create_app(uow, DEFAULT_ACCOUNT, now=now, name=DEFAULT_ACCOUNT)
    else:
        app_id = first.app_id
    return Bootstrap(
        account=DEFAULT_ACCOUNT,
        app_id=app_id,
        key=create_key(uow, DEFAULT_ACCOUNT, now=now),
        token=create_token(uow, DEFAULT_ACCOUNT, user=DEFAULT_ACCOUNT, now=now, app_id=app_id),
        completed=bool(existing),
    )


def _complete(uow: UnitOfWork, owner: int) -> bool:
    """Whether an account has an app, a key and a token, whatever their status."""
    return (
        uow.access.first_app(owner) is not None
        and bool(uow.access.keys(owner))
        and bool(uow.access.tokens(owner))
    )


def list_accounts(uow: UnitOfWork) -> list[dict[str, object]]:
    return [
        {"name": a.name, "id": a.id, "status": a.status.name.lower()} for a in uow.access.accounts()
    ]


def _scope(uow: UnitOfWork, account: str | None) -> int | None:
    return None if account is None else account_id(uow, account)


def list_apps(uow: UnitOfWork, account: str | None = None) -> list[dict[str, object]]:
    return [
        {"app_id": a.app_id, "name": a.name, "account": owner, "status": a.status.name.lower()}
        for a, owner in uow.access.apps(_scope(uow, account))
    ]


def list_keys(uow: UnitOfWork, account: str | None = None) -> list[dict[str, object]]:
    """Access keys without their secrets: a secret is shown once, when it is made."""
    return [
        {
            "access_key": k.access_key,
            "account": owner,
            "status": k.status.name.lower(),
            "create_time": k.create_time,
        }
        for k, owner in uow.access.keys(_scope(uow, account))
    ]


def list_tokens(uow: UnitOfWork, account: str | None = None) -> list[dict[str, object]]:
    """Tokens without their text: it is shown once, when the token is made."""
    return [
        {
            "id": t.id,
            "account": owner,
            "app_id": t.app_id,
            "user": t.user,
            "name": t.name,
            "permissions": permissions_text(t.permissions),
            "expire_time": t.expire_time,
            "revoked": t.revoked,
        }
        for t, owner in uow.access.tokens(_scope(uow, account))
    ]


def _found(changed: bool, what: object) -> None:
    if not changed:
        raise DirectoryError(f"{what!r} not found")


def set_account_status(uow: UnitOfWork, name: str, status: EntityStatus) -> None:
    _found(uow.access.set_account_status(name, status), name)


def set_app_status(uow: UnitOfWork, app_id: int, status: EntityStatus) -> None:
    _found(uow.access.set_app_status(app_id, status), app_id)


def set_key_status(uow: UnitOfWork, access_key: str, status: EntityStatus) -> None:
    _found(uow.access.set_key_status(access_key, status), access_key)


def revoke_token(uow: UnitOfWork, token_id: int) -> None:
    _found(uow.access.revoke_token(token_id), token_id)
