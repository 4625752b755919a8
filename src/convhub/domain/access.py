"""Who may call: access keys belong to accounts, accounts own apps, a key touches only its apps.

Lookups are cached for ``ttl`` seconds so the hot path does not read the directory on every request;
a key or app disabled from the CLI stops working everywhere within that time. Misses are not cached,
so a new key works at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from convhub.domain.models import AccessKey, Account, App, EntityStatus, Token
from convhub.domain.permissions import ALL_PERMISSIONS
from convhub.domain.ports import Database, Repository
from convhub.errors import ConvhubError, ErrorCode


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: an AK/SK key (every permission, any app of its account) or a token (one
    user of an account, acting in one app, with the token's permissions)."""

    account_id: int
    access_key: str
    user: str | None = None
    app_id: int | None = None
    permissions: frozenset[str] = ALL_PERMISSIONS


class AccessControl:
    def __init__(self, *, db: Database, clock: Callable[[], float], ttl: float = 5.0) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl
        self._keys: dict[str, tuple[float, AccessKey, Account]] = {}
        self._apps: dict[int, tuple[float, App]] = {}
        self._tokens: dict[str, tuple[float, Token, EntityStatus, EntityStatus]] = {}

    async def credentials(self, access_key: str) -> tuple[AccessKey, Account]:
        """The key and its account, or the error that refuses them."""
        now = self._clock()
        cached = self._keys.get(access_key)
        if cached is not None and cached[0] > now:
            key, account = cached[1], cached[2]
        else:

            def work(repo: Repository) -> tuple[AccessKey, Account] | None:
                return repo.get_credentials(access_key)

            found = await self._db.read(work)
            if found is None:
                self._keys.pop(access_key, None)
                raise ConvhubError(ErrorCode.UNKNOWN_ACCESS_KEY, "the access key is not known")
            key, account = found
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[access_key] = (now + self._ttl, key, account)
        if key.status is not EntityStatus.ACTIVE:
            raise ConvhubError(ErrorCode.UNKNOWN_ACCESS_KEY, "the access key is disabled")
        if account.status is not EntityStatus.ACTIVE:
            raise ConvhubError(
                ErrorCode.ACCESS_DENIED, "the account of this access key is disabled"
            )
        return key, account

    async def authorize_app(self, account_id: int, app_id: int) -> App:
        now = self._clock()
        cached = self._apps.get(app_id)
        if cached is not None and cached[0] > now:
            app = cached[1]
        else:

            def work(repo: Repository) -> App | None:
                return repo.get_app(app_id)

            found = await self._db.read(work)
            if found is None:
                self._apps.pop(app_id, None)
                raise ConvhubError(ErrorCode.APP_NOT_FOUND, f"app {app_id} does not exist")
            app = found
            if len(self._apps) > 10_000:
                self._apps.clear()
            self._apps[app_id] = (now + self._ttl, app)
        if app.account_id != account_id:
            raise ConvhubError(
                ErrorCode.APP_OF_OTHER_ACCOUNT, f"app {app_id} belongs to another account"
            )
        if app.status is not EntityStatus.ACTIVE:
            raise ConvhubError(ErrorCode.APP_DISABLED, f"app {app_id} is disabled")
        return app

    async def token_caller(self, raw_token: str) -> Caller:
        """The caller a bearer token stands for, or INVALID_TOKEN."""
        digest = hashlib.sha256(raw_token.encode()).hexdigest()
        now = self._clock()
        cached = self._tokens.get(digest)
        if cached is not None and cached[0] > now:
            _, token, account_status, app_status = cached
        else:

            def work(repo: Repository) -> tuple[Token, EntityStatus, EntityStatus] | None:
                return repo.get_token(digest)

            found = await self._db.read(work)
            if found is None:
                self._tokens.pop(digest, None)
                raise ConvhubError(ErrorCode.INVALID_TOKEN, "the access token is not valid")
            token, account_status, app_status = found
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[digest] = (now + self._ttl, token, account_status, app_status)
        if token.revoked:
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the access token has been revoked")
        if token.expire_time is not None and token.expire_time <= now:
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the access token has expired")
        if account_status is not EntityStatus.ACTIVE or app_status is not EntityStatus.ACTIVE:
            raise ConvhubError(
                ErrorCode.INVALID_TOKEN, "the account or app of this token is disabled"
            )
        return Caller(
            account_id=token.account_id,
            access_key="",
            user=token.user,
            app_id=token.app_id,
            permissions=token.permissions,
        )
