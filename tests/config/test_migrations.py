"""The schema comes from migrating, and the migrations match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import intake.chat
import intake.models  # noqa: F401
import referrals.models  # noqa: F401
import workflows.drafts
import workflows.outbox
import workflows.providers
import workflows.threads  # noqa: F401
from workflows.db import Base


def test_migrated_database_matches_the_models(app) -> None:
    engine = app.extensions["runtime"].engine
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; run migrations/regenerate.py: {diff}"
