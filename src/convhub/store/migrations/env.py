from __future__ import annotations

from alembic import context

from convhub.store.engine import create_database_engine
from convhub.store.tables import metadata

config = context.config
engine = create_database_engine(config.get_main_option("sqlalchemy.url") or "", pool_size=1)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
