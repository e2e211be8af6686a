from alembic import context

from services.common.migration_env import run_migrations
from services.gateway.adapters.orm import metadata

run_migrations(context, metadata)
