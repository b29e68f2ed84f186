"""Alembic environment and revisions of the monitor database; run them with ``monitor db``."""
