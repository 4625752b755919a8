"""Accounts, their apps, access keys and tokens."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from convhub.domain.models import AccessKey, Account, App, EntityStatus, Token
from convhub.domain.tokens import parse_permissions_text, permissions_text
from convhub.store.driver import fast
from convhub.store.mapping import FLAG, Codec, Mapper, enum
from convhub.store.session import Session
from convhub.store.tables import access_keys, accounts, apps, tokens

_STATUS = {"status": enum(EntityStatus)}
ACCOUNT = Mapper(accounts, Account, codecs=_STATUS)
APP = Mapper(apps, App, codecs=_STATUS)
KEY = Mapper(access_keys, AccessKey, codecs=_STATUS)
TOKEN = Mapper(
    tokens,
    Token,
    renamed={"user": "user_id"},
    codecs={"permissions": Codec(permissions_text, parse_permissions_text), "revoked": FLAG},
)
_ACCOUNT_COLUMNS = len(ACCOUNT.columns)
_KEY_COLUMNS = len(KEY.columns)
_TOKEN_COLUMNS = len(TOKEN.columns)

_SELECT_CREDENTIALS = fast(
    select(*KEY.columns, *ACCOUNT.columns)
    .join(accounts, accounts.c.id == access_keys.c.account_id)
    .where(access_keys.c.access_key == bindparam("access_key"))
)
_SELECT_APP = fast(select(*APP.columns).where(apps.c.app_id == bindparam("app_id")))
_SELECT_TOKEN = fast(
    select(*TOKEN.columns, accounts.c.status, apps.c.status)
    .join(accounts, accounts.c.id == tokens.c.account_id)
    .join(apps, apps.c.app_id == tokens.c.app_id)
    .where(tokens.c.token_hash == bindparam("token_hash"))
)


def _insert_new(table: Any, key: str) -> dict[str, Any]:
    """INSERT … ON CONFLICT (key) DO NOTHING RETURNING key, for each engine."""
    return {
        name: dialect.insert(table)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c[key])
        for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
    }


_INSERT_ACCOUNT = _insert_new(accounts, "name")
_INSERT_APP = _insert_new(apps, "app_id")


class SqlAccess:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def credentials(self, access_key: str) -> tuple[AccessKey, Account] | None:
        row = self._session.read(_SELECT_CREDENTIALS, {"access_key": access_key}).first()
        if row is None:
            return None
        return KEY.load(row[:_KEY_COLUMNS]), ACCOUNT.load(row[_KEY_COLUMNS:])

    def app(self, app_id: int) -> App | None:
        row = self._session.read(_SELECT_APP, {"app_id": app_id}).first()
        return None if row is None else APP.load(row)

    def token(self, token_hash: str) -> tuple[Token, EntityStatus, EntityStatus] | None:
        row = self._session.read(_SELECT_TOKEN, {"token_hash": token_hash}).first()
        if row is None:
            return None
        account_status, app_status = row[_TOKEN_COLUMNS:]
        return (
            TOKEN.load(row[:_TOKEN_COLUMNS]),
            EntityStatus(account_status),
            EntityStatus(app_status),
        )

    def account_named(self, name: str) -> Account | None:
        query = select(*ACCOUNT.columns).where(accounts.c.name == name)
        row = self._session.read(query).first()
        return None if row is None else ACCOUNT.load(row)

    def add_account(self, account: Account) -> bool:
        statement = _INSERT_ACCOUNT[self._session.dialect]
        return self._session.write(statement, ACCOUNT.dump(account)).first() is not None

    def add_app(self, app: App) -> bool:
        statement = _INSERT_APP[self._session.dialect]
        return self._session.write(statement, APP.dump(app)).first() is not None

    def highest_app_id(self) -> int | None:
        found: int | None = self._session.read(select(func.max(apps.c.app_id))).scalar()
        return found

    def add_key(self, key: AccessKey) -> None:
        self._session.write(access_keys.insert(), KEY.dump(key))

    def add_token(self, token: Token, token_hash: str) -> None:
        values = TOKEN.dump(token)
        values["token_hash"] = token_hash
        self._session.write(tokens.insert(), values)

    def accounts(self) -> list[Account]:
        query = select(*ACCOUNT.columns).order_by(accounts.c.create_time, accounts.c.name)
        return [ACCOUNT.load(row) for row in self._session.read(query)]

    def _owned(self, query: Select[Any], column: Any, account_id: int | None) -> list[Any]:
        if account_id is not None:
            query = query.where(column == account_id)
        return list(self._session.read(query))

    def apps(self, account_id: int | None) -> list[tuple[App, str]]:
        query = (
            select(*APP.columns, accounts.c.name)
            .join(accounts, accounts.c.id == apps.c.account_id)
            .order_by(apps.c.app_id)
        )
        rows = self._owned(query, apps.c.account_id, account_id)
        return [(APP.load(row[:-1]), row[-1]) for row in rows]

    def keys(self, account_id: int | None) -> list[tuple[AccessKey, str]]:
        query = (
            select(*KEY.columns, accounts.c.name)
            .join(accounts, accounts.c.id == access_keys.c.account_id)
            .order_by(access_keys.c.create_time)
        )
        rows = self._owned(query, access_keys.c.account_id, account_id)
        return [(KEY.load(row[:-1]), row[-1]) for row in rows]

    def tokens(self, account_id: int | None) -> list[tuple[Token, str]]:
        query = (
            select(*TOKEN.columns, accounts.c.name)
            .join(accounts, accounts.c.id == tokens.c.account_id)
            .order_by(tokens.c.create_time, tokens.c.id)
        )
        rows = self._owned(query, tokens.c.account_id, account_id)
        return [(TOKEN.load(row[:-1]), row[-1]) for row in rows]

    def first_app(self, account_id: int) -> App | None:
        query = (
            select(*APP.columns)
            .where(apps.c.account_id == account_id)
            .order_by(apps.c.app_id)
            .limit(1)
        )
        row = self._session.read(query).first()
        return None if row is None else APP.load(row)

    def _set(self, statement: Any) -> bool:
        return bool(self._session.write(statement, {}).rowcount == 1)

    def set_account_status(self, name: str, status: EntityStatus) -> bool:
        table = accounts
        return self._set(table.update().where(table.c.name == name).values(status=int(status)))

    def set_app_status(self, app_id: int, status: EntityStatus) -> bool:
        table = apps
        return self._set(table.update().where(table.c.app_id == app_id).values(status=int(status)))

    def set_key_status(self, access_key: str, status: EntityStatus) -> bool:
        table = access_keys
        statement = table.update().where(table.c.access_key == access_key)
        return self._set(statement.values(status=int(status)))

    def revoke_token(self, token_id: int) -> bool:
        return self._set(tokens.update().where(tokens.c.id == token_id).values(revoked=1))
