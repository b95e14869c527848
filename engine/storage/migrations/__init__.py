"""Alembic migrations that build `engine.storage.tables` step by step (see `engine.storage.db`)."""
