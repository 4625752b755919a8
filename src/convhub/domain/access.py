"""Who may call: access keys belong to accounts, accounts own apps, a key touches only its apps.

Lookups are cached for ``ttl`` seconds so the hot path does not read the directory on every request;
a key or app disabled from the CLI stops working everywhere within that time. Misses are not cached,
so a new key works at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from convhub.domain.models import AccessKey, Account, App, EntityStatus
from convhub.domain.ports import Database, Repository
from convhub.errors import ConvhubError, ErrorCode


@dataclass(frozen=True, slots=True)
class Caller:
    account_id: int
    access_key: str


class AccessControl:
    def __init__(self, *, db: Database, clock: Callable[[], float], ttl: float = 5.0) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl
        self._keys: dict[str, tuple[float, AccessKey, Account]] = {}
        self._apps: dict[int, tuple[float, App]] = {}

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
