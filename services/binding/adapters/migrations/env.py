from alembic import context

from services.binding.adapters.orm import metadata
from services.common.migration_env import run_migrations

run_migrations(context, metadata)
