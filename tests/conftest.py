from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from convhub.config import Settings, parse_rate_limits
from tests.support import (
    ENGINES,
    NO_LIMITS,
    LiveServer,
    Tenant,
    VolcClient,
    empty_postgres,
    migrated,
    new_tenant,
    required_postgres,
)


@pytest.fixture(scope="session", params=ENGINES)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database on each engine in CONVHUB_TEST_ENGINES (both by default)."""
    if request.param == "sqlite":
        path = Path(tmp_path_factory.mktemp("sqlite")) / "convhub.db"
        yield migrated(f"sqlite:///{path}")
    elif request.param == "postgresql":
        with required_postgres() as url:
            yield url
    else:
        raise ValueError(f"unknown engine {request.param!r} in CONVHUB_TEST_ENGINES")


@pytest.fixture(params=ENGINES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own on each engine, without tables: a SQLite URL whose file does not
    exist yet, or a new empty PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    elif request.param == "postgresql":
        with empty_postgres() as url:
            yield url
    else:
        raise ValueError(f"unknown engine {request.param!r} in CONVHUB_TEST_ENGINES")


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[LiveServer]:
    settings = Settings(database_url=database_url, rate_limits=parse_rate_limits(NO_LIMITS))
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def tenant(database_url: str) -> Tenant:
    """A new account with one app and one key: tests never see each other's data."""
    return new_tenant(database_url)


@pytest.fixture
def volc(server: LiveServer, tenant: Tenant) -> Iterator[VolcClient]:
    client = VolcClient(server, tenant)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _no_ambient_volc_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # volcengine's Service reads $VOLC_ACCESSKEY and ~/.volc; tests pass keys explicitly.
    for name in ("VOLC_ACCESSKEY", "VOLC_SECRETKEY"):
        monkeypatch.delenv(name, raising=False)
