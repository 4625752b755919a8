from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from convhub.store.engine import create_database_engine
from convhub.store.tables import metadata

_LOCK = 0x636F6E7668756201  # "convhub\x01": the migrations' advisory lock
config = context.config
engine = create_database_engine(config.get_main_option("sqlalchemy.url") or "", pool_size=1)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Processes that start together take turns: the next one reads the revision only
            # once the first has committed, and finds nothing left to do.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        context.run_migrations()
engine.dispose()
